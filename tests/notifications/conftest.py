"""Real services for the notification tests: an SMTP server (aiosmtpd), Redis, a webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import free_port
from notification_helpers import Inbox, RedisProcess, SmtpServer, SmtpService, WebhookReceiver, WebhookServer


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
