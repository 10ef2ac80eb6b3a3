"""Faults with the real services: Redis stopped during intake, a worker killed in the middle of a task.

Target: no notification lost, none sent twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from helpers import free_port
from notification_helpers import Inbox, RedisProcess, SmtpServer
from sqlalchemy import select
from staff_helpers import MakeStaff

from service.config import PROJECT_ROOT
from service.organisations.models import MembershipRole
from service.outbox.models import DeliveryLog, OutboxMessage
from service.outbox.relay import relay
from service.runtime import Runtime
from workers import context
from workers.celery_app import make_celery

REPORT = {"land": "09", "type_codes": ["A3a"], "description": "Drohung", "channel": "letter"}


def wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def outbox(runtime: Runtime) -> list[OutboxMessage]:
    with runtime.sessions() as db:
        rows = list(db.scalars(select(OutboxMessage)))
        db.expunge_all()
        return rows


def per_recipient(inbox: Inbox) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for rcpt, message in inbox.messages:
        found.setdefault(rcpt, []).append(str(message["Message-ID"]))
    return found


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisProcess(folder, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def members(make_staff: MakeStaff) -> list[str]:
    return [
        make_staff(
            email=f"b{i}@beratung.example", memberships=[("beratung-by", MembershipRole.counsellor)]
        ).email
        for i in range(2)
    ]


def test_redis_stopped_during_intake_loses_nothing_and_sends_nothing_twice(
    client: TestClient,
    runtime: Runtime,
    smtp_server: SmtpServer,
    redis_server: RedisProcess,
    members: list[str],
) -> None:
    """Given a worker on Redis, when Redis stops, five reports are still accepted and their rows wait;
    when Redis is back, every counsellor gets each of the five notifications exactly once."""
    settings = runtime.settings.model_copy(
        update={
            "broker_url": redis_server.url,
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "smtp_security": "none",
        }
    )
    app = make_celery(settings)
    import workers.tasks  # noqa: F401 - registers the tasks

    app.finalize()
    context.use(context.context_for(runtime, settings), app)

    def publish(task: str, outbox_id: str) -> None:
        app.send_task(task, args=[outbox_id], retry=False)

    try:
        redis_server.stop()
        for _ in range(5):
            assert client.post("/api/v1/reports", json=REPORT).status_code == 201
        down = relay(runtime.sessions, publish)
        assert down.dispatched == 0
        assert down.failed == 1
        assert all(row.dispatched_at is None and row.completed_at is None for row in outbox(runtime))

        redis_server.start()
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
            assert wait_until(
                lambda: (
                    relay(runtime.sessions, publish, now=_later()).dispatched >= 0
                    and all(row.completed_at is not None for row in outbox(runtime))
                )
            )
    finally:
        context.use(None)
    received = per_recipient(smtp_server.inbox)
    assert sorted(received) == sorted(members)
    for message_ids in received.values():
        assert len(message_ids) == 5, "each notification arrived"
        assert len(set(message_ids)) == 5, "and none twice"


def _later() -> Any:
    from datetime import timedelta

    from service.db import utcnow

    # Past any backoff the outage gave the rows: the relay's next passes, compressed in time.
    return utcnow() + timedelta(minutes=10)


class SlowInbox(Inbox):
    """An SMTP server that takes its time with one recipient, and takes responsibility for a mail only if
    the client is still there to hear its 250 (as RFC 5321 puts it)."""

    def __init__(self, slow_for: str) -> None:
        super().__init__()
        self.slow_for = slow_for
        self.slow_seen = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.slow_for in envelope.rcpt_tos and not getattr(self, "_slowed", False):
            self._slowed = True
            await asyncio.sleep(4)
            if server.transport is None or server.transport.is_closing():
                return "421 client gone"
        return await super().handle_DATA(server, session, envelope)


def test_a_worker_killed_in_the_middle_of_a_task_sends_each_mail_once(
    client: TestClient,
    runtime: Runtime,
    redis_server: RedisProcess,
    members: list[str],
    tmp_path: Path,
) -> None:
    """Given a worker process that is killed (SIGKILL) while it sends the second of two mails, the broker
    hands the task to a new worker after the visibility timeout, which sends only the missing mail."""
    first, second = sorted(members)
    inbox = SlowInbox(slow_for=second)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    env = {
        **os.environ,
        "RUECKHALT_DATA_DIR": str(runtime.settings.data_dir),
        "RUECKHALT_DATABASE_URL": runtime.settings.resolved_database_url,
        "RUECKHALT_BROKER_URL": redis_server.url,
        "RUECKHALT_BROKER_VISIBILITY_TIMEOUT_SECONDS": "3",
        "RUECKHALT_SMTP_HOST": "127.0.0.1",
        "RUECKHALT_SMTP_PORT": str(port),
        "RUECKHALT_SMTP_SECURITY": "none",
    }
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "--pool",
        "solo",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
        "--queues",
        "rueckhalt",
    ]

    def worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, start_new_session=True)

    settings = runtime.settings.model_copy(update={"broker_url": redis_server.url})
    app = make_celery(settings)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        assert client.post("/api/v1/reports", json=REPORT).status_code == 201
        (row,) = outbox(runtime)
        processes.append(worker())
        app.send_task("notifications.deliver", args=[row.id])
        assert wait_until(lambda: _delivered(runtime, row.id) == 1 and getattr(inbox, "_slowed", False))
        os.killpg(processes[0].pid, signal.SIGKILL)
        processes[0].wait(timeout=10)

        processes.append(worker())
        assert wait_until(lambda: _completed(runtime, row.id), seconds=90)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
        controller.stop()
    received: dict[str, list[Message]] = {}
    for rcpt, message in inbox.messages:
        received.setdefault(rcpt, []).append(message)
    assert {rcpt: len(mails) for rcpt, mails in received.items()} == {first: 1, second: 1}


def _delivered(runtime: Runtime, outbox_id: str) -> int:
    with runtime.sessions() as db:
        return len(db.scalars(select(DeliveryLog.id).where(DeliveryLog.outbox_id == outbox_id)).all())


def _completed(runtime: Runtime, outbox_id: str) -> bool:
    with runtime.sessions() as db:
        row = db.get(OutboxMessage, outbox_id)
        return row is not None and row.completed_at is not None
