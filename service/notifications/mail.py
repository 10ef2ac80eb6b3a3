"""Content-free notification mail: rendering (German first, English below) and sending.

Two senders behind one small interface: SMTP (STARTTLS or implicit TLS, with authentication) for
production, and a Maildir in the data folder for the embedded default, so that `make run` needs no mail
server and a person trying the service can read what would have been sent.
"""

from __future__ import annotations

import hashlib
import mailbox
import smtplib
import ssl
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from service.config import PROJECT_ROOT, Settings
from service.display import plain_isolated
from service.notifications.recipients import NotificationContext

MAIL_TEMPLATES = PROJECT_ROOT / "templates" / "mail"


def _environment() -> Environment:
    # Plain text only; nothing a reporter typed ever reaches these templates, and autoescape would turn
    # an organisation called "Hilfe & Rat" into "Hilfe &amp; Rat" in a text mail.
    return Environment(  # noqa: S701 - text/plain: names and codes, no markup  # nosec B701
        loader=FileSystemLoader(MAIL_TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


_ENV = _environment()
# No template shows report content; should one ever show text a person wrote, it goes through this filter.
_ENV.filters["isolated"] = plain_isolated


def _one_line(text: str) -> str:
    """No header injection: a subject is one line whatever a name contains."""
    return " ".join(text.split())


def render(template: str, context: NotificationContext) -> tuple[str, str]:
    """(subject, body) of a bilingual mail: German first, then English."""
    parts = []
    for lang in ("de", "en"):
        text = _ENV.get_template(f"{template}.{lang}.txt").render(**context, lang=lang)
        first, _, rest = text.partition("\n")
        if not first.startswith("Subject: "):
            raise ValueError(f"mail template {template}.{lang}.txt must start with 'Subject: '")
        parts.append((_one_line(first.removeprefix("Subject: ")), rest.strip("\n")))
    (subject_de, body_de), (subject_en, body_en) = parts
    subject = subject_de if subject_de == subject_en else f"{subject_de} / {subject_en}"
    body = f"{body_de}\n\n-- English --\n\n{body_en}\n"
    return subject, body


def message_id(delivery_key: str) -> str:
    """The Message-ID of one delivery ("<outbox id>:<recipient key>").

    The same delivery always has the same Message-ID: a mail sent twice after a crash between sending and
    logging can be recognised (and is by many mail systems) as one; the fault benchmark counts duplicates
    by it.
    """
    digest = hashlib.sha256(delivery_key.encode()).hexdigest()[:32]
    return f"<{digest}@rueckhalt.notification>"


@dataclass(frozen=True)
class ReporterMail:
    """What a mail to a reporter's own address looks like from outside: the form shows exactly this."""

    sender: Address
    subject: str
    # Where the mail's link leads (None: the operator left the link out).
    link: str | None

    @property
    def sender_text(self) -> str:
        return f"{self.sender.display_name} <{self.sender.addr_spec}>"


def reporter_mail(settings: Settings) -> ReporterMail:
    """The neutral sender and subject of every mail to a reporter (settings ``reporter_mail_*``)."""
    address = settings.reporter_mail_address or parseaddr(settings.mail_from)[1] or "noreply@invalid"
    return ReporterMail(
        sender=Address(display_name=settings.reporter_mail_sender_name, addr_spec=address),
        subject=settings.reporter_mail_subject,
        link=f"{settings.public_url.rstrip('/')}/fall" if settings.reporter_mail_link else None,
    )


def build_message(
    settings: Settings,
    *,
    to: str,
    subject: str,
    body: str,
    delivery_key: str,
    sender: Address | None = None,
) -> EmailMessage:
    """One mail; ``sender`` replaces ``mail_from`` (the reporter's mails come from a neutral sender)."""
    message = EmailMessage()
    message["From"] = sender if sender is not None else settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id(delivery_key)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class MaildirMailer:
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def send(self, message: EmailMessage) -> None:
        # Maildir creates its tmp/new/cur only for a folder that does not exist yet; make sure of all four.
        for part in ("", "tmp", "new", "cur"):
            (self._folder / part).mkdir(parents=True, exist_ok=True, mode=0o700)
        box = mailbox.Maildir(self._folder, create=False)
        box.add(message)


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host is not None
        self._settings = settings
        self._context: ssl.SSLContext | None = None

    def _tls(self) -> ssl.SSLContext | None:
        """The TLS context, built at the first send that needs it and kept: loading the CA store costs tens
        of milliseconds of CPU (90 ms on a busy 2-core machine, bench/scaleout.py), which per mail was
        most of a delivery's cost. Built lazily, a CA file that cannot be read fails a send (retries, then
        a dead letter) as before, not the worker's start. A context is safe to share between threads."""
        s = self._settings
        if s.smtp_security == "none":
            return None
        if self._context is None:
            self._context = ssl.create_default_context(cafile=str(s.smtp_ca_file) if s.smtp_ca_file else None)
        return self._context

    def send(self, message: EmailMessage) -> None:
        s = self._settings
        assert s.smtp_host is not None
        context = self._tls()
        client: smtplib.SMTP
        if s.smtp_security == "tls":
            client = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        with client:
            if s.smtp_security == "starttls":
                client.starttls(context=context)
            if s.smtp_username:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                client.login(s.smtp_username, password)
            client.send_message(message)


def mailer_for(settings: Settings) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(settings)
    return MaildirMailer(settings.maildir)
