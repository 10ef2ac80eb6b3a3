"""Metrics read from the database when Prometheus scrapes: they hold across restarts and processes.

Cheap by construction: the pending outbox rows are found through ``ix_outbox_message_pending`` (completed
rows are never read), the heartbeat is one row. A database that does not answer within two seconds makes
the scrape report ``rueckhalt_metrics_database_up 0`` instead of hanging it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, or_, select, text

from service.db import utcnow
from service.observability.metrics import HEARTBEATS
from service.outbox.models import OutboxMessage, WorkerHeartbeat
from service.runtime import Runtime

log = logging.getLogger("rueckhalt.metrics")

STATEMENT_TIMEOUT_MS = 2000

# The families this collector writes (the alert rules' test checks every name a rule uses against these).
DATABASE_UP = "rueckhalt_metrics_database_up"
OUTBOX_PENDING = "rueckhalt_outbox_pending"
OUTBOX_OLDEST_AGE = "rueckhalt_outbox_oldest_pending_age_seconds"
HEARTBEAT_AGE = "rueckhalt_worker_heartbeat_age_seconds"
FAMILIES = (DATABASE_UP, OUTBOX_PENDING, OUTBOX_OLDEST_AGE, HEARTBEAT_AGE)


class DatabaseCollector(Collector):
    """The outbox backlog, the age of its oldest pending row and the worker's heartbeat age."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def describe(self) -> Iterator[Metric]:
        # Nothing described in advance: the registry must not query the database when this is registered.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(DATABASE_UP, "1 if the database answered the metrics' queries at this scrape")
        try:
            pending, oldest_age, beats = self._read()
        except Exception as exc:  # the scrape must answer; the type only (a message may quote a statement)
            log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            OUTBOX_PENDING,
            "Outbox rows not yet delivered (waiting, in flight or waiting for a retry)",
            value=pending,
        )
        yield GaugeMetricFamily(
            OUTBOX_OLDEST_AGE,
            "Age of the oldest outbox row not yet delivered (0 when there is none)",
            value=oldest_age,
        )
        heartbeat = GaugeMetricFamily(
            HEARTBEAT_AGE,
            "Seconds since a worker last ran the heartbeat task (+Inf if it never did)",
            labels=["name"],
        )
        for name in sorted(HEARTBEATS):
            heartbeat.add_metric([name], beats.get(name, math.inf))
        yield heartbeat

    def _read(self) -> tuple[int, float, dict[str, float]]:
        now = utcnow()
        with self._runtime.sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            # Rows that should be out by now: due, or tried and waiting for their retry. A notice scheduled
            # ahead (a repeat-perpetrator match within the day of the last notice, service.matching) is not
            # a backlog until its time comes, and then it has waited since that time, not since it was
            # written: counted from its creation, one such row kept the paging alert on for a day.
            never_tried = OutboxMessage.attempts == 0
            count, oldest = session.execute(
                select(
                    func.count(),
                    func.min(case((never_tried, OutboxMessage.available_at), else_=OutboxMessage.created_at)),
                ).where(
                    OutboxMessage.completed_at.is_(None),
                    or_(OutboxMessage.available_at <= now, ~never_tried),
                )
            ).one()
            beats = {
                name: max(0.0, (now - beat_at).total_seconds())
                for name, beat_at in session.execute(
                    select(WorkerHeartbeat.name, WorkerHeartbeat.beat_at).where(
                        WorkerHeartbeat.name.in_(sorted(HEARTBEATS))
                    )
                )
            }
        oldest_age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        return int(count or 0), oldest_age, beats
