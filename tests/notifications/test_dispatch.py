"""Publishing after the commit: a report's delivery task goes to the broker as soon as the report is stored,
not at the relay's next pass; with the broker down the report is still accepted and the relay delivers it.

Real brokers (Redis and the embedded SQLite transport), a real Celery worker, a real SMTP server; no beat
runs, so nothing but the api's own publish (or a relay pass the test sends) can start a delivery.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.app import create_app
from service.outbox.dispatch import Dispatcher
from service.outbox.models import DeliveryLog, OutboxMessage
from service.outbox.relay import relay
from service.runtime import Runtime
from tests.support.notification import SmtpServer
from tests.support.stack import free_port
from tests.support.worker import REPORT, Stack, outbox, wait_until


def _api(runtime: Runtime, broker_url: str) -> TestClient:
    settings = runtime.settings.model_copy(update={"broker_url": broker_url})
    return TestClient(
        create_app(settings=settings, runtime=runtime, publish_after_commit=True), base_url="http://127.0.0.1"
    )


@pytest.fixture
def api(runtime: Runtime, broker_url: str) -> Iterator[TestClient]:
    """The api publishing on the worker's broker."""
    with _api(runtime, broker_url) as client:
        yield client


def delivered(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(DeliveryLog)) or 0)


def test_the_mail_arrives_without_the_relay(
    api: TestClient, runtime: Runtime, smtp_server: SmtpServer, stack: Stack, members: list[str]
) -> None:
    stack()
    assert api.post("/api/v1/reports", json=REPORT).status_code == 201

    assert wait_until(lambda: len(smtp_server.inbox.messages) >= 2)
    assert sorted(rcpt for rcpt, _ in smtp_server.inbox.messages) == members[:2]
    assert wait_until(lambda: all(row.completed_at is not None for row in outbox(runtime)))
    # The row was written as dispatched: a relay pass finds nothing to hand out, and nobody gets it twice.
    assert relay(runtime.sessions, lambda task, row_id: None).dispatched == 0
    assert delivered(runtime) == 2
    assert len(smtp_server.inbox.messages) == 2


def test_with_the_broker_down_the_report_is_accepted_and_the_relay_delivers_it_once(
    runtime: Runtime, smtp_server: SmtpServer, stack: Stack, members: list[str]
) -> None:
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    with _api(runtime, nobody_listens) as api:
        assert api.post("/api/v1/reports", json=REPORT).status_code == 201
        # The refused publish gives the row back: pending again, for the relay.
        assert wait_until(lambda: outbox(runtime)[0].dispatched_at is None, seconds=60)
        # While the broker is known to be down, new reports are written for the relay straight away.
        assert api.post("/api/v1/reports", json=REPORT).status_code == 201
    rows = outbox(runtime)
    assert len(rows) == 2
    assert all(row.dispatched_at is None and row.completed_at is None for row in rows)
    assert smtp_server.inbox.messages == []

    app = stack()
    app.send_task("outbox.relay")

    assert wait_until(lambda: all(row.completed_at is not None for row in outbox(runtime)))
    assert sorted(rcpt for rcpt, _ in smtp_server.inbox.messages) == sorted(members[:2] * 2)
    # Another pass hands out nothing: each counsellor has each report's mail once.
    assert relay(runtime.sessions, lambda task, row_id: None).dispatched == 0
    assert delivered(runtime) == 4
    assert len(smtp_server.inbox.messages) == 4


def _committed_rows(api: TestClient, runtime: Runtime, reports: int) -> list[tuple[str, str]]:
    """File reports through the api (the relay's rows: the api has no dispatcher) and name their rows."""
    for _ in range(reports):
        assert api.post("/api/v1/reports", json=REPORT).status_code == 201
    return [(row.id, row.topic) for row in outbox(runtime)]


@dataclass
class Recorded:
    """What a dispatcher published: single rows and lists of rows, by task."""

    singles: list[tuple[str, str]] = field(default_factory=list)
    lists: list[tuple[str, list[str]]] = field(default_factory=list)


def recording_dispatcher(runtime: Runtime, linger_seconds: float) -> tuple[Dispatcher, Recorded]:
    recorded = Recorded()
    dispatcher = Dispatcher(
        runtime.sessions,
        lambda task, row_id: recorded.singles.append((task, row_id)),
        publish_many=lambda task, ids: recorded.lists.append((task, ids)),
        linger_seconds=linger_seconds,
    )
    dispatcher.start()
    return dispatcher, recorded


def test_rows_committed_together_go_out_as_one_task(runtime: Runtime, client: TestClient) -> None:
    """Three reports' rows handed over within the linger: one list task, no single publishes."""
    rows = _committed_rows(client, runtime, 3)
    dispatcher, recorded = recording_dispatcher(runtime, 0.5)
    for row in rows:
        dispatcher.submit([row])
    dispatcher.close()
    assert recorded.singles == []
    assert recorded.lists == [("notifications.deliver_many", [row_id for row_id, _ in rows])]
    assert dispatcher.published == len(rows)
    assert dispatcher.given_back == 0


def test_a_lone_row_goes_out_on_its_own(runtime: Runtime, client: TestClient) -> None:
    rows = _committed_rows(client, runtime, 1)
    dispatcher, recorded = recording_dispatcher(runtime, 0.05)
    dispatcher.submit(rows)
    assert wait_until(lambda: dispatcher.published == 1, seconds=5)
    dispatcher.close()
    assert recorded.singles == [("notifications.deliver", rows[0][0])]
    assert recorded.lists == []


def test_a_refused_list_gives_every_row_back_to_the_relay(runtime: Runtime, client: TestClient) -> None:
    rows = _committed_rows(client, runtime, 2)
    with runtime.sessions() as db:
        # As the intake writes them with a dispatcher: marked dispatched, so the relay leaves them alone.
        for row in db.scalars(select(OutboxMessage)):
            row.dispatched_at = row.created_at
        db.commit()

    def refuse(task: str, ids: list[str]) -> None:
        raise ConnectionError("broker gone")

    dispatcher = Dispatcher(
        runtime.sessions, lambda task, row_id: None, publish_many=refuse, linger_seconds=0.5
    )
    dispatcher.start()
    dispatcher.submit(rows)
    dispatcher.close()
    assert dispatcher.given_back == 2
    assert dispatcher.published == 0
    assert all(row.dispatched_at is None for row in outbox(runtime))
    assert not dispatcher.ready()


def test_one_list_task_delivers_every_row_once_and_a_failed_row_is_retried_alone(
    runtime: Runtime, client: TestClient, smtp_server: SmtpServer, stack: Stack, members: list[str]
) -> None:
    rows = _committed_rows(client, runtime, 2)
    app = stack()
    smtp_server.inbox.refuse = True
    app.send_task("notifications.deliver_many", args=[[row_id for row_id, _ in rows]])
    # Both fail at first; each goes on as its own retry, which succeeds once the server takes mail again.
    assert wait_until(lambda: all(row.attempts >= 1 for row in outbox(runtime)), seconds=30)
    smtp_server.inbox.refuse = False
    assert wait_until(lambda: all(row.completed_at is not None for row in outbox(runtime)))
    assert sorted(rcpt for rcpt, _ in smtp_server.inbox.messages) == sorted(members[:2] * 2)
    # Sent again: the delivery log skips what went out.
    app.send_task("notifications.deliver_many", args=[[row_id for row_id, _ in rows]])
    time.sleep(1.0)
    assert delivered(runtime) == 4
    assert len(smtp_server.inbox.messages) == 4
