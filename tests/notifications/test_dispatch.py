"""Publishing after the commit: a report's delivery task goes to the broker as soon as the report is stored,
not at the relay's next pass; with the broker down the report is still accepted and the relay delivers it.

Real brokers (Redis and the embedded SQLite transport), a real Celery worker, a real SMTP server; no beat
runs, so nothing but the api's own publish (or a relay pass the test sends) can start a delivery.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from helpers import free_port
from notification_helpers import SmtpServer
from sqlalchemy import func, select
from worker_helpers import REPORT, Stack, outbox, wait_until

from service.app import create_app
from service.outbox.models import DeliveryLog
from service.outbox.relay import relay
from service.runtime import Runtime


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
