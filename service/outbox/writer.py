"""Writes outbox rows inside the caller's transaction; the relay (workers/) delivers them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.db import NewRow, new_id, new_row, utcnow
from service.outbox.models import OutboxMessage, PayloadValue

# A field of an outbox payload: an identifier or a code, flat (never content, never a nested value). The
# fields differ by topic (service/notifications/recipients.py reads them); their values are always these.
_ALLOWED_VALUE_TYPES = (str, int, bool, type(None))


def message_row(topic: str, **payload: PayloadValue) -> NewRow:
    """A complete outbox row. Values must be identifiers or codes (flat scalars): checked once, here."""
    for key, value in payload.items():
        if not isinstance(value, _ALLOWED_VALUE_TYPES):
            raise TypeError(f"outbox payload field {key!r} must be a scalar identifier or code")
    now = utcnow()
    return new_row(
        OutboxMessage,
        id=new_id(),
        topic=topic,
        payload=dict(payload),
        created_at=now,
        available_at=now,
        dispatched_at=None,
        completed_at=None,
        attempts=0,
        dead_at=None,
        last_error=None,
    )


def claim(row: NewRow) -> NewRow:
    """Mark a new row as dispatched by the process writing it (``service.outbox.dispatch``)."""
    row.values["dispatched_at"] = row.values["created_at"]
    return row


def message(topic: str, **payload: PayloadValue) -> OutboxMessage:
    """The same row as an ORM object, for a caller that adds it to its session."""
    return OutboxMessage(**message_row(topic, **payload).values)


def enqueue(session: Session, topic: str, **payload: PayloadValue) -> OutboxMessage:
    """Add an outbox row to the caller's transaction."""
    row = message(topic, **payload)
    session.add(row)
    return row
