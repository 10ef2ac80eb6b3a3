"""The coordinator dashboard's snapshots: built monthly, gated, stored; read only as stored.

Building a snapshot reads every extract row of the year and all earlier released snapshots of that year,
applies the primary, dominance and secondary rules and runs the LP attacker (``suppression``/``gate``). A
snapshot that fails the gate is stored as not released and never shown. Coordinators read stored
snapshots only: a view never recomputes anything, so what one coordinator saw is what all of them see.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.db import new_id, utcnow
from service.errors import ValidationFailed
from service.extract.models import StatisticsExtract
from service.statistics.dashboard.models import StatisticsSnapshot
from service.statistics.dashboard.snapshot import Snapshot
from service.statistics.dashboard.suppression import build_snapshot
from service.statistics.domains import Domains
from service.statistics.policy import CoordinatorRules
from service.statistics.rows import from_model

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def audit_view(
    session: Session, audit: AuditLog, user_id: str, object_id: str, action: str = "dashboard.view"
) -> None:
    """Every view of the dashboard, and every export, is written to the audit log (docs/statistics.md).

    In the caller's transaction, which commits it; call it last before the commit (the audit chain's lock
    is held from here)."""
    audit.append(
        session,
        actor_kind="staff",
        actor_id=user_id,
        action=action,
        object_type="dashboard",
        object_id=object_id,
    )


def _stored(row: StatisticsSnapshot) -> Snapshot:
    # The JSON column holds what ``Snapshot.as_json`` wrote (make_snapshot is its only writer); the column
    # itself is typed loosely like every JSON column, so the document type is asserted here, once.
    return Snapshot.from_json(row.payload)


def released_snapshots(session: Session, year: int | None = None) -> list[Snapshot]:
    query = select(StatisticsSnapshot).where(StatisticsSnapshot.released.is_(True))
    if year is not None:
        query = query.where(StatisticsSnapshot.as_of.like(f"{year:04d}-%"))
    rows = session.scalars(query.order_by(StatisticsSnapshot.as_of, StatisticsSnapshot.created_at))
    return [_stored(row) for row in rows]


def snapshot_of(session: Session, as_of: str) -> Snapshot | None:
    row = session.scalars(
        select(StatisticsSnapshot)
        .where(StatisticsSnapshot.as_of == as_of, StatisticsSnapshot.released.is_(True))
        .order_by(StatisticsSnapshot.created_at.desc())
        .limit(1)
    ).first()
    return _stored(row) if row is not None else None


def make_snapshot(
    session: Session, *, as_of: str, domains: Domains, rules: CoordinatorRules, audit: AuditLog
) -> Snapshot:
    """Build, gate and store the snapshot as of ``as_of``; an existing released one is returned as stored.

    The caller commits (the task, the CLI command, the demo year: each is the snapshot's transaction)."""
    found = _MONTH.match(as_of)
    if found is None:
        raise ValidationFailed([{"loc": ["as_of"], "type": "invalid", "msg": "a month as YYYY-MM"}])
    existing = snapshot_of(session, as_of)
    if existing is not None:
        return existing
    year = int(found.group(1))
    rows = [
        from_model(model)
        for model in session.scalars(
            select(StatisticsExtract).where(
                StatisticsExtract.receipt_month.like(f"{year:04d}-%"),
                StatisticsExtract.receipt_month <= as_of,
            )
        )
    ]
    snapshot = build_snapshot(rows, as_of, released_snapshots(session, year), domains, rules)
    record = StatisticsSnapshot(
        id=new_id(),
        as_of=as_of,
        released=snapshot.released,
        revision=snapshot.revision,
        payload=snapshot.as_json(),
        created_at=utcnow(),
    )
    session.add(record)
    session.flush()
    audit.append(
        session,
        actor_kind="system",
        actor_id=None,
        action="statistics.snapshot",
        object_type="statistics_snapshot",
        object_id=record.id,
        details={"as_of": as_of, "released": snapshot.released, "revision": snapshot.revision},
    )
    return snapshot
