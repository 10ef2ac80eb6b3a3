"""The reporter's way back into the case file: the receipt opens it, and /fall reads and changes it.

Everything here runs with the case key the receipt unlocked (or the split-key session holds): the view of
the case (typed, for the pages and the API), the address told of new messages, "perpetrator known since",
the proceedings of an incident and the downloads of the case's files.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.cases import conversation, proceedings
from service.cases import repository as case_rows
from service.cases.contact import seal_address
from service.cases.deadlines import (
    ComplaintDeadline,
    payload_complaint_deadline,
)
from service.cases.models import (
    CaseStatus,
)
from service.cases.payload import PerpetratorPayload, ReportPayload
from service.cases.proceedings import Proceedings
from service.cases.repository import KeyHolder
from service.crypto import (
    DecryptionError,
    InvalidReceipt,
    normalize_receipt,
    open_sealed,
    receipt_lookup,
    seal,
    unwrap_for_reporter,
)
from service.db import utcnow
from service.errors import NotFound
from service.evidence import attachments as files
from service.evidence.attachments import FileInfo
from service.evidence.blobs import BlobStore
from service.reports import repository
from service.reports.identifiers import PerpetratorIdentifiers
from service.reports.opened import OpenedCase, ctx, local_day, local_today
from service.reports.schemas import (
    PerpetratorIdentifier,
)
from service.taxonomy import Taxonomy
from service.taxonomy.loader import more_urgent

log = logging.getLogger("rueckhalt.intake")

# Written in place of a real unwrap when a receipt matches nothing, so that a wrong receipt costs about
# as much time as a right one (no timing oracle for which receipts exist).
_DUMMY_SALT = b"\x00" * 32


@dataclass(frozen=True)
class FileView:
    """A file of the case as the reporter sees it (downloadable from /fall)."""

    id: str
    filename: str | None
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class IncidentView:
    seq: int
    type_codes: tuple[str, ...]
    channel: str
    created_at: str
    description: str
    occurred_on: str | None
    perpetrator_known_on: str | None
    complaint: ComplaintDeadline
    proceedings: Proceedings | None
    attachments: int
    # The files the reporter sent with this incident.
    files: tuple[FileView, ...]


@dataclass(frozen=True)
class MessageView:
    direction: str
    # The reporter sees the organisation, never which counsellor wrote.
    organisation: str | None
    created_at: str
    body: str
    attachments: tuple[FileView, ...]


@dataclass(frozen=True)
class ReporterView:
    """The reporter's own case file, decrypted."""

    status: str
    created_at: str
    # Days only: when the case was acknowledged and first answered (the reporter's way to see it without a
    # notification address).
    acknowledged_on: str | None
    first_reply_on: str | None
    organisations: tuple[str, ...]
    key_holders: tuple[KeyHolder, ...]
    incidents: tuple[IncidentView, ...]
    messages: tuple[MessageView, ...]
    notify: bool
    identifiers: tuple[PerpetratorIdentifier, ...]
    # Given but not looked up yet: the hour's budget was used up when they came, or a rotation of the
    # matching key deleted the tokens (the next sign-in registers them).
    identifiers_waiting: bool


def _file_view(item: FileInfo) -> FileView:
    return FileView(
        id=item["id"],
        filename=item["filename"],
        content_type=item["content_type"],
        size_bytes=int(item["size_bytes"]),
    )


class ReporterCases(PerpetratorIdentifiers):
    """The reporter-side methods of ``IntakeService`` (service.py), which holds the keys and the audit log.

    They change the session they are given and never commit it: the page or endpoint that calls them is the
    transaction (``service.deps.in_transaction``, ``DbSession``), so a failure anywhere in it keeps nothing.
    A NotFound raised after a lock was taken is rolled back by that transaction too."""

    taxonomy: Taxonomy
    audit: AuditLog
    _pepper: bytes
    _pepper_id: str
    _previous_peppers: tuple[bytes, ...]
    _notification_key: bytes

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
                unwrap_for_reporter(b"\x01" + b"\x00" * 60, "0" * 20, _DUMMY_SALT, ctx("reporter_key", "-"))
            raise NotFound()
        try:
            data_key = unwrap_for_reporter(
                case.reporter_wrapped_key, receipt, case.reporter_salt, ctx("reporter_key", case.id)
            )
        except DecryptionError:
            raise NotFound() from None
        if rekey:
            # The receipt proved itself: its case moves to the current pepper now (the reporter's sign-in is
            # the only moment the receipt is here to do it). Once a commit of its own; now the caller's
            # transaction (the sign-in, or the API call) keeps it. Should that call fail after this, the move
            # is rolled back with it and done again at the next opening: the previous pepper still finds
            # the case until it is retired, and a failed call is the rare case.
            case.lookup_hash = receipt_lookup(self._pepper, receipt)
            case.lookup_key_id = self._pepper_id
        return OpenedCase(case=case, data_key=data_key)

    def open_case_by_id(self, session: Session, case_id: str, data_key: bytes) -> OpenedCase:
        """For a signed-in reporter session: the case id and key come from the split-key session."""
        case = repository.case_by_id(session, case_id)
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
        # The caller's transaction commits the audit event before the file streams.
        return found

    def set_notify_address(self, session: Session, opened: OpenedCase, address: str | None) -> None:
        """The reporter chooses (or drops) the address told of new messages; an old one is overwritten."""
        case = opened.case
        case.notify_ciphertext = (
            seal_address(self._notification_key, case.id, address) if address is not None else None
        )
        case.updated_at = utcnow()

    def payload_deadline(self, type_codes: list[str], payload: ReportPayload) -> ComplaintDeadline:
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
            raise NotFound()
        context = ctx("incident", case.id, incident.id)
        payload: ReportPayload = json.loads(open_sealed(opened.data_key, incident.payload, context))
        perpetrator: PerpetratorPayload = {**(payload.get("perpetrator") or {})}
        perpetrator["known_on"] = known_on.isoformat() if known_on else None
        payload["perpetrator"] = perpetrator
        incident.payload = seal(
            opened.data_key, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(), context
        )
        deadline = self.payload_deadline(list(incident.type_codes), payload)
        now = utcnow()
        incident.complaint_reminder_on = proceedings.reminder_on(
            deadline, proceedings.read(opened.data_key, incident), local_today(now)
        )
        if deadline.urgent(local_today(now)) and case.status != CaseStatus.closed.value:
            case.urgency = more_urgent(case.urgency, "high")
        case.updated_at = now
        return deadline

    def record_proceedings(self, session: Session, opened: OpenedCase, seq: int, record: Proceedings) -> None:
        """The reporter records the proceedings of an incident (/fall), as a counsellor can on the case
        page: sealed, and a Strafantrag recorded ends its reminders. Audited without content."""
        case = case_rows.lock_case(session, opened.case.id)
        incident = None if case is None else next((i for i in case.incidents if i.seq == seq), None)
        if case is None or incident is None:
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

    def reporter_view(self, session: Session, opened: OpenedCase) -> ReporterView:
        """The reporter's own case file, decrypted with the key their receipt unlocked."""
        case = opened.case
        counts = repository.attachment_counts(session, case.id)
        # The files the reporter sent with each incident, listed (and downloadable) on /fall.
        incident_files: dict[str, list[FileView]] = {}
        for item in files.describe(session, case.id, opened.data_key):
            if item["incident_id"] is not None:
                incident_files.setdefault(item["incident_id"], []).append(_file_view(item))
        incidents = []
        for incident in case.incidents:
            payload: ReportPayload = json.loads(
                open_sealed(opened.data_key, incident.payload, ctx("incident", case.id, incident.id))
            )
            incidents.append(
                IncidentView(
                    seq=incident.seq,
                    type_codes=tuple(incident.type_codes),
                    channel=incident.channel,
                    created_at=incident.created_at.isoformat(),
                    description=payload["description"],
                    occurred_on=payload.get("occurred_on"),
                    perpetrator_known_on=(payload.get("perpetrator") or {}).get("known_on"),
                    complaint=self.payload_deadline(incident.type_codes, payload),
                    proceedings=proceedings.read(opened.data_key, incident),
                    attachments=counts.get(incident.id, 0),
                    files=tuple(incident_files.get(incident.id, [])),
                )
            )
        messages = [
            MessageView(
                direction=message.direction,
                organisation=message.organisation,
                created_at=message.created_at,
                body=message.body,
                attachments=tuple(_file_view(item) for item in message.attachments),
            )
            for message in conversation.reporter_messages(session, case.id, opened.data_key)
        ]
        first_reply = repository.first_reply_at(session, case.id)
        return ReporterView(
            status=case.status,
            created_at=case.created_at.isoformat(),
            acknowledged_on=local_day(case.acknowledged_at),
            first_reply_on=local_day(first_reply),
            organisations=tuple(case_rows.active_holder_names(session, case.id)),
            key_holders=tuple(case_rows.key_holders(session, case.id)),
            incidents=tuple(incidents),
            messages=tuple(messages),
            notify=case.notify_ciphertext is not None,
            identifiers=tuple(self.identifiers_of(case, opened.data_key)),
            identifiers_waiting=bool(
                self.matching.waiting(session, case.id, self._normalised_identifiers(case, opened.data_key))
            ),
        )
