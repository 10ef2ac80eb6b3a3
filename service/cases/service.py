"""Counsellor case work: the inbox, the decrypted case, the workflow, messages and notes.

Every read goes through the subject's memberships: a case is opened only with an organisation key that the
subject holds through an active grant of that organisation, and every decryption is written to the audit log
in the same transaction as whatever else the request changes.

What is read is typed (service/cases/casefile.py builds it, service/cases/schemas.py names it); the
conversation's messages are sealed in service/cases/conversation.py; work on two cases at once (the same
event, a merge proposal) is in service/cases/links.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.audit.models import DetailValue
from service.auth.subject import Subject
from service.cases import events, proceedings, repository
from service.cases.casefile import inbox_row, incident_deadline, read_case_file
from service.cases.conversation import add_message
from service.cases.models import (
    Case,
    CaseLabel,
    CaseNote,
    CaseOutcome,
    CaseStatus,
    GrantRole,
    MessageDirection,
)
from service.cases.payload import ReportPayload
from service.cases.proceedings import Proceedings
from service.cases.schemas import CaseFile, CaseUpdate, InboxRow
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
from service.outbox.writer import enqueue
from service.taxonomy import Taxonomy
from service.validation import public_error

OUTCOMES = tuple(outcome.value for outcome in CaseOutcome)
LABELS = tuple(label.value for label in CaseLabel)


@dataclass(frozen=True)
class UnlockedCase:
    case: Case
    data_key: bytes
    # The organisation through whose grant the subject opened the case.
    organisation_id: str


def _ctx(purpose: str, case_id: str, record_id: str = "") -> Context:
    return Context(purpose, case_id=case_id, record_id=record_id)


class CaseService:
    def __init__(self, taxonomy: Taxonomy, audit: AuditLog) -> None:
        self.taxonomy = taxonomy
        self.audit = audit
        self.custody = KeyCustody(audit)

    # -- reading -------------------------------------------------------------------------------------------
    def inbox(self, session: Session, subject: Subject, filters: repository.CaseFilters) -> list[InboxRow]:
        """Readable metadata only: nothing is decrypted to list cases.

        So the Strafantrag deadline is shown as the week it falls in (from the clear reminder date), not as
        the day: decrypting every listed case would unwrap up to a page of case keys and write as many
        ``case.decrypt`` events for a glance at the list. The case page shows the exact day."""
        return [
            inbox_row(case, utcnow())
            for case in repository.visible_cases(session, subject.organisation_ids, filters)
        ]

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

    def audit_case(
        self, session: Session, subject: Subject, action: str, case_id: str, **details: DetailValue
    ) -> None:
        # What the audit log keeps of a detail: codes, ids, counts and flags (never case content).
        self.audit.append(
            session,
            actor_kind="staff",
            actor_id=subject.user_id,
            action=action,
            object_type="case",
            object_id=case_id,
            details=details or None,
        )

    def detail(self, session: Session, subject: Subject, case_id: str) -> CaseFile:
        unlocked = self.unlock(session, subject, case_id)
        view = read_case_file(session, unlocked.case, unlocked.data_key, self.taxonomy)
        self.audit_case(
            session, subject, "case.decrypt", unlocked.case.id, organisation_id=unlocked.organisation_id
        )
        return view

    def open_attachment(
        self, session: Session, subject: Subject, case_id: str, attachment_id: str, blobs: BlobStore
    ) -> DecryptedAttachment:
        """An attachment ready to stream, decrypted chunk by chunk; the download is audited first."""
        unlocked = self.unlock(session, subject, case_id)
        found = files.opened(session, unlocked.case.id, attachment_id, unlocked.data_key, blobs)
        self.audit_case(
            session, subject, "attachment.download", unlocked.case.id, attachment_id=attachment_id
        )
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
            self.audit_case(
                session, subject, "case.acknowledge", case.id, organisation_id=unlocked.organisation_id
            )
        if change.assignee_id is not None or change.unassign:
            case.assignee_id = None if change.unassign else change.assignee_id
            self.audit_case(session, subject, "case.assign", case.id, assignee_id=case.assignee_id)
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
            self.audit_case(
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
            self.audit_case(session, subject, "case.labels", case.id, labels=",".join(case.labels))
        case.updated_at = now

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
        payload: ReportPayload = json.loads(
            open_sealed(key, incident.payload, _ctx("incident", case.id, incident.id))
        )
        before = ",".join(incident.type_codes)
        incident.type_codes = list(type_codes)
        incident.severity = self.taxonomy.severity_of(type_codes)
        incident.complaint_reminder_on = proceedings.reminder_on(
            incident_deadline(self.taxonomy, type_codes, payload),
            proceedings.read(key, incident),
            datetime.now(LOCAL_ZONE).date(),
        )
        case.severity = min(i.severity for i in case.incidents)
        extract = events.extract_of(session, key, incident)
        if extract is not None:
            for name, value in classification(self.taxonomy, list(type_codes)).items():
                setattr(extract, name, value)
        case.updated_at = utcnow()
        self.audit_case(
            session,
            subject,
            "case.reclassify",
            case.id,
            seq=seq,
            codes_from=before,
            codes_to=",".join(type_codes),
        )

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
        self.audit_case(
            session,
            subject,
            "case.transfer" if transfer else "case.refer",
            case.id,
            organisation_from=unlocked.organisation_id,
            organisation_to=target.id,
            reporter_consent=consent,
        )

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
        self.audit_case(
            session, subject, "case.message", case.id, message_id=message_id, attachments=len(uploads)
        )
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
        self.audit_case(session, subject, "case.note", unlocked.case.id, note_id=note_id)
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
        self.audit_case(session, subject, "case.matching_resume", unlocked.case.id, done=done)
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
        self.audit_case(session, subject, "case.proceedings", unlocked.case.id, seq=seq)
