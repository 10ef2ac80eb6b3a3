"""Mail: every template renders in German and English, content-free; SMTP with STARTTLS or TLS and
authentication against a real aiosmtpd server; the Maildir of the embedded default."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from service.config import Settings
from service.notifications.mail import MAIL_TEMPLATES, MaildirMailer, SmtpMailer, build_message, render
from service.notifications.recipients import NotificationContext
from tests.support.notification import Inbox, maildir_messages, self_signed_certificate
from tests.support.stack import free_port

CONTEXT: NotificationContext = {
    "organisation": "Hilfe & Rat <Nord>",
    "urgency_label": {"de": "akute Gefahr", "en": "acute danger"},
    "link": "https://rueckhalt.example/intern/faelle/1234",
    "case_id": "1234",
    "last_call": True,
    "land": "09",
    "reason": "no_recipient",
    "failed_topic": "notifications.new_case",
    "day": "2026-12-03",
    "seq": 1234,
    "at": "2026-12-03 04:00:00 UTC",
    "checkpoint": "1234:" + "ab" * 32 + ":20261203T040000Z:" + "cd" * 16,
    "articles": ["auskunftssperre.de", "auskunftssperre.en"],
    "count": 2,
    "entry_count": 1,
    "entries": ["RIAS Bayern (09)"],
    "reporter_subject": "Neue Nachricht in Ihrem Postfach",
    "before": {"de": "20.12.2026", "en": "2026-12-20"},
}


def templates() -> list[str]:
    return sorted({path.name.split(".")[0] for path in MAIL_TEMPLATES.glob("*.txt")})


@pytest.mark.parametrize("name", templates())
def test_every_template_renders_in_both_languages(name: str) -> None:
    subject, body = render(name, CONTEXT)
    assert "\n" not in subject
    assert "-- English --" in body
    german, english = body.split("-- English --")
    assert german.strip()
    assert english.strip()
    assert "{{" not in body
    assert "rueckhalt.example" in body, "every mail says where to sign in"


def test_the_templates_are_all_there() -> None:
    for name in templates():
        assert (MAIL_TEMPLATES / f"{name}.de.txt").exists()
        assert (MAIL_TEMPLATES / f"{name}.en.txt").exists()
    assert len(templates()) == 17


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(
        tmp_path_factory.mktemp("tls"), days=1, name="127.0.0.1", extensions=("subjectAltName=IP:127.0.0.1",)
    )


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"rueckhalt", b"geheim-genug")
    return AuthResult(success=ok, handled=False)


@pytest.fixture(params=["starttls", "tls"])
def secure_smtp(
    request: pytest.FixtureRequest, certificate: tuple[Path, Path]
) -> Iterator[tuple[str, int, Inbox]]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    common: dict[str, Any] = {"authenticator": _authenticator, "auth_required": True}
    if request.param == "starttls":
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True, **common
        )
    else:
        # Implicit TLS: aiosmtpd cannot tell the socket is encrypted, so it is told not to insist on STARTTLS.
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, ssl_context=context, auth_require_tls=False, **common
        )
    controller.start()
    yield request.param, port, inbox
    controller.stop()


# aiosmtpd warns about AUTH without STARTTLS; with implicit TLS the whole connection is encrypted.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_smtp_with_tls_and_authentication(
    tmp_path: Path,
    secure_smtp: tuple[str, int, Inbox],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    security, port, inbox = secure_smtp
    settings = Settings(
        data_dir=tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security=security,
        smtp_username="rueckhalt",
        smtp_password="geheim-genug",
        smtp_ca_file=certificate[0],
    )
    subject, body = render("new_case", CONTEXT)
    message = build_message(
        settings, to="anna@beratung.example", subject=subject, body=body, delivery_key="k"
    )

    mailer = SmtpMailer(settings)
    built: list[object] = []
    real_context = ssl.create_default_context

    def create_default_context(**kw: Any) -> ssl.SSLContext:
        built.append(kw)
        return real_context(**kw)

    monkeypatch.setattr(ssl, "create_default_context", create_default_context)
    mailer.send(message)
    mailer.send(message)
    monkeypatch.undo()

    assert [rcpt for rcpt, _ in inbox.messages] == ["anna@beratung.example"] * 2
    assert len(built) == 1, "the CA store is loaded once per mailer, not once per mail"
    wrong = settings.model_copy(update={"smtp_password": SecretStr("falsch")})
    with pytest.raises(smtplib.SMTPAuthenticationError):
        SmtpMailer(wrong).send(message)
    untrusted = settings.model_copy(update={"smtp_ca_file": None})
    with pytest.raises(ssl.SSLError):
        SmtpMailer(untrusted).send(message)
    assert len(inbox.messages) == 2


def test_the_embedded_default_writes_a_maildir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    subject, body = render("reporter_message", CONTEXT)
    message = build_message(settings, to="ich@example.org", subject=subject, body=body, delivery_key="x")
    MaildirMailer(settings.maildir).send(message)
    (stored,) = maildir_messages(settings.maildir)
    assert stored["To"] == "ich@example.org"
    assert stored["Message-ID"] == message["Message-ID"]
    assert (
        build_message(settings, to="a@b.c", subject="s", body="b", delivery_key="x")["Message-ID"]
        == message["Message-ID"]
    ), "the same delivery has the same Message-ID"
