"""The attachment row: an evidence file of a case, encrypted in chunks in the blob store
(service/evidence/blobs.py). The table belongs to the case file (its foreign keys point at the case, the
incident and the message) but only the evidence package reads and writes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import ID_TYPE, MINUTE, Base, new_id, utcnow


class Attachment(Base):
    """Evidence, encrypted in chunks on disk; the blob name is random, never the uploaded file name."""

    __tablename__ = "attachment"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    incident_id: Mapped[str | None] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), nullable=True
    )
    # Files sent with a message of the two-way channel (either direction) instead of with an incident.
    message_id: Mapped[str | None] = mapped_column(
        ForeignKey("case_message.id", ondelete="CASCADE"), nullable=True, index=True
    )
    blob_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    # Original file name and similar details, sealed with the case key.
    meta_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(MINUTE, default=utcnow)

    # The parents named, not imported (evidence does not import cases): these relationships exist so that
    # the unit of work inserts the case and the incident before the file in one flush
    # (service/cases/models.py); nothing reads them.
    case: Mapped[Base] = relationship("Case")
    incident: Mapped[Base | None] = relationship("Incident")
