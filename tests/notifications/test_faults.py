"""Faults with the real services: Redis stopped during intake, a worker killed in the middle of a task,
PostgreSQL restarted under the whole product while reports arrive.

Target: no notification lost, none sent twice. (bench/faults.py runs every fault at a larger scale.)
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

import httpx
import pytest
from aiosmtpd.controller import Controller
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.config import PROJECT_ROOT, Settings
from service.db import make_engine
from service.identity.models import MembershipRole
from service.migrate import upgrade
from service.outbox.models import DeliveryLog, OutboxMessage
from service.outbox.relay import relay
from service.runtime import Runtime, build_runtime
from tests.support.forms import report_body
from tests.support.notification import Inbox, RedisProcess, SmtpServer, SmtpService
from tests.support.product import ROUTED_ORGANISATION, Audience, Product, Traffic, outbox_settled, tally
from tests.support.stack import PgCluster, free_port
from tests.support.staff import Clock, MakeStaff, staff_factory, weak_accounts, with_policy_organisations
from workers import context
from workers.celery_app import make_celery

REPORT = report_body(type_codes=["A3a"], description="Drohung", channel="letter")


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


@pytest.mark.slow
def test_a_postgres_crash_during_intake_loses_no_report_and_sends_nothing_twice(tmp_path: Path) -> None:
    """Given the product as separate processes (api, worker, beat) on PostgreSQL with durable commits and
    Redis, when PostgreSQL crashes (immediate stop) while reports arrive and starts again, then every
    report answered 201 is stored and reaches both counsellors exactly once, and a report sent during the
    outage gets 503 with a message in German and English that says to send it again."""
    cluster = PgCluster(durable_commits=True)
    redis_server = RedisProcess(tmp_path, free_port())
    # A slow mail server keeps deliveries in flight and queued, so the crash meets tasks at work.
    smtp = SmtpService(Inbox(delay_seconds=0.3), free_port())
    product: Product | None = None
    try:
        url, pepper, audience = _product_database(cluster, tmp_path / "data")
        redis_server.start()
        smtp.start()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        product = Product(
            {
                **os.environ,
                "RUECKHALT_DATA_DIR": str(tmp_path / "data"),
                "RUECKHALT_DATABASE_URL": url,
                "RUECKHALT_REDIS_URL": redis_server.url,
                "RUECKHALT_BROKER_URL": f"redis://127.0.0.1:{redis_server.port}/1",
                "RUECKHALT_PUBLIC_URL": base,
                "RUECKHALT_SMTP_HOST": "127.0.0.1",
                "RUECKHALT_SMTP_PORT": str(smtp.port),
                "RUECKHALT_SMTP_SECURITY": "none",
                "RUECKHALT_INTAKE_LIMIT_PER_HOUR": "10000",
                # Retries in seconds, not minutes; the visibility timeout above the worker's 30 s wait to
                # note a delivery, so that no second worker takes the task meanwhile.
                "RUECKHALT_TASK_RETRY_BASE_SECONDS": "1",
                "RUECKHALT_TASK_RETRY_CAP_SECONDS": "4",
                "RUECKHALT_TASK_MAX_RETRIES": "8",
                "RUECKHALT_BROKER_VISIBILITY_TIMEOUT_SECONDS": "60",
            },
            tmp_path / "logs",
        )
        product.worker("worker")
        product.beat()
        product.api("api", port)
        assert wait_until(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, 60)

        traffic = Traffic([f"{base}/api/v1/reports"], rate=4, seconds=6)
        time.sleep(2)
        assert wait_until(lambda: smtp.inbox.in_flight > 0, 10)
        cluster.halt("immediate")
        during = httpx.post(f"{base}/api/v1/reports", json=REPORT, timeout=15)
        time.sleep(2)
        cluster.start()
        submissions = traffic.join(60)
        assert wait_until(lambda: outbox_settled(url), 90)
        time.sleep(1)  # a late second delivery would come now
        counted = tally(url, pepper, submissions, smtp.inbox, None, audience)
    finally:
        if product is not None:
            product.close()
        smtp.stop()
        redis_server.stop()
        cluster.stop()

    assert during.status_code == 503
    assert "nicht angenommen" in during.json()["detail"]
    assert "not accepted" in during.json()["detail"]
    assert during.headers["retry-after"]
    assert counted.refused >= 1, "the outage was seen by the reporters"
    assert counted.accepted >= 8
    assert counted.failed == 0, f"every answer was 201 or 503: {counted.statuses}"
    assert counted.lost == 0
    assert counted.duplicated == 0
    assert counted.unexpected == 0
    assert counted.delivered == counted.expected == 2 * counted.accepted


def _product_database(cluster: PgCluster, data_dir: Path) -> tuple[str, bytes, Audience]:
    """A migrated database with every organisation and two counsellors of the routed one."""
    with cluster.admin() as conn:
        conn.execute("CREATE DATABASE product")
    url = cluster.url("product")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    runtime = with_policy_organisations(build_runtime(Settings(data_dir=data_dir, database_url=url)))
    try:
        make = staff_factory(runtime, weak_accounts(runtime, Clock()))
        counsellors = tuple(
            make(
                email=f"p{i}@beratung.example", memberships=[(ROUTED_ORGANISATION, MembershipRole.counsellor)]
            ).user_id
            for i in range(2)
        )
        return url, runtime.secrets.lookup_pepper, Audience(counsellors, (), webhook=False)
    finally:
        runtime.dispose()
