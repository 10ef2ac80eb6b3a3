"""Writes outbox rows inside the caller's transaction; the relay (workers/) delivers them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.outbox.models import OutboxMessage

_ALLOWED_VALUE_TYPES = (str, int, bool, type(None))


def enqueue(session: Session, topic: str, **payload: Any) -> OutboxMessage:
    """Add an outbox row; values must be identifiers or codes (flat scalars), checked here once for all."""
    for key, value in payload.items():
        if not isinstance(value, _ALLOWED_VALUE_TYPES):
            raise TypeError(f"outbox payload field {key!r} must be a scalar identifier or code")
    message = OutboxMessage(topic=topic, payload=dict(payload))
    session.add(message)
    return message
