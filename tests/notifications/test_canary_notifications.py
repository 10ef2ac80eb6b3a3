"""Canary: a report full of markers travels through relay, broker, worker, mail and webhook; no marker
appears in a task argument, a mail, a webhook body, the broker's database, the data folder or the logs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.identity.models import MembershipRole, Organisation
from service.outbox.models import OutboxMessage
from service.outbox.relay import relay
from service.runtime import Runtime
from tests.support.notification import SmtpServer, WebhookReceiver
from tests.support.stack import all_bytes_under
from tests.support.staff import MakeStaff
from workers import context
from workers.celery_app import make_celery

MARKERS = {
    "description": "QXNDESCCANARY4411",
    "municipality": "QXNMUNICANARY4412",
    "place": "QXNPLACECANARY4413",
    "contact_name": "QXNNAMECANARY4414",
    "perpetrator_details": "QXNPERPCANARY4415",
}
NOTIFY = "qxnnotifycanary4416@example.org"
REPLY = "QXNREPLYCANARY4417"


def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_no_report_content_leaves_through_notifications(
    client: TestClient,
    runtime: Runtime,
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
    make_staff: MakeStaff,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_staff(email="anna@beratung.example", memberships=[("beratung-by", MembershipRole.counsellor)])
    with runtime.sessions() as db:
        org = db.scalars(select(Organisation).where(Organisation.slug == "beratung-by")).one()
        org.webhook_url = webhook_receiver.url
        db.commit()
    broker = tmp_path / "broker.sqlite"
    settings = runtime.settings.model_copy(
        update={
            "broker_url": f"sqla+sqlite:///{broker}",
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "smtp_security": "none",
        }
    )
    app = make_celery(settings)
    import workers.tasks  # noqa: F401 - registers the tasks

    app.finalize()
    published: list[tuple[str, list[str]]] = []

    def publish(task: str, outbox_id: str) -> None:
        published.append((task, [outbox_id]))
        app.send_task(task, args=[outbox_id], retry=False)

    report = {
        "land": "09",
        "type_codes": ["A3a"],
        "channel": "letter",
        "urgency": "acute",
        **MARKERS,
        "notify_email": NOTIFY,
    }
    filed = client.post("/api/v1/reports", json=report)
    assert filed.status_code == 201
    receipt = filed.json()["receipt"]
    assert (
        client.post("/api/v1/reports/messages", json={"receipt": receipt, "body": REPLY}).status_code == 201
    )

    context.use(context.context_for(runtime, settings), app)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
            relay(runtime.sessions, publish)
            assert wait_until(lambda: _all_done(runtime))
    finally:
        context.use(None)

    assert len(smtp_server.inbox.messages) >= 2
    assert webhook_receiver.requests
    places: list[tuple[str, bytes]] = [
        ("task arguments", repr(published).encode()),
        ("mails", b"".join(message.as_bytes() for _, message in smtp_server.inbox.messages)),
        ("webhooks", b"".join(body + repr(headers).encode() for headers, body in webhook_receiver.requests)),
        ("broker", broker.read_bytes() if broker.exists() else b""),
        ("logs", "\n".join(record.getMessage() for record in caplog.records).encode()),
        *((str(path), data) for path, data in all_bytes_under(runtime.settings.data_dir)),
    ]
    for marker in [*MARKERS.values(), NOTIFY, REPLY, receipt]:
        for where, data in places:
            if where == "mails" and marker == NOTIFY:
                continue  # the address the mail is sent to is, of course, on its envelope and To: line
            assert marker.encode() not in data, f"{marker} found in {where}"


def _all_done(runtime: Runtime) -> bool:
    with runtime.sessions() as db:
        rows = db.scalars(select(OutboxMessage)).all()
        return bool(rows) and all(row.completed_at is not None for row in rows)
