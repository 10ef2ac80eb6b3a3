"""The daily audit checkpoint: the beat mails the chain's head to the coordinators and the fallback rota, and
``rueckhalt audit verify`` names a cut tail from the mail that was delivered.

Real parts: both databases, an aiosmtpd SMTP server (and the Maildir of the embedded default), the task's own
code, the relay and the delivery service, the command line through typer. The attacker is raw SQL on a
connection of its own, past the service.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import pytest
import typer
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from fastapi.testclient import TestClient
from sqlalchemy import JSON, bindparam, func, select, text, update
from typer.testing import CliRunner, Result

from service.audit import Checkpoint, Problem, find_checkpoints, verify
from service.audit.cli import audit_app
from service.audit.daily import ACTION, TOPIC, checkpoint_day, send_daily_checkpoint
from service.audit.models import AuditEvent
from service.config import Settings, get_settings
from service.db import UTCDateTime
from service.identity.models import MembershipRole, StaffUser
from service.notifications.mail import MaildirMailer
from service.outbox.models import OutboxMessage
from service.outbox.relay import relay
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.notification import Inbox, SmtpServer, SmtpService, maildir_messages
from tests.support.stack import free_port
from tests.support.staff import MakeStaff
from workers import context
from workers import tasks as worker_tasks
from workers.celery_app import celery_config, make_celery
from workers.context import WorkerContext

CANARY = "QXAUDITCANARY7781 Drohanruf beim Ortsbürgermeister"
REPORT = report_body(type_codes=["A3a"], description=CANARY, channel="letter")
COORDINATORS = ("kai@koordination.example", "mia@koordination.example")
ROTA = ("rota@bereitschaft.example",)
OTHERS = ("anna@beratung.example", "root@betrieb.example", "alt@koordination.example")

cli = typer.Typer()
cli.add_typer(audit_app, name="audit")
runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(cli, ["audit", "verify", *args])


# -- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    service = SmtpService(Inbox(), free_port())
    service.start()
    try:
        yield service.server
    finally:
        service.stop()


@pytest.fixture
def people(runtime: Runtime, make_staff: MakeStaff) -> None:
    """Two coordinators and a rota member, who must get the mail; a counsellor, an administrator and a
    disabled coordinator, who must not."""
    for email in COORDINATORS:
        make_staff(email=email, coordinator=True)
    make_staff(email=ROTA[0], memberships=[("rufbereitschaft", MembershipRole.counsellor)])
    make_staff(email=OTHERS[0], memberships=[("beratung-by", MembershipRole.counsellor)])
    make_staff(email=OTHERS[1], admin=True)
    make_staff(email=OTHERS[2], coordinator=True)
    with runtime.sessions() as db:
        db.execute(update(StaffUser).where(StaffUser.email == OTHERS[2]).values(disabled=True))
        db.commit()


@pytest.fixture
def worker(runtime: Runtime, smtp_server: SmtpServer, people: None) -> Iterator[WorkerContext]:
    """The context a worker process builds, with its mail going to the test's SMTP server."""
    settings = runtime.settings.model_copy(
        update={"smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_security": "none"}
    )
    ctx = context.context_for(runtime, settings)
    context.use(ctx)
    yield ctx
    context.use(None)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command line's environment points at the test's data folder (so its audit key) and database."""
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", settings.resolved_database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# -- helpers ---------------------------------------------------------------------------------------------


def deliver_outbox(ctx: WorkerContext) -> list[str]:
    """One relay pass, and each published task's work done here: what the worker does with the ids."""
    published: list[tuple[str, str]] = []
    relay(ctx.runtime.sessions, lambda task, outbox_id: published.append((task, outbox_id)))
    for task, outbox_id in published:
        assert task == "notifications.deliver"
        assert ctx.notifications.deliver(ctx.runtime.sessions, outbox_id).complete
    return [outbox_id for _, outbox_id in published]


def append_events(runtime: Runtime, count: int, case_id: str = "case-x") -> None:
    for number in range(count):
        with runtime.sessions() as db:
            runtime.audit.append(
                db,
                actor_kind="staff",
                actor_id=f"staff-{number}",
                action="case.decrypt",
                object_type="case",
                object_id=case_id,
                details={"field": "description"},
            )
            db.commit()


def head_seq(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return int(db.execute(text("SELECT max(seq) FROM audit_event")).scalar_one())


def checkpoint_events(runtime: Runtime) -> list[tuple[int, str, dict[str, object]]]:
    with runtime.sessions() as db:
        rows = db.execute(
            select(AuditEvent.seq, AuditEvent.mac, AuditEvent.details).where(AuditEvent.action == ACTION)
        ).all()
    return [(row.seq, row.mac, row.details) for row in rows]


def body(mail: Message) -> str:
    return str(mail.get_content())  # type: ignore[attr-defined]


def cut(runtime: Runtime, from_seq: int) -> None:
    """The attacker: delete the newest rows, past the service, on a connection of its own."""
    with runtime.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_event WHERE seq >= :seq"), {"seq": from_seq})


# -- the beat task and its mail ---------------------------------------------------------------------------


def test_the_beat_mails_a_content_free_checkpoint_to_the_coordinators_and_the_rota_only(
    client: TestClient, worker: WorkerContext, smtp_server: SmtpServer
) -> None:
    """Given a filed report and audit events about its case, when the beat's task runs and the outbox is
    delivered, then each enabled coordinator and rota member gets one mail (German first, English below)
    with the signed checkpoint of the event that records the sending, and nobody else gets anything; no mail
    holds anything of the case."""
    filed = client.post("/api/v1/reports", json=REPORT)
    assert filed.status_code == 201
    receipt = filed.json()["receipt"]
    with worker.runtime.sessions() as db:
        case_id = str(db.execute(text("SELECT id FROM case_file")).scalar_one())
    append_events(worker.runtime, 3, case_id=case_id)
    smtp_server.inbox.messages.clear()  # the new-case mail of the report is not what is tested here
    with worker.runtime.sessions() as db:
        db.execute(update(OutboxMessage).values(completed_at=datetime.now(UTC)))
        db.commit()

    seq = worker_tasks.audit_checkpoint.run()
    deliver_outbox(worker)

    ((event_seq, event_mac, details),) = checkpoint_events(worker.runtime)
    assert seq == event_seq == head_seq(worker.runtime), "the mail covers the event that records it"
    assert set(details) == {"day"}
    received = smtp_server.inbox.messages
    assert sorted(rcpt for rcpt, _ in received) == sorted([*COORDINATORS, *ROTA])
    for _, mail in received:
        text_ = body(mail)
        (checkpoint,) = find_checkpoints(text_)
        assert (checkpoint.seq, checkpoint.mac) == (event_seq, event_mac)
        assert checkpoint.is_signed
        assert checkpoint.authentic(worker.runtime.secrets.audit_key)
        assert text_.index("Bitte bewahren Sie diese E-Mail auf") < text_.index("-- English --")
        assert text_.index("-- English --") < text_.index("Please keep this mail")
        assert f"rueckhalt audit verify --since-checkpoint {checkpoint}" in text_
        assert "CUT TAIL" in text_
        assert mail["Subject"].startswith("Prüfpunkt des Audit-Protokolls vom")
        raw = mail.as_string()
        for secret in (CANARY, "QXAUDITCANARY7781", receipt, case_id, "A3a", "description"):
            assert secret not in raw


def test_sending_twice_a_day_sends_once_and_the_next_day_again(
    worker: WorkerContext, smtp_server: SmtpServer
) -> None:
    """Given the hourly beat, when the task runs twice on one day, then one event, one outbox row and one
    mail per recipient; the next day brings a new checkpoint."""
    append_events(worker.runtime, 2)
    first = worker_tasks.audit_checkpoint.run()
    second = worker_tasks.audit_checkpoint.run()
    deliver_outbox(worker)
    deliver_outbox(worker)

    assert first is not None
    assert second is None
    assert len(checkpoint_events(worker.runtime)) == 1
    with worker.runtime.sessions() as db:
        assert db.scalar(select(func.count()).where(OutboxMessage.topic == TOPIC)) == 1
    assert len(smtp_server.inbox.messages) == len(COORDINATORS) + len(ROTA)

    with worker.runtime.sessions() as db:
        tomorrow = send_daily_checkpoint(db, worker.runtime.audit, now=datetime.now(UTC) + timedelta(days=1))
        db.commit()  # the task's transaction
    assert tomorrow is not None
    assert tomorrow.checkpoint.seq == first + 1
    assert len(checkpoint_events(worker.runtime)) == 2


def test_two_workers_at_once_send_one_checkpoint(worker: WorkerContext) -> None:
    """Given two workers taking the beat's task at the same moment, then the chain lock lets one send."""
    append_events(worker.runtime, 1)
    now = datetime.now(UTC)
    results: list[object] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        with worker.runtime.sessions() as db:
            results.append(send_daily_checkpoint(db, worker.runtime.audit, now=now))
            db.commit()  # the task's transaction

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(result is None for result in results) == [False, True]
    assert len(checkpoint_events(worker.runtime)) == 1


def test_a_forged_record_of_todays_checkpoint_does_not_stop_the_mail(worker: WorkerContext) -> None:
    """Given an attacker who appends an ``audit.checkpoint`` row for today past the service (linked to the
    head, to suppress the mail that would expose a cut), then its MAC does not verify and the beat sends."""
    append_events(worker.runtime, 1)
    head = head_seq(worker.runtime)
    with worker.runtime.sessions() as db:
        head_mac = db.execute(select(AuditEvent.mac).where(AuditEvent.seq == head)).scalar_one()
    statement = text(
        "INSERT INTO audit_event (seq, at, actor_kind, actor_id, action, object_type, object_id, details, "
        "prev_mac, mac) VALUES (:seq, :at, 'system', NULL, :action, 'audit', NULL, :details, :prev, :mac)"
    ).bindparams(bindparam("at", type_=UTCDateTime()), bindparam("details", type_=JSON()))
    with worker.runtime.engine.begin() as connection:
        connection.execute(
            statement,
            {
                "seq": head + 1,
                "at": datetime.now(UTC),
                "action": ACTION,
                "details": {"day": checkpoint_day(datetime.now(UTC))},
                "prev": head_mac,
                "mac": secrets.token_hex(32),
            },
        )
    assert worker_tasks.audit_checkpoint.run() == head + 2
    assert len(checkpoint_events(worker.runtime)) == 2


# -- verify against the delivered mail --------------------------------------------------------------------


def _mailed(smtp_server: SmtpServer, tmp_path: Path, name: str = "checkpoint.eml") -> tuple[Checkpoint, Path]:
    """The mail one coordinator received, saved as the raw message (quoted-printable and all)."""
    (mail,) = smtp_server.inbox.to(COORDINATORS[0])[-1:]
    saved = tmp_path / name
    saved.write_bytes(mail.as_bytes())
    (checkpoint,) = find_checkpoints(body(mail))
    return checkpoint, saved


def test_a_cut_tail_is_named_from_the_mailed_checkpoint(
    worker: WorkerContext, smtp_server: SmtpServer, cli_env: None, tmp_path: Path
) -> None:
    """Given today's checkpoint mail at seq S, when an attacker with database access deletes
    the newest rows from seq S-2 on, then the chain alone still verifies, but ``audit verify`` with the saved
    mail (or the checkpoint pasted from it) exits 1 and names the cut: the chain ends at S-3, events S-2..S
    were removed, with the checkpoint's date."""
    append_events(worker.runtime, 5)
    worker_tasks.audit_checkpoint.run()
    deliver_outbox(worker)
    checkpoint, saved = _mailed(smtp_server, tmp_path)
    s = checkpoint.seq
    assert invoke("--checkpoint-file", str(saved)).exit_code == 0

    cut(worker.runtime, s - 2)

    assert invoke().exit_code == 0, "a cut tail leaves a valid, shorter chain: alone, nothing shows"
    for args in (("--checkpoint-file", str(saved)), ("--since-checkpoint", str(checkpoint))):
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        assert f"BROKEN at seq {s - 2}: truncated" in result.stderr
        assert (
            f"CUT TAIL: the audit chain ends at seq {s - 3}, but checkpoint {checkpoint.short} from "
            f"{checkpoint.when} says it reached seq {s}: events {s - 2}..{s} were removed." in result.stderr
        )
        assert "checkpoint to keep" not in result.stdout, "a broken chain offers no new checkpoint"

    with worker.runtime.sessions() as db:
        found = verify(db, worker.runtime.secrets.audit_key, checkpoints=[checkpoint])
    assert (found.ok, found.problem, found.first_bad_seq, found.checked) == (
        False,
        Problem.truncated,
        s - 2,
        s - 3,
    )


def test_an_untouched_chain_passes_with_the_mailed_checkpoint(
    worker: WorkerContext, smtp_server: SmtpServer, cli_env: None, tmp_path: Path
) -> None:
    """Given the mailed checkpoint and more events since, then verify with the mail exits 0 and says the
    checkpoint is still in the chain."""
    append_events(worker.runtime, 2)
    worker_tasks.audit_checkpoint.run()
    deliver_outbox(worker)
    checkpoint, saved = _mailed(smtp_server, tmp_path)
    append_events(worker.runtime, 3)

    result = invoke("--checkpoint-file", str(saved))
    assert result.exit_code == 0, result.output
    assert f"the newest: seq {checkpoint.seq} from {checkpoint.when}" in result.stdout
    assert f"checkpoint {checkpoint.seq} is still in the chain, unchanged" in result.stdout
    assert f"{checkpoint.seq + 3} events checked" in result.stdout


def test_with_several_mails_the_cut_is_named_against_the_newest(
    worker: WorkerContext, smtp_server: SmtpServer, cli_env: None, tmp_path: Path
) -> None:
    """Given the mails of two days, when the tail is cut back behind the second but not the first, then
    verify with both mails names the cut up to the second day's seq."""
    append_events(worker.runtime, 2)
    worker_tasks.audit_checkpoint.run()
    deliver_outbox(worker)
    older, older_file = _mailed(smtp_server, tmp_path, "day1.eml")
    append_events(worker.runtime, 4)
    with worker.runtime.sessions() as db:
        send_daily_checkpoint(db, worker.runtime.audit, now=datetime.now(UTC) + timedelta(days=1))
        db.commit()  # the task's transaction
    deliver_outbox(worker)
    newer, newer_file = _mailed(smtp_server, tmp_path, "day2.eml")
    assert newer.seq == older.seq + 5

    cut(worker.runtime, older.seq + 2)

    result = invoke("--checkpoint-file", str(older_file), "--checkpoint-file", str(newer_file))
    assert result.exit_code == 1
    assert "checking against 2 checkpoint(s)" in result.stdout
    assert (
        f"ends at seq {older.seq + 1}, but checkpoint {newer.short} from {newer.when} says it reached "
        f"seq {newer.seq}: events {older.seq + 2}..{newer.seq} were removed." in result.stderr
    )
    assert invoke("--checkpoint-file", str(older_file)).exit_code == 0, "the older mail alone cannot see it"


def test_a_forged_checkpoint_is_refused_and_cannot_hide_a_cut(
    worker: WorkerContext, smtp_server: SmtpServer, cli_env: None, tmp_path: Path
) -> None:
    """Given the real mail, when someone offers a checkpoint with another MAC or a larger seq (a fake alarm)
    under the real tag, then verify refuses it as forged (exit 1) and does not call the chain cut; given a
    real cut and a forged checkpoint beside the real mail, the cut is still named."""
    append_events(worker.runtime, 3)
    worker_tasks.audit_checkpoint.run()
    deliver_outbox(worker)
    real, saved = _mailed(smtp_server, tmp_path)
    assert real.at is not None
    assert real.tag is not None
    other_mac = Checkpoint(real.seq, secrets.token_hex(32), real.at, real.tag)
    fake_cut = Checkpoint(real.seq + 10, real.mac, real.at, real.tag)

    for forged in (other_mac, fake_cut):
        result = invoke("--since-checkpoint", str(forged))
        assert result.exit_code == 1
        assert f"FORGED CHECKPOINT refused: {forged.short}" in result.stderr
        assert "CUT TAIL" not in result.output
        assert "audit chain intact" in result.stdout

    cut(worker.runtime, real.seq)
    result = invoke("--since-checkpoint", str(fake_cut), "--checkpoint-file", str(saved))
    assert result.exit_code == 1
    assert "FORGED CHECKPOINT refused" in result.stderr
    assert f"but checkpoint {real.short} from {real.when} says it reached seq {real.seq}" in result.stderr


def test_the_embedded_maildir_file_is_a_checkpoint_file(
    runtime: Runtime, people: None, cli_env: None
) -> None:
    """Given the embedded default (no SMTP host: mail goes to the Maildir), then a delivered checkpoint mail
    file can be handed to verify as it is."""
    ctx = context.context_for(runtime)
    assert isinstance(ctx.notifications._mailer, MaildirMailer), "the embedded default: no SMTP host"
    append_events(runtime, 2)
    with runtime.sessions() as db:
        sent = send_daily_checkpoint(db, runtime.audit, now=datetime.now(UTC))
        db.commit()  # the task's transaction
    assert sent is not None
    deliver_outbox(ctx)
    files = sorted((runtime.settings.maildir / "new").iterdir())
    assert len(files) == len(maildir_messages(runtime.settings.maildir)) == len(COORDINATORS) + len(ROTA)
    result = invoke("--checkpoint-file", str(files[0]))
    assert result.exit_code == 0, result.output
    cut(runtime, sent.checkpoint.seq)
    result = invoke("--checkpoint-file", str(files[0]))
    assert result.exit_code == 1
    assert f"event {sent.checkpoint.seq} was removed" in result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_file_without_a_checkpoint_is_a_usage_error(cli_env: None, tmp_path: Path) -> None:
    empty = tmp_path / "note.txt"
    empty.write_text("nothing here 12:34")
    result = invoke("--checkpoint-file", str(empty))
    assert result.exit_code == 2
    assert "no checkpoint found" in result.output


# -- the checkpoint format, without a database ------------------------------------------------------------


def test_a_signed_checkpoint_survives_its_text_and_any_change_breaks_its_tag() -> None:
    key = secrets.token_bytes(32)
    at = datetime(2026, 12, 3, 4, 5, 6, 789, tzinfo=UTC)
    signed = Checkpoint.signed(key, 42, "ab" * 32, at)
    text_ = str(signed)
    assert text_ == f"42:{'ab' * 32}:20261203T040506Z:{signed.tag}"
    assert Checkpoint.parse(text_) == signed
    assert Checkpoint.parse(text_).authentic(key)
    assert not Checkpoint.parse(text_).authentic(secrets.token_bytes(32))
    for changed in (
        Checkpoint(43, signed.mac, signed.at, signed.tag),
        Checkpoint(42, "cd" * 32, signed.at, signed.tag),
        Checkpoint(42, signed.mac, at + timedelta(seconds=1), signed.tag),
    ):
        assert not changed.authentic(key)
    assert not Checkpoint.parse(f"42:{'ab' * 32}").authentic(key), "a bare SEQ:MAC proves nothing itself"


def test_checkpoints_are_found_in_running_text_once_each() -> None:
    key = secrets.token_bytes(32)
    signed = Checkpoint.signed(key, 7, "0f" * 32, datetime(2026, 1, 2, tzinfo=UTC))
    bare = Checkpoint(9, "aa" * 32)
    mail = f"Prüfpunkt:\n{signed}\nverify --since-checkpoint {signed}\nalso {bare}.\n{signed}x"
    assert find_checkpoints(mail) == [signed, bare]
    assert find_checkpoints("seq 12:34 and a hash " + "ab" * 32) == []


# -- the schedule -----------------------------------------------------------------------------------------


def test_the_beat_schedules_the_checkpoint_and_a_worker_runs_it_from_the_broker(
    worker: WorkerContext, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """Given the beat's schedule, it names ``audit.checkpoint``; sent through a real (embedded) broker to a
    real worker twice, then relayed, the checkpoint arrives once per recipient."""
    settings = worker.settings.model_copy(update={"broker_url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"})
    schedule = celery_config(settings)["beat_schedule"]
    assert {entry["task"] for entry in schedule.values()} >= {"audit.checkpoint"}
    app = make_celery(settings)
    app.finalize()
    append_events(worker.runtime, 1)
    finished: list[object] = []

    def count(sender: object = None, retval: object = None, **_: object) -> None:
        if getattr(sender, "name", "") == "audit.checkpoint":
            finished.append(retval)

    task_postrun.connect(count, weak=False)
    context.use(context.context_for(worker.runtime, settings), app)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
            app.send_task("audit.checkpoint")
            app.send_task("audit.checkpoint")
            assert _wait(lambda: len(finished) == 2)
            app.send_task("outbox.relay")
            assert _wait(lambda: len(smtp_server.inbox.messages) >= len(COORDINATORS) + len(ROTA))
    finally:
        task_postrun.disconnect(count)
    assert finished[1] is None, "the second run of the day sends nothing"
    assert len(checkpoint_events(worker.runtime)) == 1
    assert len(smtp_server.inbox.messages) == len(COORDINATORS) + len(ROTA)


def _wait(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
