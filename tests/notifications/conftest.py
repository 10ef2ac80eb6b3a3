"""Real services for the notification tests: an SMTP server (aiosmtpd), Redis, a webhook receiver, and a
Celery worker on either broker (``stack``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from service.config import Settings
from service.identity.models import MembershipRole
from service.runtime import Runtime
from tests.support.notification import (
    Inbox,
    RedisProcess,
    SmtpServer,
    SmtpService,
    WebhookReceiver,
    WebhookServer,
)
from tests.support.stack import free_port
from tests.support.staff import MakeStaff
from tests.support.worker import Stack
from workers import context
from workers.celery_app import make_celery


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    service = SmtpService(Inbox(), free_port())
    service.start()
    try:
        yield service.server
    finally:
        service.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own on a free loopback port, without persistence, for the whole session."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"), free_port(), appendonly=False)
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    server = WebhookServer(free_port())
    try:
        yield server.receiver
    finally:
        server.close()


@pytest.fixture(params=["redis", "embedded"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url") + "/3"
        redis.Redis.from_url(url).flushdb()
        return url
    return f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"


@pytest.fixture
def stack(runtime: Runtime, smtp_server: SmtpServer, broker_url: str) -> Iterator[Stack]:
    """Start a worker thread on the broker, with mail going to the test's SMTP server."""
    started: list[object] = []

    def start(**changes: object) -> Celery:
        settings: Settings = runtime.settings.model_copy(
            update={
                "broker_url": broker_url,
                "smtp_host": smtp_server.host,
                "smtp_port": smtp_server.port,
                "smtp_security": "none",
                "task_retry_base_seconds": 0.2,
                "task_retry_cap_seconds": 0.5,
                **changes,
            }
        )
        app = make_celery(settings)
        import workers.tasks  # noqa: F401 - registers the shared tasks with the app

        app.finalize()
        context.use(context.context_for(runtime, settings), app)
        worker = start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20)
        worker.__enter__()
        started.append(worker)
        return app

    yield start
    for worker in reversed(started):
        worker.__exit__(None, None, None)  # type: ignore[attr-defined]
    context.use(None)


@pytest.fixture
def members(make_staff: MakeStaff) -> list[str]:
    return [
        make_staff(
            email=f"berater{i}@beratung.example", memberships=[("beratung-by", MembershipRole.counsellor)]
        ).email
        for i in range(2)
    ] + [make_staff(email="koordination@example.org", coordinator=True).email]
