"""Delivering outbox rows: each recipient once, nothing of the report, retries of what failed, dead letters.

Real services: an aiosmtpd SMTP server, a local HTTP webhook receiver, both databases.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from service.config import Settings
from service.crypto import verify_webhook, webhook_secret
from service.identity.models import MembershipRole, Organisation
from service.notifications import repository
from service.notifications.mail import SmtpMailer
from service.notifications.service import RECORD_PATIENCE_SECONDS, NotificationService
from service.notifications.webhooks import WebhookSender
from service.outbox.models import DeliveryLog, OutboxMessage
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.notification import SmtpServer, WebhookReceiver
from tests.support.staff import MakeStaff

DESCRIPTION = "QXDESCCANARY Drohbrief an die Bürgermeisterin von Kleinstadt"
REPORT = report_body(
    district_ags="09162",
    municipality="QXMUNICANARY",
    type_codes=["A3a"],
    description=DESCRIPTION,
    channel="letter",
    urgency="high",
)


def service_for(
    runtime: Runtime, smtp: SmtpServer, sleep: Callable[[float], None] = time.sleep
) -> NotificationService:
    settings: Settings = runtime.settings.model_copy(
        update={"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_security": "none"}
    )
    return NotificationService(
        settings,
        runtime.secrets.notification_key,
        runtime.taxonomy,
        SmtpMailer(settings),
        WebhookSender(timeout_seconds=5),
        sleep=sleep,
    )


def rows(runtime: Runtime, topic: str) -> list[OutboxMessage]:
    with runtime.sessions() as db:
        found = list(db.scalars(select(OutboxMessage).where(OutboxMessage.topic == topic)))
        db.expunge_all()
        return found


def file_report(client: TestClient, **changes: Any) -> str:
    response = client.post("/api/v1/reports", json={**REPORT, **changes})
    assert response.status_code == 201, response.text
    return str(response.json()["receipt"])


@pytest.fixture
def members(make_staff: MakeStaff) -> dict[str, str]:
    counsellor = make_staff(
        email="anna@beratung.example", memberships=[("beratung-by", MembershipRole.counsellor)]
    )
    lead = make_staff(email="lena@beratung.example", memberships=[("beratung-by", MembershipRole.lead)])
    make_staff(email="sven@sachsen.example", memberships=[("beratung-sn", MembershipRole.counsellor)])
    make_staff(email="kai@koordination.example", coordinator=True)
    make_staff(
        email="rota@bereitschaft.example", memberships=[("rufbereitschaft", MembershipRole.counsellor)]
    )
    return {"counsellor": counsellor.email, "lead": lead.email}


def test_a_new_case_tells_each_member_once_and_nothing_of_the_report(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, members: dict[str, str]
) -> None:
    """Given a report routed to Bavaria, when its new-case row is delivered twice, each member of the
    organisation gets one mail with the organisation, the urgency and a link, and nothing of the report."""
    receipt = file_report(client)
    (row,) = rows(runtime, "notifications.new_case")
    service = service_for(runtime, smtp_server)

    first = service.deliver(runtime.sessions, row.id)
    again = service.deliver(runtime.sessions, row.id)

    assert first.complete
    assert sorted(first.delivered) == sorted(f"mail:staff:{k}" for k in _user_ids(runtime, members))
    assert again.skipped, "a completed row is not delivered again"
    received = smtp_server.inbox.messages
    assert sorted(rcpt for rcpt, _ in received) == sorted(members.values())
    mail = received[0][1]
    text = mail.get_content()  # type: ignore[attr-defined]
    assert "Beratungsstelle Rückhalt Bayern (Demo)" in text
    assert "Dringlichkeit: dringend (innerhalb von 24 Stunden)" in text
    assert "Urgency: urgent (within 24 hours)" in text
    assert f"/intern/faelle/{row.payload['case_id']}" in text
    for secret in (DESCRIPTION, "QXDESCCANARY", "QXMUNICANARY", receipt, "Drohbrief", "A3a"):
        assert secret not in mail.as_string()
    assert mail["Subject"].startswith("Neuer Fall für Beratungsstelle Rückhalt Bayern (Demo)")
    assert rows(runtime, "notifications.new_case")[0].completed_at is not None


def _user_ids(runtime: Runtime, members: dict[str, str]) -> list[str]:
    from service.identity.models import StaffUser

    with runtime.sessions() as db:
        return list(db.scalars(select(StaffUser.id).where(StaffUser.email.in_(list(members.values())))))


def set_webhook(runtime: Runtime, slug: str, url: str) -> str:
    with runtime.sessions() as db:
        org = db.scalars(select(Organisation).where(Organisation.slug == slug)).one()
        org.webhook_url = url
        db.commit()
        return org.id


def test_a_failed_recipient_is_retried_alone_and_the_webhook_is_signed(
    client: TestClient,
    runtime: Runtime,
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
    members: dict[str, str],
) -> None:
    """Given a webhook that fails once, when the row is delivered twice, the mails go out once and the
    webhook is retried alone; its body is content-free and its signature verifies with the org's secret."""
    org_id = set_webhook(runtime, "beratung-by", webhook_receiver.url)
    webhook_receiver.statuses = [500, 204]
    file_report(client)
    (row,) = rows(runtime, "notifications.new_case")
    service = service_for(runtime, smtp_server)

    first = service.deliver(runtime.sessions, row.id)
    assert first.failed == {f"webhook:{org_id}": "WebhookFailed"}
    assert rows(runtime, "notifications.new_case")[0].completed_at is None
    assert rows(runtime, "notifications.new_case")[0].last_error == "WebhookFailed"
    second = service.deliver(runtime.sessions, row.id)

    assert second.complete
    assert second.delivered == [f"webhook:{org_id}"]
    assert len(smtp_server.inbox.messages) == 2, "the mails were not sent a second time"
    headers, body = webhook_receiver.requests[-1]
    secret = webhook_secret(runtime.secrets.notification_key, org_id)
    timestamp = int(headers["rueckhalt-timestamp"])
    assert verify_webhook(secret, headers["rueckhalt-signature"], timestamp, body, int(time.time()))
    assert not verify_webhook(
        secret, headers["rueckhalt-signature"], timestamp, body + b" ", int(time.time())
    )
    assert not verify_webhook(secret, headers["rueckhalt-signature"], timestamp, body, timestamp + 3600)
    sent = webhook_receiver.body(-1)
    assert sent == {
        "event": "new_case",
        "id": row.id,
        "organisation": "beratung-by",
        "urgency": "high",
        "url": f"{runtime.settings.public_url}/intern/faelle/{row.payload['case_id']}",
    }
    with runtime.sessions() as db:
        logged = db.scalars(select(DeliveryLog.recipient_key).where(DeliveryLog.outbox_id == row.id)).all()
    assert len(logged) == 3


def test_a_dead_letter_alerts_the_coordinators_and_the_rota(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, members: dict[str, str]
) -> None:
    """Given a mail server that refuses everything, when a row is given up, it is kept as a dead letter and
    an alert row names its topic; delivered later, the alert reaches coordinators and the rota only."""
    file_report(client)
    (row,) = rows(runtime, "notifications.new_case")
    service = service_for(runtime, smtp_server)
    smtp_server.inbox.refuse = True
    assert not service.deliver(runtime.sessions, row.id).complete

    with runtime.sessions() as db:
        service.dead_letter(db, row.id)
        db.commit()  # the task's transaction

    dead = rows(runtime, "notifications.new_case")[0]
    assert dead.dead_at is not None
    assert dead.completed_at is not None
    (alert,) = rows(runtime, "alerts.dead_letter")
    assert alert.payload == {"failed_topic": "notifications.new_case", "case_id": row.payload["case_id"]}
    smtp_server.inbox.refuse = False
    assert service.deliver(runtime.sessions, alert.id).complete
    assert sorted(rcpt for rcpt, _ in smtp_server.inbox.messages) == [
        "kai@koordination.example",
        "rota@bereitschaft.example",
    ]
    # An alert that dies does not raise an alert about itself (that would never end).
    with runtime.sessions() as db:
        db.add(_alert_row())
        db.commit()
    (second,) = [r for r in rows(runtime, "alerts.dead_letter") if r.id != alert.id]
    smtp_server.inbox.refuse = True
    with runtime.sessions() as db:
        service.dead_letter(db, second.id)
        db.commit()  # the task's transaction
    assert len(rows(runtime, "alerts.dead_letter")) == 2


def _alert_row() -> OutboxMessage:
    from service.outbox.writer import message

    return message("alerts.dead_letter", failed_topic="notifications.new_case", case_id=None)


def test_the_reporter_reply_goes_to_the_assigned_counsellor_only(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, members: dict[str, str]
) -> None:
    receipt = file_report(client)
    (new_case,) = rows(runtime, "notifications.new_case")
    (counsellor_id,) = [
        uid for uid in _user_ids(runtime, members) if uid in _user_ids(runtime, {"c": members["counsellor"]})
    ]
    from service.cases.models import Case

    with runtime.sessions() as db:
        case = db.get(Case, new_case.payload["case_id"])
        assert case is not None
        case.assignee_id = counsellor_id
        db.commit()
    reply = client.post("/api/v1/reports/messages", json={"receipt": receipt, "body": "Danke"})
    assert reply.status_code == 201
    (row,) = rows(runtime, "notifications.reporter_reply")

    assert service_for(runtime, smtp_server).deliver(runtime.sessions, row.id).complete
    assert [rcpt for rcpt, _ in smtp_server.inbox.messages] == [members["counsellor"]]


def _database_down_for(calls: int) -> Callable[..., None]:
    """record_delivery as it behaves while PostgreSQL restarts: the first ``calls`` attempts fail."""
    real = repository.record_delivery
    failures = iter(range(calls))

    def record(*args: Any) -> None:
        if next(failures, None) is not None:
            raise sa_exc.OperationalError("INSERT", {}, Exception("the database system is starting up"))
        real(*args)

    return record


def test_a_delivery_that_went_out_waits_for_a_restarting_database_to_note_it(
    client: TestClient,
    runtime: Runtime,
    smtp_server: SmtpServer,
    members: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given the database gone for a moment just after a mail went out, the worker waits and notes the
    delivery, so the mail is not sent again: one mail per member, the row complete."""
    file_report(client)
    (row,) = rows(runtime, "notifications.new_case")
    slept: list[float] = []
    monkeypatch.setattr(repository, "record_delivery", _database_down_for(3))

    outcome = service_for(runtime, smtp_server, sleep=slept.append).deliver(runtime.sessions, row.id)

    assert outcome.complete
    assert slept == [0.25, 0.5, 1.0], "backed off while the database was away"
    assert sorted(rcpt for rcpt, _ in smtp_server.inbox.messages) == sorted(members.values())
    assert rows(runtime, "notifications.new_case")[0].completed_at is not None


def test_the_wait_for_the_database_is_bounded(
    client: TestClient,
    runtime: Runtime,
    smtp_server: SmtpServer,
    members: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database that stays away ends the wait: the error goes to the task, which retries later."""
    file_report(client)
    (row,) = rows(runtime, "notifications.new_case")
    slept: list[float] = []
    monkeypatch.setattr(repository, "record_delivery", _database_down_for(1000))

    with pytest.raises(sa_exc.OperationalError):
        service_for(runtime, smtp_server, sleep=slept.append).deliver(runtime.sessions, row.id)
    assert 20 <= sum(slept) <= RECORD_PATIENCE_SECONDS
