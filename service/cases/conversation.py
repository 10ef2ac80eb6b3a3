"""The two-way channel between the reporter and the holders of a case: each message sealed with the case
key and bound to its own id; files sent with a message point at its row. Counsellors write through
``CaseService.post_message`` (audited); the reporter reads and answers on /fall (service/reports)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from service.cases import repository
from service.cases.models import Case, CaseMessage, CaseStatus, MessageDirection
from service.cases.schemas import ReporterMessage
from service.crypto import Context, open_sealed, seal
from service.db import new_id, utcnow
from service.evidence import attachments as files
from service.evidence.attachments import FileInfo
from service.evidence.uploads import EncryptedUpload
from service.outbox.writer import enqueue


def message_context(case_id: str, message_id: str) -> Context:
    return Context("message", case_id=case_id, record_id=message_id)


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
            ciphertext=seal(data_key, body.encode(), message_context(case_id, message_id)),
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


def reporter_messages(session: Session, case_id: str, data_key: bytes) -> list[ReporterMessage]:
    """The conversation as the reporter sees it (no staff identities, only the organisation's name)."""
    names = {org.id: org.display_name for org, _ in repository.holders(session, case_id)}
    attachments = files.describe(session, case_id, data_key, messages_only=True)
    return [
        ReporterMessage(
            direction=MessageDirection(message.direction),
            organisation=names.get(message.organisation_id or ""),
            created_at=message.created_at.isoformat(),
            body=open_sealed(data_key, message.ciphertext, message_context(case_id, message.id)).decode(),
            attachments=tuple(
                FileInfo(
                    id=item["id"],
                    filename=item["filename"],
                    content_type=item["content_type"],
                    size_bytes=item["size_bytes"],
                )
                for item in attachments
                if item["message_id"] == message.id
            ),
        )
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
    return message_id
