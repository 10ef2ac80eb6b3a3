"""Counsellor case work: the inbox, the decrypted case, the workflow, messages and notes.

Every read goes through the subject's memberships: a case is opened only with an organisation key that the
subject holds through an active grant of that organisation, and every decryption is written to the audit log
in the same transaction as whatever else the request changes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth.subject import Subject
from service.cases import events, proceedings, repository
from service.cases.deadlines import ComplaintDeadline, ReminderWeek, payload_complaint_deadline
from service.cases.models import (
    Case,
    CaseMessage,
    CaseNote,
    CaseStatus,
    GrantRole,
    MergeProposal,
    MessageDirection,
)
from service.cases.proceedings import Proceedings
from service.cases.schemas import CaseUpdate
from service.crypto import (
    Context,
    DecryptionError,
    PublicKey,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
)
from service.db import new_id, utcnow
from service.errors import NotFound, ValidationFailed
from service.evidence import attachments as files
from service.evidence.attachments import DecryptedAttachment
from service.evidence.blobs import BlobStore
from service.evidence.uploads import EncryptedUpload
from service.extract.service import classification
from service.i18n import LOCAL_ZONE
from service.identity import repository as organisations
from service.identity.custody import KeyCustody, RotationReason
from service.identity.models import CaseKeyGrant, Organisation
from service.matching.sealed import open_typed
from service.outbox.writer import enqueue
from service.taxonomy import Taxonomy
from service.taxonomy.loader import ANSWER_KINDS
from service.validation import public_error

OUTCOMES = ("supported", "referred_elsewhere", "no_contact", "withdrawn", "duplicate", "other")
LABELS = ("follow_up", "legal", "press", "police", "security", "psychosocial", "online", "repeat")


@dataclass(frozen=True)
class UnlockedCase:
    case: Case
    data_key: bytes
    # The organisation through whose grant the subject opened the case.
    organisation_id: str


def _ctx(purpose: str, case_id: str, record_id: str = "") -> Context:
    return Context(purpose, case_id=case_id, record_id=record_id)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class CaseService:
    def __init__(self, taxonomy: Taxonomy, audit: AuditLog, statistics_key: bytes) -> None:
        self.taxonomy = taxonomy
        self.audit = audit
        self.custody = KeyCustody(audit)
        # Linked events mark their statistics rows with a keyed token under it (service/cases/events.py).
        self._statistics_key = statistics_key

    # -- reading -------------------------------------------------------------------------------------------
    def inbox(
        self, session: Session, subject: Subject, filters: repository.CaseFilters
    ) -> list[dict[str, Any]]:
        """Readable metadata only: nothing is decrypted to list cases.

        So the Strafantrag deadline is shown as the week it falls in (from the clear reminder date), not as
        the day: decrypting every listed case would unwrap up to a page of case keys and write as many
        ``case.decrypt`` events for a glance at the list. The case page shows the exact day."""
        now = utcnow()
        rows = []
        for case in repository.visible_cases(session, subject.organisation_ids, filters):
            weeks = [
                ReminderWeek(i.complaint_reminder_on).deadline_from
                for i in case.incidents
                if i.complaint_reminder_on is not None
            ]
            rows.append(
                {
                    "id": case.id,
                    "status": case.status,
                    "urgency": case.urgency,
                    "severity": case.severity,
                    "land": case.land,
                    "district_ags": case.district_ags,
                    "type_codes": sorted({code for i in case.incidents for code in i.type_codes}),
                    "incidents": len(case.incidents),
                    "assignee_id": case.assignee_id,
                    "labels": list(case.labels or []),
                    "created_at": case.created_at.isoformat(),
                    "ack_deadline_at": case.ack_deadline_at.isoformat(),
                    "ack_overdue": case.acknowledged_at is None and case.ack_deadline_at < now,
                    "acknowledged_at": _iso(case.acknowledged_at),
                    "complaint_deadline_week": _iso(min(weeks)) if weeks else None,
                    "reopened": case.reopened_at is not None,
                }
            )
        return rows

    def unlock(self, session: Session, subject: Subject, case_id: str) -> UnlockedCase:
        """The case and its data key, or NotFound — also for a case that exists but is not the subject's."""
        case = repository.visible_case(session, subject.organisation_ids, case_id)
        if case is None:
            raise NotFound()
        for grant in repository.active_grants(session, case.id, subject.organisation_ids):
            try:
                org_key = subject.organisation_key(session, grant.organisation_id, grant.epoch)
                data_key = unwrap_key(
                    grant.wrapped_key, org_key, _ctx("case_key", case.id, grant.organisation_id)
                )
            except (NotFound, DecryptionError):
                continue
            return UnlockedCase(case=case, data_key=data_key, organisation_id=grant.organisation_id)
        raise NotFound()

    def _deadline(self, type_codes: Sequence[str], payload: dict[str, Any]) -> ComplaintDeadline:
        """The Strafantrag deadline of an incident, from its sealed dates (the incident, and since when the
        perpetrator is known) and its (clear) type codes; no day while the perpetrator is unknown."""
        return payload_complaint_deadline(self.taxonomy.has_complaint_only(list(type_codes)), payload)

    def _audit(self, session: Session, subject: Subject, action: str, case_id: str, **details: Any) -> None:
        self.audit.append(
            session,
            actor_kind="staff",
            actor_id=subject.user_id,
            action=action,
            object_type="case",
            object_id=case_id,
            details=details or None,
        )

    def detail(self, session: Session, subject: Subject, case_id: str) -> dict[str, Any]:
        unlocked = self.unlock(session, subject, case_id)
        case, key = unlocked.case, unlocked.data_key
        details = json.loads(open_sealed(key, case.details_ciphertext, _ctx("case_details", case.id)))
        contact = (
            json.loads(open_sealed(key, case.contact_ciphertext, _ctx("contact", case.id)))
            if case.contact_ciphertext
            else None
        )
        incidents = []
        for incident in case.incidents:
            payload = json.loads(open_sealed(key, incident.payload, _ctx("incident", case.id, incident.id)))
            deadline = self._deadline(incident.type_codes, payload)
            incidents.append(
                {
                    "id": incident.id,
                    "seq": incident.seq,
                    "created_at": incident.created_at.isoformat(),
                    "type_codes": list(incident.type_codes),
                    "channel": incident.channel,
                    "severity": incident.severity,
                    "urgency": incident.urgency,
                    # The exact day, from the sealed date: the server keeps only a week of it in clear.
                    "complaint_deadline_on": _iso(deadline.ends_on),
                    # What it was counted from: while the perpetrator is unknown the period has not begun.
                    "complaint_basis": deadline.basis.value,
                    **payload,
                    "proceedings": proceedings.view(proceedings.read(key, incident)),
                }
            )
        attachments = files.describe(session, case.id, key)
        holders = [
            {
                "organisation_id": org.id,
                "name": org.display_name,
                "role": grant.role,
                "active": grant.active,
                "escalation_after_minutes": grant.escalation_after_minutes,
            }
            for org, grant in repository.holders(session, case.id)
        ]
        routing = [
            {
                "created_at": record.created_at.isoformat(),
                "fallback_used": record.fallback_used,
                **record.decision,
            }
            for record in repository.routing_records(session, case.id)
        ]
        view = {
            "id": case.id,
            "status": case.status,
            "urgency": case.urgency,
            "severity": case.severity,
            "land": case.land,
            "district_ags": case.district_ags,
            "office": case.office,
            "consent_counselling": case.consent_counselling,
            "consent_police": case.consent_police,
            "assignee_id": case.assignee_id,
            "labels": list(case.labels or []),
            "outcome": case.outcome,
            "created_at": case.created_at.isoformat(),
            "ack_deadline_at": case.ack_deadline_at.isoformat(),
            "acknowledged_at": _iso(case.acknowledged_at),
            "closed_at": _iso(case.closed_at),
            "municipality": details.get("municipality"),
            "targets": details.get("targets", []),
            # Cases filed before the question existed were filed by the person affected, as far as we know.
            "reported_by": details.get("reported_by", "self"),
            "support_needs": details.get("support_needs", []),
            **{kind: details.get(kind, []) for kind in ANSWER_KINDS},
            "contact": contact,
            # The perpetrator identifiers the reporter gave for the matching, as typed (service/matching).
            "perpetrator_identifiers": open_typed(key, case.id, case.perpetrator_ciphertext),
            "incidents": incidents,
            "attachments": attachments,
            "messages": self._messages(session, case.id, key, attachments),
            "notes": self._notes(session, case.id, key),
            "holders": holders,
            # Incidents of other cases declared the same event: where they are, never what they say.
            "events": [dataclasses.asdict(member) for member in events.members(session, case.id)],
            "merge": self._merge_view(session, case.id),
            "routing": routing,
            "history": [
                {
                    "at": event.at.isoformat(),
                    "action": event.action,
                    "actor_id": event.actor_id,
                    "actor_kind": event.actor_kind,
                }
                for event in repository.history(session, case.id)
            ],
        }
        self._audit(session, subject, "case.decrypt", case.id, organisation_id=unlocked.organisation_id)
        session.commit()
        return view

    def _messages(
        self, session: Session, case_id: str, key: bytes, attachments: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        return [
            {
                "id": message.id,
                "direction": message.direction,
                "author_id": message.author_id,
                "organisation_id": message.organisation_id,
                "created_at": message.created_at.isoformat(),
                "body": open_sealed(key, message.ciphertext, _ctx("message", case_id, message.id)).decode(),
                "attachment_ids": [item["id"] for item in attachments if item["message_id"] == message.id],
            }
            for message in repository.messages(session, case_id)
        ]

    def _notes(self, session: Session, case_id: str, key: bytes) -> list[dict[str, Any]]:
        return [
            {
                "id": note.id,
                "author_id": note.author_id,
                "organisation_id": note.organisation_id,
                "created_at": note.created_at.isoformat(),
                "body": open_sealed(key, note.ciphertext, _ctx("note", case_id, note.id)).decode(),
            }
            for note in repository.notes(session, case_id)
        ]

    def open_attachment(
        self, session: Session, subject: Subject, case_id: str, attachment_id: str, blobs: BlobStore
    ) -> DecryptedAttachment:
        """An attachment ready to stream, decrypted chunk by chunk; the download is audited first."""
        unlocked = self.unlock(session, subject, case_id)
        found = files.opened(session, unlocked.case.id, attachment_id, unlocked.data_key, blobs)
        self._audit(session, subject, "attachment.download", unlocked.case.id, attachment_id=attachment_id)
        session.commit()
        return found

    # -- workflow ------------------------------------------------------------------------------------------
    def update(self, session: Session, subject: Subject, case_id: str, change: CaseUpdate) -> None:
        """Acknowledge, assign, change status, label: each change audited, nothing stored on a bad field."""
        unlocked = self.unlock(session, subject, case_id)
        case = unlocked.case
        errors = []
        if change.status is not None and change.status not in {s.value for s in CaseStatus}:
            errors.append(public_error(["status"], "invalid_code", "unknown status"))
        if change.status == CaseStatus.closed.value and (change.outcome or case.outcome) not in OUTCOMES:
            errors.append(public_error(["outcome"], "missing", "closing a case needs an outcome code"))
        if change.outcome is not None and change.outcome not in OUTCOMES:
            errors.append(public_error(["outcome"], "invalid_code", "unknown outcome code"))
        for index, label in enumerate(change.labels or []):
            if label not in LABELS:
                errors.append(public_error(["labels", index], "invalid_code", "unknown label"))
        # `is not None`: an empty id is no member either (it was let through, and failed at the database).
        if change.assignee_id is not None and not organisations.is_member_of_any(
            session,
            change.assignee_id,
            {org.id for org, grant in repository.holders(session, case.id) if grant.active},
        ):
            errors.append(
                public_error(["assignee_id"], "invalid", "the assignee is not a member of a holder")
            )
        if errors:
            raise ValidationFailed(errors)
        now = utcnow()
        if change.acknowledge and case.acknowledged_at is None:
            case.acknowledged_at = now
            if case.status == CaseStatus.new.value:
                case.status = CaseStatus.acknowledged.value
            self._audit(
                session, subject, "case.acknowledge", case.id, organisation_id=unlocked.organisation_id
            )
        if change.assignee_id is not None or change.unassign:
            case.assignee_id = None if change.unassign else change.assignee_id
            self._audit(session, subject, "case.assign", case.id, assignee_id=case.assignee_id)
        if change.outcome is not None:
            case.outcome = change.outcome
        if change.status is not None and change.status != case.status:
            previous = case.status
            case.status = change.status
            if change.status == CaseStatus.closed.value:
                case.closed_at = now
            elif previous == CaseStatus.closed.value:
                case.closed_at = None
            if case.acknowledged_at is None and change.status != CaseStatus.new.value:
                case.acknowledged_at = now
            self._audit(
                session,
                subject,
                "case.status",
                case.id,
                status_from=previous,
                status_to=case.status,
                outcome=case.outcome,
            )
        if change.labels is not None:
            case.labels = sorted(set(change.labels))
            self._audit(session, subject, "case.labels", case.id, labels=",".join(case.labels))
        case.updated_at = now
        session.commit()

    def reclassify(
        self, session: Session, subject: Subject, case_id: str, seq: int, type_codes: list[str]
    ) -> None:
        """Correct an incident's type codes; its statistics row follows, found via the sealed reference."""
        unlocked = self.unlock(session, subject, case_id)
        case = unlocked.case
        incident = next((i for i in case.incidents if i.seq == seq), None)
        if incident is None:
            raise NotFound()
        valid = self.taxonomy.valid_codes("incident_types")
        errors = [
            public_error(["type_codes", index], "invalid_code", "unknown incident type code")
            for index, code in enumerate(type_codes)
            if code not in valid
        ]
        if not type_codes or len(set(type_codes)) != len(type_codes):
            errors.append(public_error(["type_codes"], "invalid", "one or more distinct codes are needed"))
        if errors:
            raise ValidationFailed(errors)
        key = unlocked.data_key
        payload = json.loads(open_sealed(key, incident.payload, _ctx("incident", case.id, incident.id)))
        before = ",".join(incident.type_codes)
        incident.type_codes = list(type_codes)
        incident.severity = self.taxonomy.severity_of(type_codes)
        incident.complaint_reminder_on = proceedings.reminder_on(
            self._deadline(type_codes, payload),
            proceedings.read(key, incident),
            datetime.now(LOCAL_ZONE).date(),
        )
        case.severity = min(i.severity for i in case.incidents)
        extract = events.extract_of(session, key, incident)
        if extract is not None:
            for name, value in classification(self.taxonomy, list(type_codes)).items():
                setattr(extract, name, value)
        case.updated_at = utcnow()
        self._audit(
            session,
            subject,
            "case.reclassify",
            case.id,
            seq=seq,
            codes_from=before,
            codes_to=",".join(type_codes),
        )
        session.commit()

    def refer(
        self,
        session: Session,
        subject: Subject,
        case_id: str,
        target_slug: str,
        *,
        transfer: bool,
        consent: bool,
    ) -> None:
        """Hand the case to another organisation: its key is wrapped to it; a transfer ends our own access.

        The reporter's consent must be recorded for every referral (they chose whom to trust); a police
        liaison additionally needs the consent given in the report itself.
        """
        unlocked = self.unlock(session, subject, case_id)
        case = unlocked.case
        receivers = organisations.receivers(session)
        target = receivers.get(target_slug)
        errors = []
        if target is None:
            errors.append(
                public_error(["organisation"], "invalid_code", "no such organisation can receive cases")
            )
        elif target.id == unlocked.organisation_id:
            errors.append(
                public_error(["organisation"], "invalid", "the case is already with this organisation")
            )
        if not consent:
            errors.append(public_error(["reporter_consent"], "missing", "the reporter's consent is needed"))
        if target is not None and target.kind == "police_liaison" and not case.consent_police:
            errors.append(
                public_error(["organisation"], "consent_police", "the reporter did not agree to police")
            )
        if errors:
            raise ValidationFailed(errors)
        assert target is not None
        existing = repository.grant_of(session, case.id, target.id)
        now = utcnow()
        if existing is not None and existing.active:
            raise ValidationFailed(
                [public_error(["organisation"], "invalid", "this organisation holds the case")]
            )
        if existing is not None:
            # An escalation step already holds a wrapped key: opening its access is enough.
            existing.active = True
            existing.opened_at = now
        else:
            # Re-wraps use the organisation's newest epoch, like a new case; the key is read by that epoch's
            # number, so a rotation between the two reads cannot record one epoch and wrap to another.
            public = organisations.epoch_public_key(session, target.id, target.epoch)
            session.add(
                CaseKeyGrant(
                    id=new_id(),
                    case_id=case.id,
                    organisation_id=target.id,
                    wrapped_key=wrap_key(
                        unlocked.data_key, PublicKey.from_bytes(public), _ctx("case_key", case.id, target.id)
                    ),
                    epoch=target.epoch,
                    role=GrantRole.referral.value,
                    active=True,
                    escalation_after_minutes=None,
                    granted_at=now,
                    opened_at=now,
                )
            )
        if transfer:
            own = repository.grant_of(session, case.id, unlocked.organisation_id)
            if own is not None:
                session.delete(own)
            if case.assignee_id is not None:
                case.assignee_id = None
            # docs/security.md: a transfer away starts a new epoch of the organisation that let the case go,
            # and the epoch the case was wrapped to is destroyed once no other case needs it.
            own_organisation = session.get(Organisation, unlocked.organisation_id)
            if own_organisation is not None:
                session.flush()
                self.custody.rotate(session, own_organisation, RotationReason.transfer_away, subject.user_id)
        case.status = CaseStatus.referred.value
        case.updated_at = now
        enqueue(
            session,
            "notifications.new_case",
            case_id=case.id,
            organisation_id=target.id,
            urgency=case.urgency,
        )
        self._audit(
            session,
            subject,
            "case.transfer" if transfer else "case.refer",
            case.id,
            organisation_from=unlocked.organisation_id,
            organisation_to=target.id,
            reporter_consent=consent,
        )
        session.commit()

    def post_message(
        self,
        session: Session,
        subject: Subject,
        case_id: str,
        body: str,
        uploads: Sequence[EncryptedUpload] = (),
    ) -> str:
        """A message to the reporter, sealed with the case key; the reporter is told content-free.

        ``uploads`` were encrypted with this case's key while the form streamed in (see ``unlock``)."""
        unlocked = self.unlock(session, subject, case_id)
        case = unlocked.case
        message_id = add_message(
            session,
            case.id,
            unlocked.data_key,
            body,
            MessageDirection.to_reporter,
            subject.user_id,
            unlocked.organisation_id,
            uploads,
        )
        if case.status in (CaseStatus.new.value, CaseStatus.acknowledged.value):
            case.status = CaseStatus.in_progress.value
        if case.acknowledged_at is None:
            case.acknowledged_at = utcnow()
        case.updated_at = utcnow()
        enqueue(session, "notifications.reporter_message", case_id=case.id)
        self._audit(
            session, subject, "case.message", case.id, message_id=message_id, attachments=len(uploads)
        )
        session.commit()
        return message_id

    def add_note(self, session: Session, subject: Subject, case_id: str, body: str) -> str:
        unlocked = self.unlock(session, subject, case_id)
        note_id = new_id()
        session.add(
            CaseNote(
                id=note_id,
                case_id=unlocked.case.id,
                author_id=subject.user_id,
                organisation_id=unlocked.organisation_id,
                ciphertext=seal(unlocked.data_key, body.encode(), _ctx("note", unlocked.case.id, note_id)),
                created_at=utcnow(),
            )
        )
        self._audit(session, subject, "case.note", unlocked.case.id, note_id=note_id)
        session.commit()
        return note_id

    # -- the repeat-perpetrator matching --------------------------------------------------------------------
    def resume_matching(
        self, session: Session, subject: Subject, case_id: str, resume: Callable[[Session, str, bytes], bool]
    ) -> bool:
        """A holder runs the matching of a case whose identifiers wait (``resume``: the intake's
        ``resume_matching``, which needs the case key this unlock gives). NotFound for a case the subject
        does not hold. Audited without content (whether the budget allowed it, nothing of the identifiers);
        nothing is registered for a case whose consent was withdrawn. False: the hour's budget is used up."""
        unlocked = self.unlock(session, subject, case_id)
        done = resume(session, unlocked.case.id, unlocked.data_key)
        self._audit(session, subject, "case.matching_resume", unlocked.case.id, done=done)
        session.commit()
        return done

    # -- proceedings ---------------------------------------------------------------------------------------
    def record_proceedings(
        self, session: Session, subject: Subject, case_id: str, seq: int, record: Proceedings
    ) -> None:
        """Store an incident's proceedings (sealed); a Strafantrag recorded ends its deadline reminders.
        Audited with the incident's number only: which fields were filled is itself content."""
        unlocked = self.unlock(session, subject, case_id)
        incident = next((i for i in unlocked.case.incidents if i.seq == seq), None)
        if incident is None:
            raise NotFound()
        proceedings.store(self.taxonomy, unlocked.data_key, incident, record)
        unlocked.case.updated_at = utcnow()
        self._audit(session, subject, "case.proceedings", unlocked.case.id, seq=seq)
        session.commit()

    # -- the same event ------------------------------------------------------------------------------------
    def _other_case(self, session: Session, subject: Subject, own: UnlockedCase, ref: str) -> UnlockedCase:
        """The second case of a link or a merge: one the subject can open too, else NotFound (a case of
        another organisation looks exactly like one that does not exist)."""
        other = repository.visible_case_by_ref(session, subject.organisation_ids, ref)
        if other is None:
            raise NotFound()
        if other.id == own.case.id:
            raise ValidationFailed([public_error(["other_case"], "same_case", "this is the same case")])
        return self.unlock(session, subject, other.id)

    def link_event(
        self, session: Session, subject: Subject, case_id: str, seq: int, other_ref: str, other_seq: int
    ) -> None:
        """Declare incident ``seq`` of this case and incident ``other_seq`` of another case the subject holds
        the same event. Both holders see the link; the statistics count the event once. Linking what is
        linked already changes nothing; an incident in another event must leave it first (422)."""
        unlocked = self.unlock(session, subject, case_id)
        incident = next((i for i in unlocked.case.incidents if i.seq == seq), None)
        if incident is None:
            raise NotFound()
        other = self._other_case(session, subject, unlocked, other_ref)
        other_incident = next((i for i in other.case.incidents if i.seq == other_seq), None)
        if other_incident is None:
            raise ValidationFailed([public_error(["other_seq"], "invalid", "no such incident in that case")])
        own_event = events.event_of(session, incident.id)
        if own_event is not None and own_event == events.event_of(session, other_incident.id):
            return
        if not events.link(
            session,
            self._statistics_key,
            (incident, unlocked.data_key),
            (other_incident, other.data_key),
            new_id(),
        ):
            raise ValidationFailed([public_error(["other_case"], "other_event", "already linked elsewhere")])
        self._audit(session, subject, "case.event_link", unlocked.case.id, seq=seq)
        self._audit(session, subject, "case.event_link", other.case.id, seq=other_seq)
        session.commit()

    def unlink_event(self, session: Session, subject: Subject, case_id: str, seq: int) -> None:
        """Take incident ``seq`` of this case out of its event (audited); nothing to do if it is in none."""
        unlocked = self.unlock(session, subject, case_id)
        incident = next((i for i in unlocked.case.incidents if i.seq == seq), None)
        if incident is None:
            raise NotFound()
        if events.unlink(session, incident, unlocked.data_key):
            self._audit(session, subject, "case.event_unlink", unlocked.case.id, seq=seq)
            session.commit()

    # -- merging a case filed again after a lost receipt ----------------------------------------------------
    def propose_merge(self, session: Session, subject: Subject, case_id: str, other_ref: str) -> None:
        """Propose that this case be merged into an earlier one the subject holds too. Nothing moves
        until the reporter confirms from the newer case (service/cases/merge.py). The older case's key is
        sealed under the newer case's key for that moment: so every organisation holding the newer case
        must hold the older one already (422 otherwise), or the proposal would hand it a key it never had."""
        newer = self.unlock(session, subject, case_id)
        older = self._other_case(session, subject, newer, other_ref)
        # Proposed from the newer case's page (the reporter confirms from it); filed within the same minute,
        # either may be called the earlier one.
        if older.case.created_at > newer.case.created_at:
            raise ValidationFailed([public_error(["other_case"], "other_newer", "the other case is newer")])
        if not repository.granted_organisation_ids(
            session, newer.case.id
        ) <= repository.granted_organisation_ids(session, older.case.id):
            raise ValidationFailed(
                [public_error(["other_case"], "holders_differ", "the newer case has holders the older lacks")]
            )
        # One proposal per newer case: a new one replaces it (an older case may wait for several).
        replaced = session.get(MergeProposal, newer.case.id)
        if replaced is not None:
            session.delete(replaced)
            session.flush()
        session.add(
            MergeProposal(
                newer_case_id=newer.case.id,
                older_case_id=older.case.id,
                older_key=seal(
                    newer.data_key, older.data_key, merge_key_context(newer.case.id, older.case.id)
                ),
                created_at=utcnow(),
            )
        )
        self._audit(session, subject, "case.merge_proposed", newer.case.id, role="newer")
        self._audit(session, subject, "case.merge_proposed", older.case.id, role="older")
        session.commit()

    def withdraw_merge(self, session: Session, subject: Subject, case_id: str) -> None:
        """Take back a pending merge of this case (as either side); nothing to do if there is none."""
        unlocked = self.unlock(session, subject, case_id)
        if repository.merge_proposal_of(session, unlocked.case.id) is None:
            return
        repository.delete_merge_proposals(session, unlocked.case.id)
        self._audit(session, subject, "case.merge_withdrawn", unlocked.case.id)
        session.commit()

    def _merge_view(self, session: Session, case_id: str) -> dict[str, Any] | None:
        pending = repository.merge_proposal_of(session, case_id)
        if pending is None:
            return None
        newer = pending.newer_case_id == case_id
        return {
            "role": "newer" if newer else "older",
            "other_case_id": pending.older_case_id if newer else pending.newer_case_id,
        }


def merge_key_context(newer_case_id: str, older_case_id: str) -> Context:
    """The older case's key sealed under the newer one's, for one proposed merge of these two cases."""
    return Context("merge_key", case_id=newer_case_id, record_id=older_case_id)


def add_message(
    session: Session,
    case_id: str,
    data_key: bytes,
    body: str,
    direction: MessageDirection,
    author_id: str | None,
    organisation_id: str | None,
    uploads: Sequence[EncryptedUpload] = (),
    at: datetime | None = None,
) -> str:
    """One message of the two-way channel, sealed with the case key and bound to its own id.

    ``at``: only for the demo's synthetic year (service/demo_year.py), answered in months gone by."""
    message_id = new_id()
    now = at or utcnow()
    session.add(
        CaseMessage(
            id=message_id,
            case_id=case_id,
            direction=direction.value,
            author_id=author_id,
            organisation_id=organisation_id,
            ciphertext=seal(data_key, body.encode(), _ctx("message", case_id, message_id)),
            created_at=now,
        )
    )
    if not uploads:
        return message_id
    # The message row goes first: the attachments' foreign key points at it.
    session.flush()
    uploaded_by = "reporter" if direction is MessageDirection.from_reporter else "staff"
    session.add_all(files.rows_for(uploads, case_id, uploaded_by=uploaded_by, now=now, message_id=message_id))
    return message_id


def reporter_messages(session: Session, case_id: str, data_key: bytes) -> list[dict[str, Any]]:
    """The conversation as the reporter sees it (no staff identities, only the organisation's name)."""
    names = {org.id: org.display_name for org, _ in repository.holders(session, case_id)}
    attachments = files.describe(session, case_id, data_key, messages_only=True)
    return [
        {
            "direction": message.direction,
            "organisation": names.get(message.organisation_id or ""),
            "created_at": message.created_at.isoformat(),
            "body": open_sealed(data_key, message.ciphertext, _ctx("message", case_id, message.id)).decode(),
            "attachments": [
                {key: item[key] for key in ("id", "filename", "content_type", "size_bytes")}
                for item in attachments
                if item["message_id"] == message.id
            ],
        }
        for message in repository.messages(session, case_id)
    ]


def reporter_reply(
    session: Session, case: Case, data_key: bytes, body: str, uploads: Sequence[EncryptedUpload] = ()
) -> str:
    """The reporter answers; every active holder is told (content-free) through the outbox."""
    message_id = add_message(
        session, case.id, data_key, body, MessageDirection.from_reporter, None, None, uploads
    )
    if case.status == CaseStatus.waiting_for_reporter.value:
        case.status = CaseStatus.in_progress.value
    case.updated_at = utcnow()
    for org, grant in repository.holders(session, case.id):
        if grant.active:
            enqueue(session, "notifications.reporter_reply", case_id=case.id, organisation_id=org.id)
    session.commit()
    return message_id
