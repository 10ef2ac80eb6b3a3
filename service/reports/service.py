"""Intake and the reporter's way back into the case file.

The intake is the one place where plaintext from a reporter meets the database, so it is written as one
straight line: validate, route on the server, encrypt, store everything in one transaction, commit, answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.cases import proceedings
from service.cases import repository as case_rows
from service.cases import service as case_work
from service.cases.contact import seal_address
from service.cases.deadlines import (
    ComplaintDeadline,
    complaint_deadline_of,
    payload_complaint_deadline,
    reminder_week,
)
from service.cases.models import Case, CaseStatus, GrantRole, Incident, RoutingRecord
from service.cases.proceedings import Proceedings
from service.cases.repository import KeyHolder
from service.crypto import (
    Context,
    DecryptionError,
    InvalidReceipt,
    keyed_hash,
    new_data_key,
    new_receipt,
    new_salt,
    normalize_receipt,
    open_sealed,
    pepper_id,
    receipt_lookup,
    seal,
    unwrap_for_reporter,
    wrap_for_reporter,
    wrap_key,
)
from service.db import NewRow, new_id, new_row, row_of, utcnow
from service.errors import AlreadySubmitted, NoRecipient, NotFound, ValidationFailed
from service.evidence import attachments as files
from service.evidence.blobs import BlobStore
from service.evidence.uploads import EncryptedUpload
from service.i18n import LOCAL_ZONE
from service.identity import repository as organisations
from service.identity.models import CaseKeyGrant
from service.identity.repository import Receiver
from service.matching.normalise import Identifier
from service.matching.sealed import open_typed, seal_typed
from service.matching.service import Budget, MatchingService
from service.organisations.keys import PublicKeys
from service.outbox import writer as outbox
from service.outbox.dispatch import Dispatcher
from service.outbox.writer import enqueue
from service.reports import repository
from service.reports.schemas import (
    MAX_IDENTIFIERS,
    IncidentFields,
    MatchingConsent,
    PerpetratorIdentifier,
    ReportCreate,
)
from service.reports.submissions import SubmissionClaim
from service.routing import ReportFacts, RoutingDecision, RoutingPolicy, evaluate
from service.statistics.extract import answers_of, classification
from service.statistics.models import StatisticsExtract
from service.taxonomy import Districts, Taxonomy
from service.taxonomy.loader import ANSWER_KINDS, more_urgent
from service.validation import public_error

log = logging.getLogger("rueckhalt.intake")

# Written in place of a real unwrap when a receipt matches nothing, so that a wrong receipt costs about
# as much time as a right one (no timing oracle for which receipts exist).
_DUMMY_SALT = b"\x00" * 32


@dataclass(frozen=True)
class CaseDraft:
    """Identity and key of a case about to be filed; uploads are encrypted under it before the commit."""

    case_id: str
    data_key: bytes

    @classmethod
    def new(cls) -> CaseDraft:
        return cls(case_id=new_id(), data_key=new_data_key())


@dataclass(frozen=True)
class DemoFiling:
    """A case the demo files (service/demo.py, service/demo_year.py): marked ``demo`` on the case row.

    ``at``: filed as if at that moment, for the demo's synthetic year. Every time the filing writes (the
    case, its grants, the statistics row's receipt month, the acknowledgement deadline) is then ``at``, and
    nobody is told of it: a case of last spring announced today would be a false alarm."""

    at: datetime | None = None

    @property
    def announced(self) -> bool:
        return self.at is None


@dataclass(frozen=True)
class Filed:
    receipt: str
    case_id: str
    routed_to: list[str]
    ack_deadline_minutes: int
    type_codes: list[str]
    # The Strafantrag deadline of the reported incident, for the receipt (never stored in clear).
    complaint: ComplaintDeadline
    # The urgency the case was filed with: the reporter's, or "high" for a Strafantrag deadline days away.
    urgency: str
    # Every organisation that now holds the case key, read from the grant rows this filing wrote.
    key_holders: list[KeyHolder]


@dataclass(frozen=True)
class CaseRef:
    """What an incident's rows need of their case (a case being filed has no ORM object)."""

    id: str
    land: str
    office: str | None


@dataclass(frozen=True)
class OpenedCase:
    case: Case
    data_key: bytes


def _holders_granted(rows: list[NewRow], reachable: dict[str, Receiver]) -> list[KeyHolder]:
    """The key holders of a case just filed, from the very grant rows written for it (not from the routing
    decision: an organisation whose key changed meanwhile was skipped, and must not be named)."""
    names = {org.id: org.display_name for org in reachable.values()}
    grant_table = CaseKeyGrant.__table__
    return [
        KeyHolder(
            name=names[row.values["organisation_id"]],
            role=row.values["role"],
            active=row.values["active"],
            escalation_after_minutes=row.values["escalation_after_minutes"],
        )
        for row in rows
        if row.table is grant_table
    ]


def _local_day(moment: datetime | None) -> str | None:
    return moment.astimezone(LOCAL_ZONE).date().isoformat() if moment is not None else None


def _ctx(purpose: str, case_id: str, record_id: str = "") -> Context:
    return Context(purpose, case_id=case_id, record_id=record_id)


def _today(now: datetime) -> date:
    return now.astimezone(LOCAL_ZONE).date()


class IntakeService:
    def __init__(
        self,
        taxonomy: Taxonomy,
        districts: Districts,
        policy: RoutingPolicy,
        lookup_pepper: bytes,
        statistics_key: bytes,
        notification_key: bytes,
        audit: AuditLog,
        matching: MatchingService,
        *,
        previous_lookup_peppers: tuple[bytes, ...] = (),
    ) -> None:
        self.taxonomy = taxonomy
        self.matching = matching
        self.audit = audit
        self.districts = districts
        self.policy = policy
        self._pepper = lookup_pepper
        self._pepper_id = pepper_id(lookup_pepper).hex()
        # During a rotation of the lookup pepper: a receipt not found under the current one is looked up under
        # the previous one, and its case re-keyed on the spot (docs/runbooks.md).
        self._previous_peppers = previous_lookup_peppers
        self._statistics_key = statistics_key
        self._notification_key = notification_key
        self._keys = PublicKeys()
        # Set by a served api process (``service.app``): the delivery tasks of a report's outbox rows are
        # published right after its commit instead of at the relay's next pass.
        self.dispatcher: Dispatcher | None = None

    # -- validation ---------------------------------------------------------------------------------------
    def check_incident_codes(self, data: IncidentFields) -> list[dict[str, Any]]:
        tax = self.taxonomy
        errors: list[dict[str, Any]] = []
        types = tax.valid_codes("incident_types")
        for index, code in enumerate(data.type_codes):
            if code not in types:
                errors.append(
                    public_error(["type_codes", index], "invalid_code", "unknown incident type code")
                )
        if len(set(data.type_codes)) != len(data.type_codes):
            errors.append(public_error(["type_codes"], "duplicate", "incident type codes repeat"))
        checks: list[tuple[str, str | None, str]] = [
            ("channel", data.channel, "channels"),
            ("urgency", data.urgency, "urgency"),
            ("perpetrator_familiarity", data.perpetrator_familiarity, "perpetrator.familiarity"),
            ("perpetrator_residence", data.perpetrator_residence, "perpetrator.residence"),
            ("perpetrator_number", data.perpetrator_number, "perpetrator.number"),
        ]
        for field, value, kind in checks:
            if value is not None and value not in tax.valid_codes(kind):
                errors.append(
                    public_error([field], "invalid_code", f"unknown {field.replace('_', ' ')} code")
                )
        return errors

    def check_report(self, data: ReportCreate) -> list[dict[str, Any]]:
        errors = self.check_incident_codes(data)
        tax = self.taxonomy
        for index, code in enumerate(data.targets):
            if code not in tax.valid_codes("targets"):
                errors.append(public_error(["targets", index], "invalid_code", "unknown target code"))
        for index, code in enumerate(data.support_needs):
            if code not in tax.valid_codes("support_needs"):
                errors.append(
                    public_error(["support_needs", index], "invalid_code", "unknown support need code")
                )
        if data.office is not None and data.office not in tax.valid_codes("offices"):
            errors.append(public_error(["office"], "invalid_code", "unknown office code"))
        if data.reported_by not in tax.valid_codes("reported_by"):
            errors.append(public_error(["reported_by"], "invalid_code", "unknown reported_by code"))
        for kind in ANSWER_KINDS:
            for index, code in enumerate(getattr(data, kind)):
                if code not in tax.valid_codes(kind):
                    errors.append(public_error([kind, index], "invalid_code", f"unknown {kind} code"))
        if data.district_ags is not None:
            district = self.districts.district(data.district_ags)
            if district is None:
                errors.append(public_error(["district_ags"], "invalid_code", "unknown district"))
            elif district.land != data.land:
                errors.append(public_error(["district_ags"], "district_land", "district is not in this Land"))
        return errors

    # -- routing ------------------------------------------------------------------------------------------
    def _facts(
        self,
        data: IncidentFields,
        case_fields: ReportCreate | Case,
        targets: tuple[str, ...],
        reported_by: str,
        urgency: str,
    ) -> ReportFacts:
        return ReportFacts(
            land=case_fields.land,
            district_ags=case_fields.district_ags,
            type_codes=tuple(data.type_codes),
            severity=self.taxonomy.severity_of(data.type_codes),
            urgency=urgency,
            channel=data.channel,
            channel_online=self.taxonomy.channel_is_online(data.channel),
            office=case_fields.office,
            targets=targets,
            consent_counselling=case_fields.consent_counselling,
            consent_police=case_fields.consent_police,
            reported_by=reported_by,
        )

    def route(self, session: Session, facts: ReportFacts) -> tuple[RoutingDecision, dict[str, Receiver]]:
        reachable = organisations.receivers(session)
        decision = evaluate(self.policy, facts, frozenset(reachable))
        if not decision.targets:
            # Never a silent loss: the reporter is told (503), and an alert for the coordinators and the
            # fallback rota is committed on its own, carrying the Land code and nothing of the report.
            log.error(
                "intake refused: no organisation with a key can receive this report (land %s)", facts.land
            )
            session.rollback()
            enqueue(session, "alerts.intake_refused", land=facts.land, reason="no_recipient")
            session.commit()
            raise NoRecipient()
        return decision, reachable

    # -- filing -------------------------------------------------------------------------------------------
    def _incident_payload(self, data: IncidentFields) -> bytes:
        payload = {
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
        if self.complaint_deadline(data).urgent(_today(now)):
            return more_urgent(data.urgency, "high")
        return data.urgency

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
                complaint_reminder_on=reminder_week(self.complaint_deadline(data).ends_on, _today(now)),
                payload=seal(data_key, self._incident_payload(data), _ctx("incident", case.id, incident_id)),
                # The way from an incident to its statistics row exists only under the case key: a
                # counsellor who reclassifies can update the row, a thief of the database cannot join them.
                extract_ref=seal(data_key, extract_id.encode(), _ctx("extract_ref", case.id, incident_id)),
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
    ) -> list[Receiver]:
        """Wrap the case key to every organisation in the decision that does not hold it yet."""
        new_targets: list[Receiver] = []
        steps: list[tuple[str, GrantRole, int | None]] = [
            (slug, GrantRole.target, None) for slug in decision.targets
        ]
        steps += [(slug, GrantRole.escalation, minutes) for slug, minutes in decision.escalation]
        steps = [step for step in steps if reachable[step[0]].id not in already]
        keys = self._keys.of(session, {reachable[slug] for slug, _, _ in steps})
        for slug, role, minutes in steps:
            org = reachable[slug]
            if org.id in already or org.id not in keys:
                # Its key changed between the two reads: the decision's other grants still stand.
                continue
            already.add(org.id)
            rows.append(
                new_row(
                    CaseKeyGrant,
                    id=new_id(),
                    case_id=case_id,
                    organisation_id=org.id,
                    wrapped_key=wrap_key(data_key, keys[org.id], _ctx("case_key", case_id, org.id)),
                    epoch=org.epoch,
                    role=role.value,
                    active=role is GrantRole.target,
                    escalation_after_minutes=minutes,
                    granted_at=now,
                    opened_at=now if role is GrantRole.target else None,
                )
            )
            if role is GrantRole.target:
                new_targets.append(org)
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

    def _claim(self, session: Session, claim: SubmissionClaim | None) -> None:
        """Mark a form view's token used, first in the filing transaction; AlreadySubmitted if it was."""
        if claim is not None and not repository.claim_submission(session, claim):
            session.rollback()
            raise AlreadySubmitted()

    def file_report(
        self,
        session: Session,
        data: ReportCreate,
        draft: CaseDraft,
        uploads: list[EncryptedUpload],
        claim: SubmissionClaim | None = None,
        matching_budget: Budget | None = None,
        demo: DemoFiling | None = None,
    ) -> Filed:
        """Store a new case file and commit. Raises before anything is written if the input is refused.

        ``claim``: the form view's submission token (pages); a token used before files nothing
        (AlreadySubmitted), and a filing refused later (rolled back) leaves it unused.
        ``matching_budget``: the look-ups reserved for its perpetrator identifiers; reserved here, before
        anything is written, when the caller (off the event loop) did not.
        ``demo``: only the demo loader passes it (never a page or the API)."""
        errors = self.check_report(data)
        if errors:
            raise ValidationFailed(errors)
        identifiers = (
            [item.normalised() for item in data.perpetrator_identifiers] if data.consent_matching else []
        )
        if identifiers and matching_budget is None:
            matching_budget = self.matching.reserve(len(identifiers))
        self._claim(session, claim)
        now = demo.at if demo is not None and demo.at is not None else utcnow()
        urgency = self.urgency_of(data, now)
        facts = self._facts(data, data, tuple(data.targets), data.reported_by, urgency)
        decision, reachable = self.route(session, facts)
        receipt = new_receipt()
        salt = new_salt()
        case = CaseRef(id=draft.case_id, land=data.land, office=data.office)
        details = {
            "municipality": data.municipality,
            "targets": list(data.targets),
            "reported_by": data.reported_by,
            "support_needs": list(data.support_needs),
            **{kind: list(getattr(data, kind)) for kind in ANSWER_KINDS},
        }
        contact = {"name": data.contact_name, "email": data.contact_email, "phone": data.contact_phone}
        rows = [
            new_row(
                Case,
                id=case.id,
                lookup_hash=receipt_lookup(self._pepper, receipt),
                lookup_key_id=self._pepper_id,
                reporter_salt=salt,
                reporter_wrapped_key=wrap_for_reporter(
                    draft.data_key, receipt, salt, _ctx("reporter_key", case.id)
                ),
                status=CaseStatus.new.value,
                urgency=urgency,
                severity=self.taxonomy.severity_of(data.type_codes),
                land=data.land,
                district_ags=data.district_ags,
                office=data.office,
                consent_counselling=data.consent_counselling,
                consent_police=data.consent_police,
                demo=demo is not None,
                details_ciphertext=seal(
                    draft.data_key, json.dumps(details).encode(), _ctx("case_details", case.id)
                ),
                contact_ciphertext=(
                    seal(draft.data_key, json.dumps(contact).encode(), _ctx("contact", case.id))
                    if any(contact.values())
                    else None
                ),
                notify_ciphertext=(
                    seal_address(self._notification_key, case.id, str(data.notify_email))
                    if data.notify_email
                    else None
                ),
                perpetrator_ciphertext=self._seal_identifiers(
                    draft.data_key, case.id, data.perpetrator_identifiers if data.consent_matching else []
                ),
                ack_deadline_at=now + timedelta(minutes=decision.ack_deadline_minutes),
                acknowledged_at=None,
                assignee_id=None,
                labels=[],
                outcome=None,
                closed_at=None,
                reopened_at=None,
                created_at=now,
                updated_at=now,
            )
        ]
        answers = {kind: answers_of(getattr(data, kind)) for kind in ANSWER_KINDS}
        incident_id = self._add_incident(rows, case, 1, data, draft.data_key, now, answers)
        rows += self._attachment_rows(uploads, case.id, incident_id, now)
        targets = self._grant(session, rows, case.id, draft.data_key, decision, reachable, set(), now)
        if not targets:
            session.rollback()
            raise NoRecipient()
        rows.append(self._record(case.id, incident_id, decision, now))
        announced = self._claimed(
            [
                outbox.message_row(
                    "notifications.new_case", case_id=case.id, organisation_id=org.id, urgency=urgency
                )
                for org in targets
                if demo is None or demo.announced
            ]
        )
        repository.insert_new(session, rows + announced)
        # Last before the commit (a match that fires is audited): tokens only with the reporter's consent.
        if identifiers and matching_budget is not None:
            self.matching.register(session, case.id, identifiers, matching_budget)
        session.commit()
        self._after_commit(announced)
        return Filed(
            receipt=receipt,
            case_id=case.id,
            routed_to=[org.display_name for org in targets],
            ack_deadline_minutes=decision.ack_deadline_minutes,
            type_codes=list(data.type_codes),
            complaint=self.complaint_deadline(data),
            urgency=urgency,
            key_holders=_holders_granted(rows, reachable),
        )

    # -- notifications after the commit --------------------------------------------------------------------
    def _claimed(self, rows: list[NewRow]) -> list[NewRow]:
        """Outbox rows that the dispatcher will publish are written as dispatched: the relay skips them."""
        dispatcher = self.dispatcher
        if dispatcher is not None and dispatcher.ready():
            for row in rows:
                outbox.claim(row)
        return rows

    def _after_commit(self, rows: list[NewRow]) -> None:
        """Hand the committed rows to the dispatcher (never blocks, never fails the request)."""
        dispatcher = self.dispatcher
        claimed = [row for row in rows if row.values["dispatched_at"] is not None]
        if dispatcher is not None and claimed:
            dispatcher.submit([(row.values["id"], row.values["topic"]) for row in claimed])

    @staticmethod
    def _attachment_rows(
        uploads: list[EncryptedUpload], case_id: str, incident_id: str, now: datetime
    ) -> list[NewRow]:
        attachments = files.rows_for(
            uploads, case_id, uploaded_by="reporter", now=now, incident_id=incident_id
        )
        return [row_of(attachment) for attachment in attachments]

    # -- the reporter's way back --------------------------------------------------------------------------
    def open_case(self, session: Session, receipt_text: str) -> OpenedCase:
        """Find and unlock a case by its receipt; one NotFound for every kind of failure."""
        try:
            receipt = normalize_receipt(receipt_text)
        except InvalidReceipt:
            receipt = None
        case = repository.case_by_lookup(session, receipt_lookup(self._pepper, receipt or "0" * 20))
        rekey = False
        for previous in self._previous_peppers:
            if case is not None:
                break
            case = repository.case_by_lookup(session, receipt_lookup(previous, receipt or "0" * 20))
            rekey = case is not None
        if case is None or receipt is None:
            with contextlib.suppress(DecryptionError):
                unwrap_for_reporter(b"\x01" + b"\x00" * 60, "0" * 20, _DUMMY_SALT, _ctx("reporter_key", "-"))
            raise NotFound()
        try:
            data_key = unwrap_for_reporter(
                case.reporter_wrapped_key, receipt, case.reporter_salt, _ctx("reporter_key", case.id)
            )
        except DecryptionError:
            raise NotFound() from None
        if rekey:
            # The receipt proved itself: its case moves to the current pepper now, in a commit of its own
            # (the reporter's sign-in is the only moment the receipt is here to do it).
            case.lookup_hash = receipt_lookup(self._pepper, receipt)
            case.lookup_key_id = self._pepper_id
            session.commit()
        return OpenedCase(case=case, data_key=data_key)

    def open_case_by_id(self, session: Session, case_id: str, data_key: bytes) -> OpenedCase:
        """For a signed-in reporter session: the case id and key come from the split-key session."""
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound()
        return OpenedCase(case=case, data_key=data_key)

    def open_attachment(
        self, session: Session, opened: OpenedCase, attachment_id: str, blobs: BlobStore
    ) -> files.DecryptedAttachment:
        """A file of the reporter's own case (their own evidence or one a counsellor sent), ready to stream;
        the download is audited first, without content (which file, not its name), like a counsellor's.
        An id of another case is NotFound."""
        found = files.opened(session, opened.case.id, attachment_id, opened.data_key, blobs)
        self.audit.append(
            session,
            actor_kind="reporter",
            actor_id=None,
            action="attachment.download",
            object_type="case",
            object_id=opened.case.id,
            details={"attachment_id": attachment_id},
        )
        session.commit()
        return found

    # -- perpetrator identifiers for the repeat-perpetrator matching (service/matching) ---------------------
    @staticmethod
    def _seal_identifiers(data_key: bytes, case_id: str, items: list[PerpetratorIdentifier]) -> bytes | None:
        """The identifiers as the reporter typed them, sealed with the case key; None for none."""
        return seal_typed(data_key, case_id, [item.model_dump(mode="json") for item in items])

    @staticmethod
    def identifiers_of(case: Case, data_key: bytes) -> list[PerpetratorIdentifier]:
        """The identifiers a case holds (sealed, as typed); empty without consent or after its withdrawal."""
        typed = open_typed(data_key, case.id, case.perpetrator_ciphertext)
        return [PerpetratorIdentifier.model_validate(item) for item in typed]

    def add_identifiers(self, session: Session, opened: OpenedCase, data: MatchingConsent) -> bool:
        """The reporter gives identifiers on /fall (with consent): they join those already given (the same
        identity once), are sealed anew and registered, together with any that waited for the budget.
        Returns False when the hour's budget of look-ups was used up (the identifiers wait, sealed)."""
        if not data.consent_matching or not data.perpetrator_identifiers:
            return True
        given = self.identifiers_of(opened.case, opened.data_key)
        # Reserved before the transaction writes; each identifier sent (and each one waiting) is a look-up.
        budget = self.matching.reserve(len(given) + len(data.perpetrator_identifiers))
        case = case_rows.lock_case(session, opened.case.id)
        if case is None:
            session.rollback()
            raise NotFound()
        items: dict[Any, PerpetratorIdentifier] = {}
        for item in [*self.identifiers_of(case, opened.data_key), *data.perpetrator_identifiers]:
            items.setdefault(item.normalised(), item)
        if len(items) > MAX_IDENTIFIERS:
            session.rollback()
            raise ValidationFailed(
                [public_error(["perpetrator_identifiers"], "too_long", "too many identifiers for one case")]
            )
        kept = list(items.values())
        case.perpetrator_ciphertext = self._seal_identifiers(opened.data_key, case.id, kept)
        case.updated_at = utcnow()
        session.flush()
        done = self.matching.register(session, case.id, [item.normalised() for item in kept], budget).done
        session.commit()
        return done

    def resume_matching(self, session: Session, case_id: str, data_key: bytes) -> bool:
        """Register the identifiers of a case that wait (the hour's budget was used up when they came, or a
        rotation of the matching key deleted every token), from the sealed ones: nobody types them again.
        For where the case key is at hand: the reporter's sign-in and a holder's button on the case page.

        A case without sealed identifiers (none given, or the consent withdrawn, which deletes them) has
        nothing to register, ever. Only the waiting identifiers count against the budget, reserved before
        the transaction writes; it runs in the caller's transaction, which commits (a match fires and is
        audited as for a report). False when the budget is used up: they wait on, sealed."""
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound()
        missing = self.matching.waiting(session, case_id, self._normalised_identifiers(case, data_key))
        if not missing:
            return True
        budget = self.matching.reserve(len(missing))
        if not budget.granted:
            return False
        case = case_rows.lock_case(session, case_id)
        if case is None:
            raise NotFound()
        # Read anew under the case's lock: a withdrawal in between has deleted the sealed identifiers, and
        # then nothing is registered.
        missing = self.matching.waiting(session, case_id, self._normalised_identifiers(case, data_key))
        return self.matching.register(session, case_id, missing, budget).done

    def resume_matching_at_sign_in(self, session: Session, opened: OpenedCase) -> None:
        """``resume_matching`` right after the reporter's sign-in committed, the one moment the case key is
        at hand without the reporter doing anything. It never fails the sign-in: whatever goes wrong is
        rolled back and logged by its kind only, and the identifiers wait for the next sign-in."""
        try:
            self.resume_matching(session, opened.case.id, opened.data_key)
            session.commit()
        except Exception as exc:  # the reporter is signed in; the matching can wait
            session.rollback()
            log.warning("matching: waiting identifiers not registered at sign-in (%s)", type(exc).__name__)

    def _normalised_identifiers(self, case: Case, data_key: bytes) -> list[Identifier]:
        return [item.normalised() for item in self.identifiers_of(case, data_key)]

    def withdraw_matching(self, session: Session, opened: OpenedCase) -> None:
        """The reporter withdraws the consent: the tokens go at once, and the identifiers as typed too (they
        were given for the matching; what the reporter wrote about the perpetrator elsewhere stays)."""
        case = case_rows.lock_case(session, opened.case.id)
        if case is None:
            session.rollback()
            raise NotFound()
        self.matching.forget(session, case.id)
        case.perpetrator_ciphertext = None
        case.updated_at = utcnow()
        session.commit()

    def set_notify_address(self, session: Session, opened: OpenedCase, address: str | None) -> None:
        """The reporter chooses (or drops) the address told of new messages; an old one is overwritten."""
        case = opened.case
        case.notify_ciphertext = (
            seal_address(self._notification_key, case.id, address) if address is not None else None
        )
        case.updated_at = utcnow()
        session.commit()

    def add_incident(
        self,
        session: Session,
        opened: OpenedCase,
        data: IncidentFields,
        uploads: list[EncryptedUpload],
        claim: SubmissionClaim | None = None,
        demo: DemoFiling | None = None,
    ) -> int:
        """Add a further incident to the case file and commit; returns its number within the case.

        Routed like a new report: organisations the decision adds get the key, and the urgency of the case
        rises to the incident's. A closed case is opened again: the incident is a new threat, and a closed
        case is out of the inbox's default view and counts towards its purge from the day it was closed.
        Reopened, it is new again (status, acknowledgement deadline, escalation timers from now), its
        outcome is cleared (closing it again asks for one, and the retention period counts from then), every
        active holder is told with the urgency, and the reopening is audited without content."""
        errors = self.check_incident_codes(data)
        if errors:
            raise ValidationFailed(errors)
        self._claim(session, claim)
        # Locked until the commit: the retention purge locks it too, so a case is either purged first (and
        # the incident is refused: NotFound) or reopened first (and the purge finds it open).
        case = case_rows.lock_case(session, opened.case.id)
        if case is None:
            session.rollback()
            raise NotFound()
        details = json.loads(
            open_sealed(opened.data_key, case.details_ciphertext, _ctx("case_details", case.id))
        )
        now = demo.at if demo is not None and demo.at is not None else utcnow()
        urgency = self.urgency_of(data, now)
        reopen = case.status == CaseStatus.closed.value
        # Who reports is sealed with the case like the targets: routed again from the opened details.
        facts = self._facts(
            data, case, tuple(details.get("targets", [])), details.get("reported_by", "self"), urgency
        )
        decision, reachable = self.route(session, facts)
        seq = repository.next_incident_seq(session, case.id)
        rows: list[NewRow] = []
        ref = CaseRef(id=case.id, land=case.land, office=case.office)
        incident_id = self._add_incident(rows, ref, seq, data, opened.data_key, now)
        rows += self._attachment_rows(uploads, case.id, incident_id, now)
        holders = repository.granted_organisation_ids(session, case.id)
        active = repository.active_organisation_ids(session, case.id)
        new_targets = self._grant(
            session, rows, case.id, opened.data_key, decision, reachable, set(holders), now
        )
        rows.append(self._record(case.id, incident_id, decision, now))
        topic = "notifications.case_reopened" if reopen else "notifications.new_incident"
        announce = demo is None or demo.announced
        announced = self._claimed(
            [
                outbox.message_row(topic, case_id=case.id, organisation_id=org_id, urgency=urgency)
                for org_id in active
                if announce
            ]
            + [
                outbox.message_row(
                    "notifications.new_case", case_id=case.id, organisation_id=org.id, urgency=urgency
                )
                for org in new_targets
                if announce
            ]
        )
        repository.insert_new(session, rows + announced)
        severity = self.taxonomy.severity_of(data.type_codes)
        if severity < case.severity:
            case.severity = severity
        if reopen:
            self._reopen(session, case, decision, urgency, now)
        else:
            case.urgency = more_urgent(case.urgency, urgency)
        case.updated_at = now
        if reopen:
            session.flush()
            # Last before the commit, as AuditLog asks: from here on every other appender waits for us.
            self.audit.append(
                session,
                actor_kind="reporter",
                actor_id=None,
                action="case.reopen",
                object_type="case",
                object_id=case.id,
                details={"reason": "further_incident", "seq": seq, "urgency": urgency},
            )
        session.commit()
        self._after_commit(announced)
        return seq

    @staticmethod
    def _reopen(session: Session, case: Case, decision: RoutingDecision, urgency: str, now: datetime) -> None:
        """A closed case becomes new again, with the clocks of a new report started now."""
        case.status = CaseStatus.new.value
        case.outcome = None
        case.closed_at = None
        case.acknowledged_at = None
        case.reopened_at = now
        case.urgency = urgency
        case.ack_deadline_at = now + timedelta(minutes=decision.ack_deadline_minutes)
        # Escalation steps that hold the key but were never opened count their minutes from the reopening
        # (``reopened_at``), with the times of this decision where it names them.
        steps = dict(decision.escalation)
        for grant, slug in repository.unopened_escalations(session, case.id):
            if slug in steps:
                grant.escalation_after_minutes = steps[slug]

    def payload_deadline(self, type_codes: list[str], payload: dict[str, Any]) -> ComplaintDeadline:
        """The Strafantrag deadline of a stored incident, from its sealed payload and clear type codes."""
        return payload_complaint_deadline(self.taxonomy.has_complaint_only(list(type_codes)), payload)

    def set_perpetrator_known(
        self, session: Session, opened: OpenedCase, seq: int, known_on: date | None
    ) -> ComplaintDeadline:
        """The reporter says since when they know who did it (or takes the date back): the incident's
        sealed payload holds it, and the clear reminder week follows the new deadline. A deadline now days
        away makes the case urgent, as at intake; the beat's reminders tell the holders."""
        case = case_rows.lock_case(session, opened.case.id)
        incident = None if case is None else next((i for i in case.incidents if i.seq == seq), None)
        if case is None or incident is None:
            session.rollback()
            raise NotFound()
        context = _ctx("incident", case.id, incident.id)
        payload = json.loads(open_sealed(opened.data_key, incident.payload, context))
        perpetrator = dict(payload.get("perpetrator") or {})
        perpetrator["known_on"] = known_on.isoformat() if known_on else None
        payload["perpetrator"] = perpetrator
        incident.payload = seal(
            opened.data_key, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(), context
        )
        deadline = self.payload_deadline(list(incident.type_codes), payload)
        now = utcnow()
        incident.complaint_reminder_on = proceedings.reminder_on(
            deadline, proceedings.read(opened.data_key, incident), _today(now)
        )
        if deadline.urgent(_today(now)) and case.status != CaseStatus.closed.value:
            case.urgency = more_urgent(case.urgency, "high")
        case.updated_at = now
        session.commit()
        return deadline

    def record_proceedings(self, session: Session, opened: OpenedCase, seq: int, record: Proceedings) -> None:
        """The reporter records the proceedings of an incident (/fall), as a counsellor can on the case
        page: sealed, and a Strafantrag recorded ends its reminders. Audited without content."""
        case = case_rows.lock_case(session, opened.case.id)
        incident = None if case is None else next((i for i in case.incidents if i.seq == seq), None)
        if case is None or incident is None:
            session.rollback()
            raise NotFound()
        proceedings.store(self.taxonomy, opened.data_key, incident, record)
        case.updated_at = utcnow()
        self.audit.append(
            session,
            actor_kind="reporter",
            actor_id=None,
            action="case.proceedings",
            object_type="case",
            object_id=case.id,
            details={"seq": seq},
        )
        session.commit()

    def reporter_view(self, session: Session, opened: OpenedCase) -> dict[str, Any]:
        """The reporter's own case file, decrypted with the key their receipt unlocked."""
        case = opened.case
        counts = repository.attachment_counts(session, case.id)
        # The files the reporter sent with each incident, listed (and downloadable) on /fall.
        incident_files: dict[str, list[dict[str, Any]]] = {}
        for item in files.describe(session, case.id, opened.data_key):
            if item["incident_id"] is not None:
                incident_files.setdefault(item["incident_id"], []).append(
                    {key: item[key] for key in ("id", "filename", "content_type", "size_bytes")}
                )
        incidents = []
        for incident in case.incidents:
            payload = json.loads(
                open_sealed(opened.data_key, incident.payload, _ctx("incident", case.id, incident.id))
            )
            incidents.append(
                {
                    "seq": incident.seq,
                    "type_codes": list(incident.type_codes),
                    "channel": incident.channel,
                    "created_at": incident.created_at.isoformat(),
                    "description": payload["description"],
                    "occurred_on": payload.get("occurred_on"),
                    "perpetrator_known_on": (payload.get("perpetrator") or {}).get("known_on"),
                    "complaint": self.payload_deadline(incident.type_codes, payload),
                    "proceedings": proceedings.read(opened.data_key, incident),
                    "attachments": counts.get(incident.id, 0),
                    "files": incident_files.get(incident.id, []),
                }
            )
        first_reply = repository.first_reply_at(session, case.id)
        return {
            "status": case.status,
            "created_at": case.created_at.isoformat(),
            # Days only: when the case was acknowledged and first answered (the reporter's way to see it
            # without a notification address).
            "acknowledged_on": _local_day(case.acknowledged_at),
            "first_reply_on": _local_day(first_reply),
            "organisations": case_rows.active_organisation_names(session, case.id),
            "key_holders": [dataclasses.asdict(holder) for holder in case_rows.key_holders(session, case.id)],
            "incidents": incidents,
            "messages": case_work.reporter_messages(session, case.id, opened.data_key),
            "notify": case.notify_ciphertext is not None,
            "identifiers": [
                item.model_dump(mode="json") for item in self.identifiers_of(case, opened.data_key)
            ],
            # Given but not looked up yet: the hour's budget was used up when they came, or a rotation of the
            # matching key deleted the tokens (the next sign-in registers them).
            "identifiers_waiting": bool(
                self.matching.waiting(session, case.id, self._normalised_identifiers(case, opened.data_key))
            ),
        }
