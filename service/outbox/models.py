"""Transactional outbox: side effects are rows written in the same transaction as the change.

Payloads carry identifiers and coarse codes only, never report content: the broker is a pipe that a
compromised Redis can read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, Base, UTCDateTime, new_id, utcnow

# What a message carries: identifiers and flags, never content (service.outbox.writer checks it).
PayloadValue = str | int | bool | None


class OutboxMessage(Base):
    __tablename__ = "outbox_message"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, PayloadValue]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set when every retry failed: the row is kept for the operators, and an alert went out instead.
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # An error class name only, never a message that might quote content.
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (
        Index("ix_outbox_message_pending", "completed_at", "available_at"),
        # The match notices of the last day (service.matching: at most one a day per case and organisation).
        Index("ix_outbox_message_topic_available", "topic", "available_at"),
    )


class DeliveryLog(Base):
    """One row per delivered (outbox row, recipient): a redelivered task skips what already went out."""

    __tablename__ = "delivery_log"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    outbox_id: Mapped[str] = mapped_column(ID_TYPE)
    # "mail:staff:<user id>", "mail:reporter", "webhook:<organisation id>": never an address.
    recipient_key: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("outbox_id", "recipient_key"),)


class WorkerHeartbeat(Base):
    """Written by the beat schedule through a worker: /healthz tells whether anyone is doing the work."""

    __tablename__ = "worker_heartbeat"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
