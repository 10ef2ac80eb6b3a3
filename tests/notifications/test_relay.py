"""The outbox relay: every committed row reaches the broker once, none is lost when the broker is down."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.config import PROJECT_ROOT
from service.db import utcnow
from service.notifications.recipients import KNOWN_TOPICS
from service.outbox.models import OutboxMessage
from service.outbox.relay import backoff_seconds, relay, task_for
from service.outbox.writer import message
from service.runtime import Runtime
from tests.support.forms import report_body

REPORT = report_body(description="Beleidigung am Telefon", channel="phone")


class BrokerDown(Exception):
    pass


def add_rows(runtime: Runtime, count: int) -> list[str]:
    rows = [message("notifications.new_case", case_id=f"c{i}", organisation_id="o") for i in range(count)]
    with runtime.sessions() as db:
        db.add_all(rows)
        db.commit()
        return [row.id for row in rows]


def state(runtime: Runtime) -> dict[str, OutboxMessage]:
    with runtime.sessions() as db:
        found = {row.id: row for row in db.scalars(select(OutboxMessage))}
        db.expunge_all()
        return found


def test_the_intake_answers_while_the_broker_is_down_and_the_row_waits(
    client: TestClient, runtime: Runtime
) -> None:
    """Given a broker that refuses everything, when a report comes in and the relay runs, the report is
    accepted, its row stays pending with a backoff, and a later pass with the broker back publishes it."""
    assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    (row_id,) = state(runtime)

    def refuse(task: str, outbox_id: str) -> None:
        raise BrokerDown()

    now = utcnow()
    down = relay(runtime.sessions, refuse, now=now, retry_base_seconds=5, retry_cap_seconds=300)
    row = state(runtime)[row_id]
    assert (down.dispatched, down.failed) == (0, 1)
    assert row.dispatched_at is None
    assert row.completed_at is None
    assert row.attempts == 1
    assert row.last_error == "BrokerDown"
    assert now + timedelta(seconds=2) <= row.available_at <= now + timedelta(seconds=5)

    published: list[tuple[str, str]] = []
    too_early = relay(runtime.sessions, lambda t, i: published.append((t, i)), now=now + timedelta(seconds=1))
    assert too_early.dispatched == 0, "the backoff is respected"
    later = relay(runtime.sessions, lambda t, i: published.append((t, i)), now=now + timedelta(minutes=1))
    assert later.dispatched == 1
    assert published == [("notifications.deliver", row_id)]
    assert state(runtime)[row_id].dispatched_at is not None


def test_one_refusal_gives_the_whole_batch_back(runtime: Runtime) -> None:
    ids = add_rows(runtime, 5)
    calls: list[str] = []

    def flaky(task: str, outbox_id: str) -> None:
        calls.append(outbox_id)
        if len(calls) == 3:
            raise BrokerDown()

    result = relay(runtime.sessions, flaky)
    rows = state(runtime)
    assert result.dispatched == 2
    assert sum(rows[i].dispatched_at is not None for i in ids) == 2
    assert sum(rows[i].attempts for i in ids) == 1, "only the refused row counts an attempt"
    assert all(rows[i].completed_at is None for i in ids)


def test_a_row_dispatched_long_ago_and_never_completed_is_handed_out_again(runtime: Runtime) -> None:
    (row_id,) = add_rows(runtime, 1)
    published: list[str] = []
    now = utcnow()
    relay(runtime.sessions, lambda t, i: published.append(i), now=now)
    relay(runtime.sessions, lambda t, i: published.append(i), now=now + timedelta(minutes=5))
    assert published == [row_id], "a recent dispatch is not repeated"
    relay(runtime.sessions, lambda t, i: published.append(i), now=now + timedelta(minutes=16))
    assert published == [row_id, row_id], "a lost task is handed out again after the redispatch time"


def test_two_relays_at_once_publish_every_row_exactly_once(runtime: Runtime) -> None:
    """Given 60 rows and two relays running at the same time with a slow broker, every row is published
    once (SKIP LOCKED on PostgreSQL, the write lock on SQLite)."""
    ids = add_rows(runtime, 60)
    published: list[str] = []
    lock = threading.Lock()

    def slow(task: str, outbox_id: str) -> None:
        time.sleep(0.002)
        with lock:
            published.append(outbox_id)

    def run() -> None:
        for _ in range(4):
            relay(runtime.sessions, slow, batch_size=20)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(published) == sorted(ids)


def test_backoff_grows_is_capped_and_jittered() -> None:
    steps = [backoff_seconds(n, 10, 600) for n in range(1, 10)]
    assert 5 <= steps[0] <= 10
    assert 20 <= steps[2] <= 40
    assert all(step <= 600 for step in steps)
    assert max(steps) >= 300
    assert len({backoff_seconds(3, 10, 600) for _ in range(20)}) > 1, "jitter spreads retries"


def test_every_topic_written_anywhere_has_a_task_and_recipients() -> None:
    """Every outbox topic named in the service's code is relayed to a task and known to the recipients."""
    source = "\n".join(path.read_text() for path in (PROJECT_ROOT / "service").rglob("*.py"))
    named = set(re.findall(r'"((?:notifications|alerts|reminders)\.[a-z_]+)"', source))
    # Not topics: the tasks' own names (one row, a batch of rows), and prefixes the code matches topics by
    # ("notifications.reporter").
    tasks = {"notifications.deliver", "notifications.deliver_many"}
    written = {
        name
        for name in named
        if name not in tasks and not any(t.startswith(f"{name}_") for t in KNOWN_TOPICS)
    }
    assert {"notifications.new_case", "alerts.intake_refused", "reminders.ack_overdue"} <= written
    for topic in written:
        assert task_for(topic) == "notifications.deliver"
    assert written <= KNOWN_TOPICS
