"""Queries on the audit chain; nothing else builds them.

Reads select columns, not entities. A verifier must see what the database holds *now*: an ``AuditEvent``
already in the session's identity map would come back as it was loaded, hiding a change made behind the
ORM's back, and a million entities would pile up in the session during a full verification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import false, func, select, update
from sqlalchemy.orm import Session

from service.audit.models import AuditEvent, DetailValue

# Key of the PostgreSQL advisory lock that serialises appends to the chain. Any fixed 64-bit number works as
# long as no other feature uses it; this one is b"rh-audit" read as a big-endian integer, so it is
# recognisable in pg_locks.
CHAIN_LOCK_KEY = 0x72682D6175646974


@dataclass(frozen=True)
class StoredEvent:
    """One row as the database holds it, detached from any session."""

    seq: int
    at: datetime
    actor_kind: str
    actor_id: str | None
    action: str
    object_type: str | None
    object_id: str | None
    details: dict[str, DetailValue]
    prev_mac: str
    mac: str


_COLUMNS = (
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.actor_kind,
    AuditEvent.actor_id,
    AuditEvent.action,
    AuditEvent.object_type,
    AuditEvent.object_id,
    AuditEvent.details,
    AuditEvent.prev_mac,
    AuditEvent.mac,
)


def lock_chain_postgresql(session: Session) -> None:
    """Hold the chain's advisory lock until the caller's transaction ends (commit or rollback)."""
    session.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK_KEY)))


def claim_write_lock_sqlite(session: Session) -> None:
    """Make the caller's SQLite transaction hold the database's write lock.

    An UPDATE that matches no row still starts a write transaction (the driver issues BEGIN before it and
    SQLite takes the write lock when the statement starts), so the head read after it is the newest one and
    no other writer can append until this transaction ends. It changes no row.
    """
    session.execute(
        update(AuditEvent)
        .where(false())
        .values(seq=AuditEvent.seq)
        .execution_options(synchronize_session=False)
    )


def head(session: Session) -> tuple[int, str] | None:
    """(seq, mac) of the newest row, or None for an empty log."""
    row = session.execute(
        select(AuditEvent.seq, AuditEvent.mac).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return None if row is None else (row.seq, row.mac)


def head_event(session: Session) -> StoredEvent | None:
    """The newest row, whole (an append checks which key wrote it)."""
    row = session.execute(select(*_COLUMNS).order_by(AuditEvent.seq.desc()).limit(1)).first()
    return None if row is None else StoredEvent(**row._asdict())


def segment_retiring(session: Session, action: str, key_id: str) -> bool:
    """Whether a segment-begun row retired the audit key with this id (both columns are indexed)."""
    found = session.scalar(
        select(AuditEvent.seq).where(AuditEvent.action == action, AuditEvent.object_id == key_id).limit(1)
    )
    return found is not None


def events_after(session: Session, after_seq: int, limit: int) -> list[StoredEvent]:
    """The next ``limit`` rows after ``after_seq`` in seq order (keyset pagination: constant memory, and no
    long-lived server-side cursor, however long the chain)."""
    rows = session.execute(
        select(*_COLUMNS).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq).limit(limit)
    )
    return [StoredEvent(**row._asdict()) for row in rows]


def next_seq_after(session: Session, after_seq: int) -> int | None:
    """Only the seq of the next row: readable even when another column of that row is not."""
    return session.scalar(
        select(AuditEvent.seq).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq).limit(1)
    )


def latest(
    session: Session, limit: int, *, actor_id: str | None = None, action_prefix: str | None = None
) -> list[StoredEvent]:
    """The newest ``limit`` rows, oldest first (the order ``tail`` prints them in); optionally only one
    actor's (a compromised account: what did it open?) or only actions starting with a prefix."""
    query = select(*_COLUMNS)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if action_prefix is not None:
        query = query.where(AuditEvent.action.startswith(action_prefix, autoescape=True))
    rows = session.execute(query.order_by(AuditEvent.seq.desc()).limit(limit))
    return [StoredEvent(**row._asdict()) for row in reversed(rows.all())]


def latest_with_action(session: Session, action: str) -> StoredEvent | None:
    row = session.execute(
        select(*_COLUMNS).where(AuditEvent.action == action).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return StoredEvent(**row._asdict()) if row is not None else None
