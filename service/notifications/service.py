"""Delivering one outbox event: choose recipients, send each once, remember what went out.

Called by the Celery task ``notifications.deliver`` with an outbox id. Every successful send is recorded
(and committed) before the next one starts, so a task that dies half-way and is delivered again by the
broker (late acknowledgement) sends only what is still missing: at-least-once from the broker, once per
recipient from us. What cannot be sent after the last retry becomes a dead letter and an alert to the
coordinators and the fallback rota.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from service.cases.contact import open_address
from service.config import Settings
from service.crypto import DecryptionError, webhook_secret
from service.db import database_unavailable, utcnow
from service.notifications import repository
from service.notifications.mail import Mailer, build_message, render, reporter_mail
from service.notifications.recipients import (
    COORDINATION_TOPICS,
    COORDINATOR_TOPICS,
    KNOWN_TOPICS,
    REPORTER_KEY,
    Channel,
    Directory,
    NotificationContext,
    Payload,
    Recipient,
    recipients,
)
from service.notifications.webhooks import WebhookSender, webhook_body
from service.outbox.writer import enqueue
from service.taxonomy import Taxonomy

log = logging.getLogger("rueckhalt.notifications")
LANGS = ("de", "en")

# How long a worker keeps trying to note a delivery that has gone out while the database is out of reach
# (a restart of PostgreSQL takes seconds): a delivery that is not noted is sent again by the retry.
RECORD_PATIENCE_SECONDS = 30.0


@dataclass
class Outcome:
    delivered: list[str] = field(default_factory=list)
    # Recipient keys with the error class of their failure (never a message: it might quote an address).
    failed: dict[str, str] = field(default_factory=dict)
    skipped: bool = False

    @property
    def complete(self) -> bool:
        return not self.failed


class NotificationService:
    def __init__(
        self,
        settings: Settings,
        notification_key: bytes,
        taxonomy: Taxonomy,
        mailer: Mailer,
        webhooks: WebhookSender,
        *,
        sleep: Callable[[float], None] = time.sleep,
        previous_keys: tuple[bytes, ...] = (),
    ) -> None:
        self._settings = settings
        self._key = notification_key
        self._previous_keys = previous_keys
        self._taxonomy = taxonomy
        self._mailer = mailer
        self._webhooks = webhooks
        self._sleep = sleep

    # -- who -----------------------------------------------------------------------------------------------
    def directory(self, session: Session, topic: str, payload: Payload) -> Directory:
        org_ids = [str(payload["organisation_id"])] if payload.get("organisation_id") else []
        reporter_email = assignee = None
        case_id = payload.get("case_id")
        if case_id:
            contact = repository.case_contact(session, str(case_id))
            if contact is not None:
                sealed, assignee = contact
                if sealed is not None and topic.startswith(("notifications.reporter", "reminders.reporter")):
                    try:
                        reporter_email = open_address(self._key, str(case_id), sealed, self._previous_keys)
                    except DecryptionError:
                        log.warning("a reporter notification address could not be opened")
        alert = topic in COORDINATION_TOPICS or topic in COORDINATOR_TOPICS
        return Directory(
            organisations=repository.organisations(session, org_ids),
            coordinators=repository.coordinators(session) if alert else (),
            rota=repository.rota(session) if alert else (),
            reporter_email=reporter_email,
            assignee_id=assignee,
        )

    # -- what ----------------------------------------------------------------------------------------------
    def _link(self, recipient: Recipient) -> str:
        base = self._settings.public_url.rstrip("/")
        if recipient.key == REPORTER_KEY:
            return f"{base}/fall"
        case_id = recipient.context.get("case_id")
        if recipient.template == "knowledge_review_due":
            return f"{base}/wissen"
        if recipient.template.startswith("alert_") or recipient.template == "audit_checkpoint":
            return f"{base}/intern"
        return f"{base}/intern/faelle/{case_id}" if case_id else f"{base}/intern/faelle"

    def _mail_context(self, recipient: Recipient) -> NotificationContext:
        urgency = recipient.context.get("urgency")
        labels = {
            lang: (self._taxonomy.label("urgency", str(urgency), lang) if urgency else "")
            for lang in ("de", "en")
        }
        context: NotificationContext = {
            **recipient.context,
            "urgency_label": labels,
            "link": self._link(recipient),
        }
        if recipient.key == REPORTER_KEY:
            # Read by others too: the subject is the operator's neutral one, the link only if wanted.
            neutral = reporter_mail(self._settings)
            context["reporter_subject"] = neutral.subject
            context["link"] = neutral.link
        return context

    def _send(self, outbox_id: str, recipient: Recipient) -> None:
        if recipient.channel is Channel.mail:
            subject, body = render(recipient.template, self._mail_context(recipient))
            message = build_message(
                self._settings,
                to=recipient.address,
                subject=subject,
                body=body,
                delivery_key=f"{outbox_id}:{recipient.key}",
                sender=reporter_mail(self._settings).sender if recipient.key == REPORTER_KEY else None,
            )
            self._mailer.send(message)
        else:
            org_id = recipient.key.removeprefix("webhook:")
            body_bytes = webhook_body(outbox_id, recipient.template, recipient.context, self._link(recipient))
            self._webhooks.send(recipient.address, webhook_secret(self._key, org_id), body_bytes)

    # -- the task's work -----------------------------------------------------------------------------------
    def deliver(self, sessions: sessionmaker[Session], outbox_id: str) -> Outcome:
        outcome = Outcome()
        with sessions() as session:
            row = repository.outbox_row(session, outbox_id)
            if row is None or row.completed_at is not None:
                outcome.skipped = True
                return outcome
            topic, payload = row.topic, dict(row.payload)
            # Being worked on: the relay must not think the task was lost and hand the row out again.
            row.dispatched_at = utcnow()
            session.commit()
            if topic not in KNOWN_TOPICS:
                log.error("outbox row with an unknown topic %s", topic)
            chosen = recipients(topic, payload, self.directory(session, topic, payload))
            done = repository.delivered_keys(session, outbox_id)
        for recipient in chosen:
            if recipient.key in done:
                continue
            try:
                self._send(outbox_id, recipient)
            except Exception as exc:
                outcome.failed[recipient.key] = type(exc).__name__
                continue
            self._record(sessions, outbox_id, recipient)
            outcome.delivered.append(recipient.key)
        with sessions() as session:
            row = repository.outbox_row(session, outbox_id)
            if row is not None:
                row.attempts += 1
                if outcome.complete:
                    row.completed_at = utcnow()
                    row.last_error = None
                else:
                    row.last_error = ",".join(sorted(set(outcome.failed.values())))[:200]
                # The task's last transaction: the sends before it are outside any (an open transaction
                # must not wait on a mail server), each noted at once by ``_record``.
                session.commit()
        if not chosen:
            log.info("outbox %s (%s): nobody to notify", outbox_id, topic)
        return outcome

    def _record(self, sessions: sessionmaker[Session], outbox_id: str, recipient: Recipient) -> None:
        """Note a delivery that went out; wait (bounded) for a database that is restarting.

        The mail or webhook has left: if the note fails, the task's retry sends it a second time. So this
        one write waits for the database instead of failing at once (the insert is idempotent, so a commit
        whose answer was lost does no harm when repeated).
        """
        waited, pause = 0.0, 0.25
        while True:
            try:
                with sessions() as session:
                    repository.record_delivery(session, outbox_id, recipient.key, recipient.channel.value)
                    session.commit()
                return
            except Exception as exc:
                if not database_unavailable(exc) or waited + pause > RECORD_PATIENCE_SECONDS:
                    raise
                log.warning("outbox %s: the database is unavailable, the delivery is noted later", outbox_id)
            self._sleep(pause)
            waited += pause
            pause = min(pause * 2, 4.0)

    def dead_letter(self, session: Session, outbox_id: str) -> bool:
        """Give up on a row after the last retry: keep it, mark it, and tell people who can act.

        The caller commits (the task: the mark and the alert's outbox row together); False if there was
        nothing to give up on (gone, or completed meanwhile)."""
        row = repository.outbox_row(session, outbox_id)
        if row is None or row.completed_at is not None:
            return False
        now = utcnow()
        row.dead_at = now
        row.completed_at = now
        if row.topic.startswith("alerts."):
            # An alert that cannot be delivered must not raise another alert about itself, forever.
            log.error("alert %s (%s) could not be delivered", outbox_id, row.topic)
        else:
            enqueue(session, "alerts.dead_letter", failed_topic=row.topic, case_id=row.payload.get("case_id"))
        log.error("outbox %s is a dead letter", outbox_id)
        return True
