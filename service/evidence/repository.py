"""Attachment queries: the files of a case, and one of them by id (only within its case)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.evidence.models import Attachment


def attachments(session: Session, case_id: str) -> Sequence[Attachment]:
    return session.scalars(
        select(Attachment).where(Attachment.case_id == case_id).order_by(Attachment.created_at)
    ).all()


def attachment(session: Session, case_id: str, attachment_id: str) -> Attachment | None:
    return session.scalar(
        select(Attachment).where(Attachment.case_id == case_id, Attachment.id == attachment_id)
    )
