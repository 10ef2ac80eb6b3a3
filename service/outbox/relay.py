"""The outbox relay: hands committed outbox rows to the broker (ids only), never loses one.

Rows are written in the transaction of the change they announce, so a report that committed has its
notification row, whatever the broker does. The relay claims due rows (on PostgreSQL with
``FOR UPDATE SKIP LOCKED``, so two relays never hand out the same row at once), publishes one task per row
with the row id as its only argument, and marks the row dispatched. A publish that fails (broker down)
leaves the row pending with a capped exponential backoff. A row dispatched long ago but never completed
(a broker that lost its queue, a task dropped on the floor) is handed out again: the delivery log makes a
second delivery harmless, a lost one would not be.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import false, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db import utcnow
from service.outbox.models import OutboxMessage

log = logging.getLogger("rueckhalt.outbox")

# Every outbox topic family and the task that delivers it (tasks are named <feature>.<verb>).
TASK_OF_TOPIC_PREFIX = {
    "notifications.": "notifications.deliver",
    "alerts.": "notifications.deliver",
    "reminders.": "notifications.deliver",
}

Publish = Callable[[str, str], None]


def task_for(topic: str) -> str:
    for prefix, task in TASK_OF_TOPIC_PREFIX.items():
        if topic.startswith(prefix):
            return task
    raise ValueError(f"no task delivers outbox topic {topic!r}")


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with jitter (half to full of the step), so retries do not stampede."""
    step = min(cap, base * (2 ** max(0, attempt - 1)))
    jitter = (rng or random).uniform(0.5, 1.0)
    return float(step * jitter)


@dataclass
class RelayResult:
    dispatched: int = 0
    failed: int = 0


def _claim(session: Session, now: datetime, stale_before: datetime, limit: int) -> list[OutboxMessage]:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # SQLite reads take no lock: take the write lock first, so two relays cannot claim the same rows.
        session.execute(
            update(OutboxMessage)
            .where(false())
            .values(attempts=OutboxMessage.attempts)
            .execution_options(synchronize_session=False)
        )
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.completed_at.is_(None),
            OutboxMessage.available_at <= now,
            or_(OutboxMessage.dispatched_at.is_(None), OutboxMessage.dispatched_at < stale_before),
        )
        .order_by(OutboxMessage.available_at, OutboxMessage.created_at)
        .limit(limit)
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def relay(
    sessions: sessionmaker[Session],
    publish: Publish,
    *,
    batch_size: int = 100,
    redispatch_after: timedelta = timedelta(minutes=15),
    retry_base_seconds: float = 5.0,
    retry_cap_seconds: float = 300.0,
    now: datetime | None = None,
) -> RelayResult:
    """One pass: claim due rows (short transaction), publish them, give back those the broker refused.

    Claiming marks a row dispatched and commits before anything is published, so no database lock is held
    while the broker is slow. A relay that dies between claim and publish leaves rows marked dispatched:
    they are handed out again after ``redispatch_after``; late, never lost.
    """
    result = RelayResult()
    moment = now or utcnow()
    with sessions() as session:
        rows = _claim(session, moment, moment - redispatch_after, batch_size)
        claimed = [(row.id, row.topic) for row in rows]
        for row in rows:
            row.dispatched_at = moment
        session.commit()
    refused: list[tuple[str, str]] = []
    for index, (row_id, topic) in enumerate(claimed):
        try:
            publish(task_for(topic), row_id)
        except Exception as exc:
            # One refusal says enough about the broker: the rest is given back for the next pass.
            refused = [(row_id, type(exc).__name__), *((rid, "") for rid, _ in claimed[index + 1 :])]
            log.warning("outbox relay: the broker refused a task (%s)", type(exc).__name__)
            break
        result.dispatched += 1
    if refused:
        with sessions() as session:
            for row_id, error in refused:
                given_back = session.get(OutboxMessage, row_id)
                if given_back is None:
                    continue
                given_back.dispatched_at = None
                if error:
                    given_back.attempts += 1
                    given_back.last_error = error
                    delay = backoff_seconds(given_back.attempts, retry_base_seconds, retry_cap_seconds)
                    given_back.available_at = moment + timedelta(seconds=delay)
                    result.failed += 1
            session.commit()
    return result
