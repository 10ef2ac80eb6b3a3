"""The reporter's optional notification address: sealed at rest, told of a new message, nothing else."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.cases.models import Case
from service.identity.models import MembershipRole
from service.notifications.mail import SmtpMailer
from service.notifications.service import NotificationService
from service.notifications.webhooks import WebhookSender
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from tests.support.forms import csrf_token, report_body
from tests.support.notification import SmtpServer
from tests.support.staff import MakeStaff

REPORT = report_body(description="QXSECRETCANARY Beleidigung")
ADDRESS = "nur-fuer-mich@example.org"


def deliver_all(runtime: Runtime, smtp: SmtpServer, topic: str) -> None:
    settings = runtime.settings.model_copy(
        update={"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_security": "none"}
    )
    service = NotificationService(
        settings, runtime.secrets.notification_key, runtime.taxonomy, SmtpMailer(settings), WebhookSender(5)
    )
    with runtime.sessions() as db:
        ids = list(db.scalars(select(OutboxMessage.id).where(OutboxMessage.topic == topic)))
    for outbox_id in ids:
        assert service.deliver(runtime.sessions, outbox_id).complete


def post_as_counsellor(login: Any, make_staff: MakeStaff, text: str) -> None:
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    case_id = counsellor.get("/api/v1/cases").json()[0]["id"]
    assert counsellor.post(f"/api/v1/cases/{case_id}/messages", json={"body": text}).status_code == 201


def test_the_reporter_is_told_content_free_and_the_address_is_sealed(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, make_staff: MakeStaff, login: Any
) -> None:
    """Given a report with a notification address, when a counsellor writes, the address gets one mail that
    says only that there is a message and where to sign in; the database holds the address sealed."""
    filed = client.post("/api/v1/reports", json={**REPORT, "notify_email": ADDRESS})
    assert filed.status_code == 201
    receipt = filed.json()["receipt"]
    with runtime.sessions() as db:
        sealed = db.scalars(select(Case.notify_ciphertext)).one()
    assert sealed is not None
    assert ADDRESS.encode() not in sealed

    post_as_counsellor(login, make_staff, "QXMESSAGECANARY Wir rufen Sie an.")
    deliver_all(runtime, smtp_server, "notifications.reporter_message")

    (mail,) = smtp_server.inbox.to(ADDRESS)
    text = mail.get_content()  # type: ignore[attr-defined]
    assert mail["Subject"] == "Neue Nachricht in Ihrem Postfach"
    assert f"{runtime.settings.public_url}/fall" in text
    for secret in ("QXSECRETCANARY", "QXMESSAGECANARY", receipt, "Beratungsstelle", "Beleidigung"):
        assert secret not in text
        assert secret not in mail.as_string()
    assert client.post("/api/v1/reports/lookup", json={"receipt": receipt}).json()["notify"] is True


def test_without_an_address_nobody_is_told_and_the_reporter_can_remove_it(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, make_staff: MakeStaff, login: Any
) -> None:
    receipt = client.post("/api/v1/reports", json={**REPORT, "notify_email": ADDRESS}).json()["receipt"]
    removed = client.post("/api/v1/reports/notify", json={"receipt": receipt, "notify_email": None})
    assert removed.status_code == 204
    bad = client.post("/api/v1/reports/notify", json={"receipt": receipt, "notify_email": "kein-at-zeichen"})
    assert bad.status_code == 422
    assert "kein-at-zeichen" not in bad.text

    post_as_counsellor(login, make_staff, "Hallo")
    deliver_all(runtime, smtp_server, "notifications.reporter_message")
    assert smtp_server.inbox.messages == []
    assert client.post("/api/v1/reports/lookup", json={"receipt": receipt}).json()["notify"] is False


def test_the_reporter_sets_and_removes_the_address_on_the_case_page(
    client: TestClient, runtime: Runtime
) -> None:
    receipt = client.post("/api/v1/reports", json=REPORT).json()["receipt"]
    page = client.get("/fall").text
    signed_in = client.post("/fall/anmelden", data={"csrf_token": csrf_token(page), "receipt": receipt})
    assert "Sie werden nicht per E-Mail benachrichtigt." in signed_in.text
    token = csrf_token(signed_in.text)

    wrong = client.post(
        "/fall/benachrichtigung", data={"csrf_token": token, "action": "save", "notify_email": "x@"}
    )
    assert wrong.status_code == 422
    assert 'href="#field-notify_email"' in wrong.text
    assert 'value="x@"' in wrong.text
    forged = client.post(
        "/fall/benachrichtigung", data={"csrf_token": "0" * 64, "action": "save", "notify_email": ADDRESS}
    )
    assert forged.status_code == 403
    with runtime.sessions() as db:
        assert db.scalars(select(Case.notify_ciphertext)).one() is None

    saved = client.post(
        "/fall/benachrichtigung",
        data={"csrf_token": token, "action": "save", "notify_email": ADDRESS},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/fall?notice=notify_saved#notify"
    after = client.get(saved.headers["location"]).text
    assert "Die Adresse für Benachrichtigungen ist gespeichert." in after
    assert "Sie werden per E-Mail benachrichtigt" in after
    assert ADDRESS not in after, "the page does not show the address back"

    gone = client.post(
        "/fall/benachrichtigung", data={"csrf_token": token, "action": "remove"}, follow_redirects=False
    )
    assert gone.headers["location"] == "/fall?notice=notify_removed#notify"
    with runtime.sessions() as db:
        assert db.scalars(select(Case.notify_ciphertext)).one() is None
