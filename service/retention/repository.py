"""Queries of the retention purge; nothing else in the feature builds them.

Reads select columns, not entities: a purge must act on what the database holds now, not on a ``Case``
that the session's identity map kept from an earlier read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Delete, and_, delete, false, func, not_, or_, select, update
from sqlalchemy.orm import Session

from service.cases.models import (
    Case,
    CaseStatus,
    ReminderLog,
)
from service.evidence.models import Attachment
from service.outbox.models import DeliveryLog, OutboxMessage
from service.reports.models import SubmissionToken


@dataclass(frozen=True)
class ClosedCase:
    id: str
    status: str
    outcome: str | None
    closed_at: datetime | None


def _due_condition(cutoffs: Mapping[str, datetime], default_cutoff: datetime) -> ColumnElement[bool]:
    """Closed, and closed before the cutoff of its outcome (listed outcomes) or the default one (others)."""
    listed = [and_(Case.outcome == outcome, Case.closed_at <= cutoff) for outcome, cutoff in cutoffs.items()]
    # ``outcome NOT IN (...)`` is NULL for a NULL outcome, so a case closed without one (only possible past
    # the service) needs its own branch to fall under the default period.
    unlisted = or_(Case.outcome.is_(None), not_(Case.outcome.in_(list(cutoffs)))) if cutoffs else None
    default = and_(Case.closed_at <= default_cutoff, *([unlisted] if unlisted is not None else []))
    return and_(
        Case.status == CaseStatus.closed.value,
        Case.closed_at.is_not(None),
        or_(default, *listed),
    )


def closed_cases_due(
    session: Session, cutoffs: Mapping[str, datetime], default_cutoff: datetime
) -> list[ClosedCase]:
    """Cases to purge, oldest closure first. Only ``status == closed`` counts: ``closed_at`` alone does not
    (a row edited past the service, or a re-open that left it behind, must never lead to a purge)."""
    rows = session.execute(
        select(Case.id, Case.status, Case.outcome, Case.closed_at)
        .where(_due_condition(cutoffs, default_cutoff))
        .order_by(Case.closed_at, Case.id)
    )
    return [ClosedCase(**row._asdict()) for row in rows]


def closed_cases_to_notify(
    session: Session, cutoffs: Mapping[str, datetime], default_cutoff: datetime, kind: str
) -> list[ClosedCase]:
    """Closed cases due by the cutoffs (a future ``now``) whose reporter left a notification address and has
    not had the notice ``kind`` for this closure (``reminder_log.ref``: the closing minute, so a case closed
    again after a re-open is told again, and a closure is told once)."""
    rows = session.execute(
        select(Case.id, Case.status, Case.outcome, Case.closed_at)
        .where(_due_condition(cutoffs, default_cutoff), Case.notify_ciphertext.is_not(None))
        .order_by(Case.closed_at, Case.id)
    )
    found = [ClosedCase(**row._asdict()) for row in rows]
    if not found:
        return []
    told = {
        (case_id, ref)
        for case_id, ref in session.execute(
            select(ReminderLog.case_id, ReminderLog.ref).where(
                ReminderLog.kind == kind, ReminderLog.case_id.in_([row.id for row in found])
            )
        )
    }
    return [
        row for row in found if row.closed_at is not None and (row.id, closure_ref(row.closed_at)) not in told
    ]


def closure_ref(closed_at: datetime) -> str:
    """A closure as ``reminder_log.ref``: its minute in UTC."""
    return closed_at.astimezone(UTC).strftime("%Y%m%d%H%M")


def lock_case(session: Session, case_id: str) -> ClosedCase | None:
    """Lock the case row until the transaction ends, then read its current state (None: it is gone).

    PostgreSQL: FOR UPDATE, which also blocks new child rows (their foreign key check takes KEY SHARE),
    so no message or attachment can be added to the case while it is being purged; a re-open that
    committed before the lock is seen, because READ COMMITTED reads after the wait. SQLite has no row
    locks and ignores FOR UPDATE: an UPDATE that matches nothing makes the transaction take the database's
    write lock first, so the read below is the newest state and no writer can change it until commit.
    """
    if session.get_bind(Case).dialect.name == "sqlite":
        session.execute(
            update(Case)
            .where(false())
            .values(status=Case.status)
            .execution_options(synchronize_session=False)
        )
    row = session.execute(
        select(Case.id, Case.status, Case.outcome, Case.closed_at).where(Case.id == case_id).with_for_update()
    ).first()
    return None if row is None else ClosedCase(**row._asdict())


def blob_names_of(session: Session, case_id: str) -> list[str]:
    return list(session.scalars(select(Attachment.blob_name).where(Attachment.case_id == case_id)))


def referenced_among(session: Session, names: set[str]) -> set[str]:
    """Those of ``names`` that an attachment row references."""
    if not names:
        return set()
    return set(session.scalars(select(Attachment.blob_name).where(Attachment.blob_name.in_(sorted(names)))))


def _deleted(session: Session, statement: Delete) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def _outbox_done_before(cutoff: datetime) -> ColumnElement[bool]:
    return and_(OutboxMessage.completed_at.is_not(None), OutboxMessage.completed_at < cutoff)


def count_completed_outbox(session: Session, cutoff: datetime) -> int:
    return int(
        session.scalar(select(func.count()).select_from(OutboxMessage).where(_outbox_done_before(cutoff)))
        or 0
    )


def delete_completed_outbox(session: Session, cutoff: datetime) -> int:
    """Delivered notifications completed before ``cutoff``; pending and failed ones are never touched.

    Their delivery log goes with them (it only exists to stop a redelivered task sending twice)."""
    done = select(OutboxMessage.id).where(_outbox_done_before(cutoff))
    session.execute(delete(DeliveryLog).where(DeliveryLog.outbox_id.in_(done)))
    return _deleted(session, delete(OutboxMessage).where(_outbox_done_before(cutoff)))


def count_expired_submission_tokens(session: Session, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(SubmissionToken).where(SubmissionToken.expires_at <= now)
        )
        or 0
    )


def delete_expired_submission_tokens(session: Session, now: datetime) -> int:
    return _deleted(session, delete(SubmissionToken).where(SubmissionToken.expires_at <= now))
