"""Production defaults (issue 14, items 1 and 8): production runs behind a TLS proxy that it knows, the
image serves production mode, embedded mode never listens beyond loopback, and /healthz stays cheap."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app as cli
from service.config import (
    PROJECT_ROOT,
    SECRET_NAMES,
    ConfigurationError,
    Mode,
    Settings,
)
from service.config_checks import check_listen_address, check_production
from service.health import HealthProbe
from service.runtime import Runtime
from tests.support.notification import RedisProcess
from tests.support.stack import free_port


def _production(tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "mode": Mode.production,
        "data_dir": tmp_path,
        "database_url": "postgresql+psycopg://x@h/x",
        "broker_url": "redis://redis:6379/1",
        "public_url": "https://rueckhalt.example",
        "behind_tls": True,
        "trusted_proxies": "172.30.0.1",
        "imprint_url": "https://traeger.example/impressum",
        "privacy_url": "https://traeger.example/datenschutz",
        **{name: os.urandom(32).hex() for name in SECRET_NAMES},
    }
    values.update(changes)
    return Settings(**values)


def test_production_refuses_to_start_without_the_tls_proxy_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="RUECKHALT_BEHIND_TLS"):
        check_production(_production(tmp_path, behind_tls=False))


def test_production_behind_tls_refuses_to_start_without_a_trusted_proxy(tmp_path: Path) -> None:
    """Without the proxy's address every client would be the proxy: one bucket for all."""
    with pytest.raises(ConfigurationError, match="RUECKHALT_TRUSTED_PROXIES"):
        check_production(_production(tmp_path, trusted_proxies=""))
    check_production(_production(tmp_path, trusted_proxies="10.0.0.0/8, 2001:db8::/48"))


@pytest.mark.parametrize("name", ["imprint_url", "privacy_url"])
def test_production_refuses_to_start_without_an_imprint_and_a_privacy_notice(
    name: str, tmp_path: Path
) -> None:
    """Every page links both (§ 5 DDG, Art. 13 GDPR); the demo's placeholders never stand in for them."""
    with pytest.raises(ConfigurationError, match=f"RUECKHALT_{name.upper()}"):
        check_production(_production(tmp_path, **{name: None}))
    with pytest.raises(ConfigurationError, match=f"RUECKHALT_{name.upper()}"):
        check_production(_production(tmp_path, **{name: "http://traeger.example/seite"}))
    with pytest.raises(ValueError, match="web address"):
        _production(tmp_path, **{name: "javascript:alert(1)"})


def test_a_trusted_proxy_that_is_no_address_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR range"):
        Settings(trusted_proxies="proxy.example")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.org"])
def test_embedded_mode_listens_on_loopback_only(host: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        check_listen_address(Settings(data_dir=tmp_path), host)
    check_listen_address(_production(tmp_path), host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_embedded_mode_on_loopback_is_fine(host: str, tmp_path: Path) -> None:
    check_listen_address(Settings(data_dir=tmp_path), host)


def test_serve_on_all_interfaces_in_embedded_mode_exits_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.config import get_settings

    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("RUECKHALT_MODE", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "loopback" in result.output


def test_the_image_serves_production_mode_by_default() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    env = dict(
        re.findall(r"(RUECKHALT_[A-Z_]+)=(\S+)", " ".join(re.findall(r"^ENV (.*)$", dockerfile, re.M)))
    )
    assert env.get("RUECKHALT_MODE") == "production"
    assert env.get("RUECKHALT_BEHIND_TLS") == "true"


def test_healthz_under_a_flood_uses_one_broker_connection_and_one_round_at_a_time(
    runtime: Runtime, tmp_path: Path
) -> None:
    """Given a Redis broker, when 300 requests for /healthz arrive at once, the process opens one broker
    connection for all of them (not one each) and runs far fewer rounds of checks than requests."""
    broker = RedisProcess(tmp_path, free_port(), appendonly=False)
    broker.start()
    try:
        settings = runtime.settings.model_copy(update={"broker_url": broker.url})
        app = create_app(runtime=dataclasses.replace(runtime, settings=settings))
        probe: HealthProbe = app.state.health
        admin = redis.Redis.from_url(broker.url)
        before = int(admin.info("stats")["total_connections_received"])

        async def flood() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                return await asyncio.gather(*(client.get("/healthz") for _ in range(300)))

        responses = asyncio.run(flood())
        opened = int(admin.info("stats")["total_connections_received"]) - before - 1  # less our own
        assert all(response.json()["broker"]["ok"] for response in responses)
        assert opened <= 1, f"{opened} broker connections for one process"
        assert probe.rounds < 60, f"{probe.rounds} rounds of checks for 300 requests"

        # The kept connection is checked each round: a broker that went away is noticed, and once it is
        # back a new connection replaces the dead one.
        broker.stop()
        down = asyncio.run(_one(app))
        assert down["broker"]["ok"] is False
        broker.start()
        assert asyncio.run(_one(app))["broker"]["ok"] is True
        app.state.health.close()
    finally:
        broker.stop()


async def _one(app: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        body: dict[str, Any] = (await c.get("/healthz")).json()
        return body
