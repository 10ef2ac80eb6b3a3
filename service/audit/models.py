"""The hash-chained audit log: who decrypted, downloaded, assigned, exported or changed what, and when.

Rows carry identifiers and codes, never content. Each row's MAC covers the previous row's MAC, so a removed,
reordered or altered row breaks the chain (`rueckhalt audit verify`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, Base, UTCDateTime, utcnow

# An audit event's details: flat scalars only (service.audit.service cleans them), never content.
DetailValue = str | int | bool | None


class AuditEvent(Base):
    __tablename__ = "audit_event"

    # Gap-free position in the chain; assigned under a lock by the writer.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[str | None] = mapped_column(ID_TYPE, nullable=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    object_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    details: Mapped[dict[str, DetailValue]] = mapped_column(JSON)
    prev_mac: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))
