"""The reporter is told before the retention purge crypto-shreds their closed case: if they left an address,
one neutral mail (the reporter mails' sender and subject) some days ahead (``purge_notice_days``), once per
closure, through the outbox; driven by the purge's own clock, sent through a real SMTP server. Both databases.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.cases.models import ReminderLog
from service.db import utcnow
from service.i18n import LOCAL_ZONE
from service.notifications.mail import SmtpMailer
from service.notifications.service import NotificationService
from service.notifications.webhooks import WebhookSender
from service.outbox.models import OutboxMessage
from service.retention.service import NOTICE_TOPIC
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.notification import SmtpServer
from tests.support.retention import set_closure

REPORT = report_body(description="QXPURGECANARY Beleidigung")
ADDRESS = "nur-fuer-mich@example.org"
DAY = timedelta(days=1)
# policies/retention.yaml: "supported" falls under the default of 365 days.
PERIOD = 365 * DAY


def file_case(client: TestClient, runtime: Runtime, **changes: Any) -> tuple[str, str]:
    response = client.post("/api/v1/reports", json={**REPORT, **changes})
    assert response.status_code == 201, response.text
    receipt = str(response.json()["receipt"])
    with runtime.sessions() as db:
        return receipt, runtime.intake.open_case(db, receipt).case.id


def notices(runtime: Runtime) -> list[OutboxMessage]:
    with runtime.sessions() as db:
        return list(db.scalars(select(OutboxMessage).where(OutboxMessage.topic == NOTICE_TOPIC)).all())


def purge(runtime: Runtime, now: datetime, *, dry_run: bool = False) -> Any:
    with runtime.sessions() as db:
        report = runtime.retention.purge(db, now, dry_run=dry_run)
        db.commit()  # the task's transaction
        return report


def deliver_notices(runtime: Runtime, smtp: SmtpServer) -> None:
    settings = runtime.settings.model_copy(
        update={"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_security": "none"}
    )
    service = NotificationService(
        settings, runtime.secrets.notification_key, runtime.taxonomy, SmtpMailer(settings), WebhookSender(5)
    )
    for row in notices(runtime):
        assert service.deliver(runtime.sessions, row.id).complete


def test_the_reporter_is_told_once_before_the_purge_with_a_neutral_mail(
    client: TestClient, runtime: Runtime, smtp_server: SmtpServer
) -> None:
    """Given a closed case with an address whose purge is 10 days away (the notice period is 14), when the
    purge runs, then the case is kept and one outbox row is written; it becomes one neutral mail naming the
    day and /fall and nothing of the case; further runs, also days later, write nothing more."""
    assert runtime.settings.purge_notice_days == 14
    now = utcnow()
    receipt, case_id = file_case(client, runtime, notify_email=ADDRESS)
    closed_at = now - PERIOD + 10 * DAY
    set_closure(runtime, case_id, closed_at=closed_at, outcome="supported")

    report = purge(runtime, now)
    assert report.notices == 1
    assert report.purged == ()
    (row,) = notices(runtime)
    purge_on = (closed_at + PERIOD).astimezone(LOCAL_ZONE).date()
    # Identifiers and the day only: no address, nothing of the case.
    assert row.payload == {"case_id": case_id, "purge_on": purge_on.isoformat()}

    for later in (now, now + DAY, now + 9 * DAY):
        assert purge(runtime, later).notices == 0
    assert len(notices(runtime)) == 1
    with runtime.sessions() as db:
        assert db.scalars(select(ReminderLog.kind).where(ReminderLog.case_id == case_id)).all() == [
            "purge_notice"
        ]

    deliver_notices(runtime, smtp_server)
    (mail,) = smtp_server.inbox.to(ADDRESS)
    assert len(smtp_server.inbox.messages) == 1
    neutral = runtime.settings
    assert mail["Subject"] == neutral.reporter_mail_subject
    sender: Any = mail["From"]  # a header object (a str subclass) under the default policy
    assert sender.addresses[0].display_name == neutral.reporter_mail_sender_name
    text = mail.get_content()  # type: ignore[attr-defined]
    assert f"vor dem {purge_on.strftime('%d.%m.%Y')}" in text
    assert f"before {purge_on.isoformat()}" in text
    assert "Dossier" in text
    assert f"{runtime.settings.public_url}/fall" in text
    for secret in ("QXPURGECANARY", receipt, "Beratungsstelle", "Beleidigung", case_id, "gelöscht"):
        assert secret not in mail.as_string()

    # When the day comes, the case goes as before; the notice did not keep it.
    assert [case.candidate.case_id for case in purge(runtime, now + 10 * DAY + DAY).purged] == [case_id]


def test_who_is_told_when(client: TestClient, runtime: Runtime, smtp_server: SmtpServer) -> None:
    """No address: nobody told. Further off than the notice period: told once it is within it. Already due:
    purged in the same run without a notice (it could only arrive after the address is gone). A dry run
    counts and writes nothing. Re-opened and closed again: told again for the new closure."""
    now = utcnow()
    _, silent = file_case(client, runtime)
    _, later = file_case(client, runtime, notify_email="spaeter@example.org")
    _, due = file_case(client, runtime, notify_email="faellig@example.org")
    set_closure(runtime, silent, closed_at=now - PERIOD + 5 * DAY, outcome="supported")
    set_closure(runtime, later, closed_at=now - PERIOD + 20 * DAY, outcome="supported")
    set_closure(runtime, due, closed_at=now - PERIOD - DAY, outcome="supported")

    dry = purge(runtime, now, dry_run=True)
    assert dry.notices == 0
    report = purge(runtime, now)
    assert report.notices == 0
    assert [case.candidate.case_id for case in report.purged] == [due]
    assert notices(runtime) == []

    dry = purge(runtime, now + 7 * DAY, dry_run=True)
    assert dry.notices == 1
    assert notices(runtime) == []
    assert purge(runtime, now + 7 * DAY).notices == 1
    assert [row.payload["case_id"] for row in notices(runtime)] == [later]

    # Re-opened and closed again a day later: a new closure, a new notice when it comes near.
    set_closure(runtime, later, closed_at=None, outcome=None, status="open")
    assert purge(runtime, now + 8 * DAY).notices == 0
    set_closure(runtime, later, closed_at=now + 8 * DAY - PERIOD + 20 * DAY, outcome="supported")
    assert purge(runtime, now + 8 * DAY).notices == 0
    assert purge(runtime, now + 15 * DAY).notices == 1
    assert len(notices(runtime)) == 2

    deliver_notices(runtime, smtp_server)
    assert len(smtp_server.inbox.to("spaeter@example.org")) == 2
    assert smtp_server.inbox.to("faellig@example.org") == []


def test_a_case_reopened_after_the_notice_query_is_not_announced(
    client: TestClient, runtime: Runtime, monkeypatch: Any
) -> None:
    """The notice query runs before the notices are written; a new threat may re-open the case in between.
    Under the case's lock the closure is read again, and a re-opened case gets no "will be deleted" mail."""
    now = utcnow()
    _, case_id = file_case(client, runtime, notify_email=ADDRESS)
    set_closure(runtime, case_id, closed_at=now - PERIOD + 5 * DAY, outcome="supported")
    with runtime.sessions() as db:
        stale = runtime.retention.notices_due(db, now)
    assert [entry[0] for entry in stale] == [case_id]
    set_closure(runtime, case_id, closed_at=None, outcome=None, status="open")
    monkeypatch.setattr(runtime.retention, "notices_due", lambda session, when: stale)

    with runtime.sessions() as db:
        assert runtime.retention.notify_reporters(db, now) == []
    assert notices(runtime) == []
    with runtime.sessions() as db:
        assert db.scalars(select(ReminderLog).where(ReminderLog.case_id == case_id)).all() == []
