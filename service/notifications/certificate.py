"""When the SMTP relay's certificate expires: read from the relay itself, the way the mailer connects to it.

The worker checks once an hour (``system.smtp_certificate``, and at its start) and exposes the certificate's
notAfter as ``rueckhalt_smtp_certificate_expiry_seconds`` (Unix time, like the blackbox exporter's
``probe_ssl_earliest_cert_expiry``); the alert ``RueckhaltSmtpCertificateExpiring`` fires 14 days before
(docs/metrics.md). An expired certificate stops every mail: counsellors are not told of new reports.

The date is read without judging the certificate: an expired or untrusted one must still show its date, and
nothing is sent on this connection (no authentication, no mail: EHLO, STARTTLS, QUIT). Whether the mailer
trusts it is the mailer's test (a refused handshake there ends in dead letters and their alert).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import datetime

from cryptography import x509

from service.config import Settings

log = logging.getLogger("rueckhalt.notifications")


def _reading_context() -> ssl.SSLContext:
    # Reads the certificate only; the mailer's own context verifies it (service/notifications/mail.py).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _peer_not_after(sock: object) -> datetime:
    if not isinstance(sock, ssl.SSLSocket):
        raise ssl.SSLError("the connection is not encrypted")
    der = sock.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the relay sent no certificate")
    return x509.load_der_x509_certificate(der).not_valid_after_utc


def smtp_certificate_not_after(settings: Settings) -> datetime | None:
    """The relay's certificate's notAfter; None when no relay is configured or it is reached without TLS.

    Raises OSError (ssl.SSLError, smtplib.SMTPException included) when the relay cannot be read.
    """
    if not settings.smtp_host or settings.smtp_security == "none":
        return None
    context = _reading_context()
    client: smtplib.SMTP
    if settings.smtp_security == "tls":
        client = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds, context=context
        )
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds)
    with client:
        if settings.smtp_security == "starttls":
            client.starttls(context=context)
        return _peer_not_after(client.sock)
