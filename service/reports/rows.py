"""The rows a filing writes: an incident with its statistics row, the key grants, the routing record and
the attachments. Queued as ``NewRow``s and inserted by the caller in one statement per table
(``repository.insert_new``), so that a report costs a fixed number of round trips (docs/intake-cost.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from service.cases.deadlines import (
    ComplaintDeadline,
    complaint_deadline_of,
    reminder_week,
)
from service.cases.models import GrantRole, Incident, RoutingRecord
from service.cases.payload import ReportPayload
from service.cases.repository import KeyHolder
from service.crypto import (
    keyed_hash,
    seal,
    wrap_key,
)
from service.db import NewRow, new_id, new_row, row_of
from service.evidence import attachments as files
from service.evidence.uploads import EncryptedUpload
from service.extract.models import StatisticsExtract
from service.extract.service import classification
from service.identity.models import CaseKeyGrant
from service.identity.repository import Receiver
from service.organisations.keys import PublicKeys
from service.reports.opened import ctx, local_today
from service.reports.repository import GRANT_KEY_DIGEST, StaleGrant
from service.reports.schemas import (
    IncidentFields,
)
from service.routing import RoutingDecision
from service.taxonomy import Taxonomy
from service.taxonomy.loader import ANSWER_KINDS, more_urgent


@dataclass(frozen=True)
class CaseRef:
    """What an incident's rows need of their case (a case being filed has no ORM object)."""

    id: str
    land: str
    office: str | None


def holders_granted(rows: list[NewRow], reachable: dict[str, Receiver]) -> list[KeyHolder]:
    """The key holders of a case just filed, from the very grant rows written for it (not from the routing
    decision: an organisation whose key changed meanwhile was skipped, and must not be named)."""
    names = {org.id: org.display_name for org in reachable.values()}
    grant_table = CaseKeyGrant.__table__
    holders: list[KeyHolder] = []
    for row in rows:
        if row.table is not grant_table:
            continue
        # A row's values are plain column values (``NewRow``): read back as ``_grant`` wrote them.
        values = row.values
        minutes = values["escalation_after_minutes"]
        holders.append(
            KeyHolder(
                name=names[str(values["organisation_id"])],
                role=str(values["role"]),
                active=values["active"] is True,
                escalation_after_minutes=minutes if isinstance(minutes, int) else None,
            )
        )
    return holders


class FilingRows:
    """The row builders of ``IntakeService`` (service.py), which holds the keys and the taxonomy."""

    taxonomy: Taxonomy
    _statistics_key: bytes
    _keys: PublicKeys

    def complaint_deadline(self, data: IncidentFields) -> ComplaintDeadline:
        """The Strafantrag deadline of an incident as sent (§ 77b StGB; service/cases/deadlines.py)."""
        return complaint_deadline_of(
            complaint_only=self.taxonomy.has_complaint_only(data.type_codes),
            occurred_on=data.occurred_on,
            perpetrator_known_on=data.perpetrator_known_on,
            perpetrator_familiarity=data.perpetrator_familiarity,
        )

    def urgency_of(self, data: IncidentFields, now: datetime) -> str:
        """The reporter's urgency, raised to "high" when a Strafantrag deadline is days away: counsellors
        must act before it passes, whatever the danger the reporter felt."""
        if self.complaint_deadline(data).urgent(local_today(now)):
            return more_urgent(data.urgency, "high")
        return data.urgency

    def _incident_payload(self, data: IncidentFields) -> bytes:
        payload: ReportPayload = {
            "description": data.description,
            "type_other": data.type_other,
            "occurred_on": data.occurred_on.isoformat() if data.occurred_on else None,
            "place": data.place,
            "platform": data.platform,
            "url": data.url,
            "perpetrator": {
                "familiarity": data.perpetrator_familiarity,
                "residence": data.perpetrator_residence,
                "number": data.perpetrator_number,
                "details": data.perpetrator_details,
                # Since when the reporter knows who it was: the Strafantrag period starts then.
                "known_on": data.perpetrator_known_on.isoformat() if data.perpetrator_known_on else None,
            },
        }
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()

    def _add_incident(
        self,
        rows: list[NewRow],
        case: CaseRef,
        seq: int,
        data: IncidentFields,
        data_key: bytes,
        now: datetime,
        answers: dict[str, list[str]] | None = None,
    ) -> str:
        """Queue an incident and its statistics row; returns the incident's id.

        ``answers``: the report's KoMo answers (top-level codes by kind), for the statistics row of its first
        incident only; a further incident's row has none (NULL: not asked, unlike [] for "not stated")."""
        incident_id = new_id()
        extract_id = new_id()
        incident_month = data.occurred_on.strftime("%Y-%m") if data.occurred_on else None
        rows.append(
            new_row(
                Incident,
                id=incident_id,
                case_id=case.id,
                seq=seq,
                type_codes=list(data.type_codes),
                channel=data.channel,
                channel_online=self.taxonomy.channel_is_online(data.channel),
                severity=self.taxonomy.severity_of(data.type_codes),
                urgency=data.urgency,
                # The date and the deadline stay in the payload; in clear only the week of the first reminder.
                complaint_reminder_on=reminder_week(self.complaint_deadline(data).ends_on, local_today(now)),
                payload=seal(data_key, self._incident_payload(data), ctx("incident", case.id, incident_id)),
                # The way from an incident to its statistics row exists only under the case key: a
                # counsellor who reclassifies can update the row, a thief of the database cannot join them.
                extract_ref=seal(data_key, extract_id.encode(), ctx("extract_ref", case.id, incident_id)),
                proceedings=None,
                created_at=now,
            )
        )
        rows.append(
            new_row(
                StatisticsExtract,
                id=extract_id,
                reporter_pseudonym=keyed_hash(
                    self._statistics_key, "reporter-pseudonym", case.id.encode()
                ).hex(),
                receipt_month=now.strftime("%Y-%m"),
                incident_month=incident_month,
                land=case.land,
                channel=data.channel.split(".")[0],
                office=case.office,
                event_key=None,
                **classification(self.taxonomy, list(data.type_codes)),
                **(answers or dict.fromkeys(ANSWER_KINDS)),
            )
        )
        return incident_id

    def _grant(
        self,
        session: Session,
        rows: list[NewRow],
        case_id: str,
        data_key: bytes,
        decision: RoutingDecision,
        reachable: dict[str, Receiver],
        already: set[str],
        now: datetime,
        cached: bool = False,
    ) -> list[Receiver]:
        """Wrap the case key to every organisation in the decision that does not hold it yet.

        ``cached``: ``reachable`` is the intake's cached read; a receiver whose key is not the one read then
        is StaleGrant (filed again, freshly read), not a grant left out."""
        new_targets: list[Receiver] = []
        grants: list[NewRow] = []
        steps: list[tuple[str, GrantRole, int | None]] = [
            (slug, GrantRole.target, None) for slug in decision.targets
        ]
        steps += [(slug, GrantRole.escalation, minutes) for slug, minutes in decision.escalation]
        steps = [step for step in steps if reachable[step[0]].id not in already]
        keys = self._keys.of(session, {reachable[slug] for slug, _, _ in steps})
        for slug, role, minutes in steps:
            org = reachable[slug]
            if org.id not in already and org.id not in keys and cached:
                raise StaleGrant()
            if org.id in already or org.id not in keys:
                # Its key changed between the two reads: the decision's other grants still stand.
                continue
            already.add(org.id)
            key = keys[org.id]
            grant = new_row(
                CaseKeyGrant,
                id=new_id(),
                case_id=case_id,
                organisation_id=org.id,
                wrapped_key=wrap_key(data_key, key, ctx("case_key", case_id, org.id)),
                epoch=org.epoch,
                role=role.value,
                active=role is GrantRole.target,
                escalation_after_minutes=minutes,
                granted_at=now,
                opened_at=now if role is GrantRole.target else None,
            )
            # The insert stores the grant only if this is still the organisation's key (``StaleGrant``).
            grants.append(NewRow(grant.table, grant.values, {GRANT_KEY_DIGEST: key.digest}))
            if role is GrantRole.target:
                new_targets.append(org)
        # By organisation id: each grant's insert share-locks its organisation's row, and filings and key
        # rotations that lock several take them in this order, so that none waits for another in a circle.
        rows += sorted(grants, key=lambda row: str(row.values["organisation_id"]))
        return new_targets

    def _record(self, case_id: str, incident_id: str, decision: RoutingDecision, now: datetime) -> NewRow:
        return new_row(
            RoutingRecord,
            id=new_id(),
            created_at=now,
            case_id=case_id,
            incident_id=incident_id,
            policy_version=decision.policy_version,
            fallback_used=decision.fallback_used,
            decision=decision.to_dict(),
        )

    @staticmethod
    def _attachment_rows(
        uploads: list[EncryptedUpload], case_id: str, incident_id: str, now: datetime
    ) -> list[NewRow]:
        attachments = files.rows_for(
            uploads, case_id, uploaded_by="reporter", now=now, incident_id=incident_id
        )
        return [row_of(attachment) for attachment in attachments]
