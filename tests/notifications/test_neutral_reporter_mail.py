"""Mails to a reporter's own address (issue 15, "Mails reveal the service"): office staff, partners and
municipal IT read sender and subject too. By default neither names the service, threats, cases or deadlines;
the operator can choose other values; the report form and /fall show exactly what such a mail looks like.
Delivered to a real SMTP server (aiosmtpd), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import re
from email.message import Message
from email.utils import parseaddr
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.cases.models import Case
from service.config import Settings
from service.identity.models import MembershipRole
from service.notifications.mail import SmtpMailer
from service.notifications.service import NotificationService
from service.notifications.webhooks import WebhookSender
from service.outbox.models import OutboxMessage
from service.outbox.writer import enqueue
from service.runtime import Runtime
from tests.support.forms import csrf_token, report_body
from tests.support.notification import SmtpServer
from tests.support.staff import MakeStaff

REPORT = report_body(type_codes=["A3a"], description="Drohung QXNEUTRAL")
ADDRESS = "posteingang@example.org"
# What must not stand in a reporter mail's sender or subject: the service and the words of its work.
REPORTER_TOPICS = ["notifications.reporter_message", "reminders.reporter_complaint"]
REVEALING = ("Rückhalt", "Rueckhalt", "Bedrohung", "Drohung", "Frist", "Fall", "Anzeige", "Beratung")


def deliver(runtime: Runtime, smtp: SmtpServer, settings: Settings | None = None) -> None:
    settings = (settings or runtime.settings).model_copy(
        update={"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_security": "none"}
    )
    service = NotificationService(
        settings, runtime.secrets.notification_key, runtime.taxonomy, SmtpMailer(settings), WebhookSender(5)
    )
    with runtime.sessions() as db:
        ids = list(
            db.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.topic.in_(
                        ["notifications.reporter_message", "reminders.reporter_complaint"]
                    ),
                    OutboxMessage.completed_at.is_(None),
                )
            )
        )
    for outbox_id in ids:
        assert service.deliver(runtime.sessions, outbox_id).complete


def file_and_answer(client: TestClient, runtime: Runtime, make_staff: MakeStaff, login: Any) -> str:
    """A report with a notification address, a counsellor's message and a deadline reminder for it."""
    assert client.post("/api/v1/reports", json={**REPORT, "notify_email": ADDRESS}).status_code == 201
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    case_id = str(counsellor.get("/api/v1/cases").json()[0]["id"])
    sent = counsellor.post(f"/api/v1/cases/{case_id}/messages", json={"body": "Wir melden uns."})
    assert sent.status_code == 201
    with runtime.sessions() as db:
        enqueue(db, "reminders.reporter_complaint", case_id=case_id, last_call=True)
        db.commit()
    return case_id


def body_of(mail: Message) -> str:
    return str(mail.get_content())  # type: ignore[attr-defined]


def test_reporter_mails_have_a_neutral_sender_and_subject_by_default(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, make_staff: MakeStaff, login: Any
) -> None:
    """Given the default settings, when a counsellor writes and a deadline reminder is due, then the
    reporter's address gets two mails from "Benachrichtigung" with the subject "Neue Nachricht in Ihrem
    Postfach": no word of the service, threats, cases or deadlines in sender or subject, and the text says
    only that something is waiting, with the link to sign in."""
    file_and_answer(client, runtime, make_staff, login)
    deliver(runtime, smtp_server)

    mails = smtp_server.inbox.to(ADDRESS)
    assert len(mails) == 2, "the message and the reminder"
    for mail in mails:
        name, address = parseaddr(str(mail["From"]))
        assert name == "Benachrichtigung"
        assert address == "noreply@rueckhalt.invalid", "the address of RUECKHALT_MAIL_FROM when none is set"
        assert mail["Subject"] == "Neue Nachricht in Ihrem Postfach"
        for word in REVEALING:
            assert word.lower() not in str(mail["From"]).split("@")[0].lower(), word
            assert word not in str(mail["Subject"]), word
        body = body_of(mail)
        assert f"{runtime.settings.public_url}/fall" in body, "still usable: where to sign in"
        for word in (
            "Rückhalt",
            "Bedrohung",
            "Frist",
            "Fall ",
            "Anzeige",
            "Beratung",
            "QXNEUTRAL",
            "Sicherheit",
        ):
            assert word not in body, word
    reminder = next(mail for mail in mails if "Erinnerung" in body_of(mail))
    assert "möglichst heute" in body_of(reminder), "the last call still says that it is urgent"


def test_the_operator_chooses_sender_subject_address_and_whether_a_link_is_in_it(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, make_staff: MakeStaff, login: Any
) -> None:
    file_and_answer(client, runtime, make_staff, login)
    chosen = runtime.settings.model_copy(
        update={
            "reporter_mail_sender_name": "Service-Postfach",
            "reporter_mail_subject": "Hinweis",
            "reporter_mail_address": "hinweis@post.example",
            "reporter_mail_link": False,
        }
    )
    deliver(runtime, smtp_server, chosen)

    mails = smtp_server.inbox.to(ADDRESS)
    assert len(mails) == 2
    for mail in mails:
        assert parseaddr(str(mail["From"])) == ("Service-Postfach", "hinweis@post.example")
        assert mail["Subject"] == "Hinweis"
        assert runtime.settings.public_url not in mail.as_string(), "without the link: no address of the site"
        assert "wie gewohnt" in body_of(mail)


def test_staff_mails_keep_the_services_sender(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer, make_staff: MakeStaff
) -> None:
    """Counsellors need to know where a mail comes from: only the reporter's mails are neutral."""
    make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    settings = runtime.settings.model_copy(
        update={"smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_security": "none"}
    )
    service = NotificationService(
        settings, runtime.secrets.notification_key, runtime.taxonomy, SmtpMailer(settings), WebhookSender(5)
    )
    with runtime.sessions() as db:
        ids = db.scalars(
            select(OutboxMessage.id).where(OutboxMessage.topic == "notifications.new_case")
        ).all()
    for outbox_id in ids:
        assert service.deliver(runtime.sessions, outbox_id).complete
    assert smtp_server.inbox.messages
    for _, mail in smtp_server.inbox.messages:
        assert parseaddr(str(mail["From"]))[0] == "Rückhalt"


def preview(page: str) -> str:
    found = re.search(r'<div class="mail-preview" id="notify-mail-preview">(.*?</dl>.*?</p>)', page, re.S)
    assert found, "the page shows what a notification mail looks like"
    return re.sub(r"\s+", " ", found.group(1))


def test_the_form_and_the_case_page_show_exactly_the_configured_mail(runtime: Runtime) -> None:
    """The sentence beside the address field is rendered from the settings the mails are built from."""
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
        default = client.get("/melden").text
        assert 'aria-describedby="notify-mail-preview field-notify_email-hint"' in default
        shown = preview(default)
        assert "Benachrichtigung &lt;noreply@rueckhalt.invalid&gt;" in shown
        assert "Neue Nachricht in Ihrem Postfach" in shown
        assert f"{runtime.settings.public_url}/fall" in shown

    settings = runtime.settings.model_copy(
        update={
            "reporter_mail_sender_name": "Service-Postfach",
            "reporter_mail_subject": "Hinweis",
            "reporter_mail_address": "hinweis@post.example",
            "reporter_mail_link": False,
        }
    )
    app = create_app(runtime=dataclasses.replace(runtime, settings=settings))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        shown = preview(client.get("/melden").text)
        assert "Service-Postfach &lt;hinweis@post.example&gt;" in shown
        assert '<dd translate="no">Hinweis</dd>' in shown
        assert "keinen Link" in shown
        assert "Benachrichtigung" not in shown
        assert "Service-Postfach" in preview(client.get("/melden?lang=en").text)

        receipt = client.post("/api/v1/reports", json=REPORT).json()["receipt"]
        token = csrf_token(client.get("/fall").text)
        client.post("/fall/anmelden", data={"csrf_token": token, "receipt": receipt})
        on_case_page = preview(client.get("/fall").text)
        assert "Service-Postfach &lt;hinweis@post.example&gt;" in on_case_page
        with runtime.sessions() as db:
            assert db.scalars(select(Case.id)).first() is not None


def test_the_settings_refuse_headers_that_are_not_one_line() -> None:
    with pytest.raises(ValueError, match="one line"):
        Settings(reporter_mail_subject="Hallo\x07")
    with pytest.raises(ValueError, match="plain mail address"):
        Settings(reporter_mail_address="Rückhalt <x@y.example>")
    assert Settings(reporter_mail_subject="  Neue\n Nachricht ").reporter_mail_subject == "Neue Nachricht"
