"""Real Celery workers on real brokers (Redis, and the embedded SQLite transport): a report's notification
travels outbox -> relay task -> broker -> delivery task -> SMTP, retries on failure, dead-letters at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import MaxRetriesExceededError
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from service.identity.models import Organisation
from service.runtime import Runtime
from tests.support.notification import SmtpServer, WebhookReceiver
from tests.support.worker import REPORT, Stack, outbox, wait_until
from workers import context
from workers.celery_app import make_celery


def test_a_report_reaches_the_counsellors_through_the_worker(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, stack: Stack, members: list[str]
) -> None:
    app = stack()
    assert client.post("/api/v1/reports", json=REPORT).status_code == 201

    app.send_task("outbox.relay")

    assert wait_until(lambda: len(smtp_server.inbox.messages) >= 2)
    assert sorted(rcpt for rcpt, _ in smtp_server.inbox.messages) == members[:2]
    assert wait_until(lambda: all(row.completed_at is not None for row in outbox(runtime)))


def test_a_mail_server_that_comes_back_gets_the_mail_once(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, stack: Stack, members: list[str]
) -> None:
    smtp_server.inbox.refuse = True
    app = stack()
    assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    app.send_task("outbox.relay")
    assert wait_until(lambda: (outbox(runtime)[0].attempts or 0) >= 1)
    smtp_server.inbox.refuse = False

    assert wait_until(lambda: outbox(runtime)[0].completed_at is not None)
    assert sorted(rcpt for rcpt, _ in smtp_server.inbox.messages) == members[:2]
    assert outbox(runtime)[0].dead_at is None


def test_after_the_last_retry_the_row_is_a_dead_letter_and_an_alert_goes_out(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, stack: Stack, members: list[str]
) -> None:
    smtp_server.inbox.refuse = True
    app = stack(task_max_retries=2)
    assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    app.send_task("outbox.relay")

    assert wait_until(lambda: outbox(runtime)[0].dead_at is not None)
    assert outbox(runtime)[0].attempts == 3, "the first try and two retries"
    alerts = [row for row in outbox(runtime) if row.topic == "alerts.dead_letter"]
    assert len(alerts) == 1
    smtp_server.inbox.refuse = False
    app.send_task("outbox.relay")
    assert wait_until(lambda: len(smtp_server.inbox.messages) >= 1)
    assert [rcpt for rcpt, _ in smtp_server.inbox.messages] == ["koordination@example.org"]


def test_a_webhook_that_always_fails_ends_as_a_dead_letter_and_an_alert(
    client: TestClient,
    runtime: Runtime,
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
    stack: Stack,
    members: list[str],
) -> None:
    """Given an organisation whose on-call webhook answers 500 forever, the mails go out once, the webhook is
    retried until the last retry, then the row is a dead letter and the coordinator is alerted."""
    with runtime.sessions() as db:
        org = db.scalars(select(Organisation).where(Organisation.slug == "beratung-by")).one()
        org.webhook_url = webhook_receiver.url
        db.commit()
    webhook_receiver.statuses = [500]
    app = stack(task_max_retries=2)
    assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    app.send_task("outbox.relay")

    assert wait_until(lambda: outbox(runtime)[0].dead_at is not None)
    assert len(webhook_receiver.requests) == 3, "the first try and two retries"
    assert outbox(runtime)[0].last_error == "WebhookFailed"
    app.send_task("outbox.relay")
    assert wait_until(lambda: "koordination@example.org" in [rcpt for rcpt, _ in smtp_server.inbox.messages])
    counsellor_mails = [rcpt for rcpt, _ in smtp_server.inbox.messages if rcpt != "koordination@example.org"]
    assert sorted(counsellor_mails) == members[:2], "each counsellor once, despite the retries"


def _eager_app(runtime: Runtime, smtp_server: SmtpServer, **changes: object) -> Celery:
    """The tasks run in this thread (``apply``): a retry runs again at once, without a broker."""
    settings = runtime.settings.model_copy(
        update={
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "smtp_security": "none",
            **changes,
        }
    )
    app = make_celery(settings)
    import workers.tasks  # noqa: F401 - registers the shared tasks with the app

    app.finalize()
    context.use(context.context_for(runtime, settings), app)
    return app


def _database_gone(calls: int, real: Callable[..., object]) -> Callable[..., object]:
    failures = iter(range(calls))

    def deliver(*args: object) -> object:
        if next(failures, None) is not None:
            raise sa_exc.OperationalError("SELECT QXSTATEMENT", {}, Exception("terminating connection"))
        return real(*args)

    return deliver


def test_a_delivery_task_that_finds_the_database_gone_retries_instead_of_failing(
    client: TestClient,
    runtime: Runtime,
    smtp_server: SmtpServer,
    members: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given PostgreSQL restarting while a delivery task starts, the task retries (seconds) rather than
    failing and leaving the row to the relay's redispatch a quarter of an hour later."""
    app = _eager_app(runtime, smtp_server)
    try:
        assert client.post("/api/v1/reports", json=REPORT).status_code == 201
        (row,) = outbox(runtime)
        notifications = context.current().notifications
        monkeypatch.setattr(notifications, "deliver", _database_gone(2, notifications.deliver))

        result = app.tasks["notifications.deliver"].apply(args=[row.id])
    finally:
        context.use(None)
    assert result.successful()
    assert sorted(rcpt for rcpt, _ in smtp_server.inbox.messages) == members[:2]
    assert outbox(runtime)[0].completed_at is not None


def test_a_database_that_stays_away_is_no_dead_letter(
    client: TestClient,
    runtime: Runtime,
    smtp_server: SmtpServer,
    members: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing is wrong with the recipients: after the last retry the task fails and the row waits for
    the relay's redispatch, with no dead letter and no alert."""
    app = _eager_app(runtime, smtp_server, task_max_retries=2)
    try:
        assert client.post("/api/v1/reports", json=REPORT).status_code == 201
        notifications = context.current().notifications
        gone = _database_gone(1000, notifications.deliver)
        calls: list[object] = []

        def deliver(*args: Any) -> Any:
            calls.append(args)
            return gone(*args)

        monkeypatch.setattr(notifications, "deliver", deliver)

        result = app.tasks["notifications.deliver"].apply(args=[outbox(runtime)[0].id])
    finally:
        context.use(None)
    # Celery's own failure, not the database's error: that one's message (the statement) stays out of
    # Celery's retry and failure log lines.
    assert isinstance(result.result, MaxRetriesExceededError)
    assert "QXSTATEMENT" not in str(result.result)
    assert len(calls) == 3, "the first try and two retries"
    assert [(row.topic, row.dead_at, row.completed_at) for row in outbox(runtime)] == [
        ("notifications.new_case", None, None)
    ]
