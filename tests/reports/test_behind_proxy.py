"""Rate limits behind a real proxy (issue 14.1): nginx in front, the service told which proxy to trust.

Every request reaches the service from nginx. Without knowing it as a proxy, the service would count every
client as one (30 reports an hour nationwide, and one flooder silences intake); with it, each client is the
right-most address of X-Forwarded-For that is not a trusted proxy, and what a client writes into that
header itself is never believed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.app import create_app
from service.config import Settings
from service.ratelimit.clients import ClientResolver
from service.runtime import Runtime, build_runtime
from tests.support.forms import report_body
from tests.support.proxy import Nginx, ThreadServer
from tests.support.staff import with_policy_organisations

REPORT = report_body()
LOOKUP = {"receipt": "ABCD-EFGH-JKMN-PQRS-TVWX"}

StartBehindNginx = Callable[[Runtime], Nginx]


def _runtime(settings: Settings, **changes: object) -> Runtime:
    return with_policy_organisations(build_runtime(settings.model_copy(update=changes)))


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[StartBehindNginx]:
    """Serve a runtime behind nginx; yields a function that starts both and returns the proxy."""
    started: list[tuple[ThreadServer, Nginx, Runtime]] = []

    def start(runtime: Runtime) -> Nginx:
        server = ThreadServer(create_app(runtime=runtime)).__enter__()
        proxy = Nginx(tmp_path / f"nginx-{len(started)}", server.port).__enter__()
        started.append((server, proxy, runtime))
        return proxy

    yield start
    for server, proxy, runtime in reversed(started):
        proxy.__exit__()
        server.__exit__()
        runtime.dispose()


def _reports(proxy: Nginx, source: str, count: int, forwarded: list[str] | None = None) -> list[int]:
    with proxy.client(source) as client:
        return [
            client.post(
                "/api/v1/reports",
                json=REPORT,
                headers={"X-Forwarded-For": forwarded[i]} if forwarded else {},
            ).status_code
            for i in range(count)
        ]


def test_behind_nginx_each_client_has_its_own_limit_and_cannot_forge_another(
    settings: Settings, behind_nginx: StartBehindNginx
) -> None:
    """Given nginx in front and the service trusting it (127.0.0.1 is where nginx connects from), when one
    client uses up its intake limit, another client can still report; and a client that writes addresses
    into X-Forwarded-For itself stays in its own bucket (nginx appends the real one, which is what counts)."""
    proxy = behind_nginx(_runtime(settings, intake_limit_per_hour=3, trusted_proxies="127.0.0.1"))

    assert _reports(proxy, "127.0.0.2", 4) == [201, 201, 201, 429]
    assert _reports(proxy, "127.0.0.3", 1) == [201], "another client is not silenced by the first"
    forged = ["127.0.0.9", "198.51.100.7", "127.0.0.3, 203.0.113.5", "2001:db8::1"]
    assert _reports(proxy, "127.0.0.4", 4, forged) == [201, 201, 201, 429], "forged hops are not believed"
    assert _reports(proxy, "127.0.0.3", 3) == [201, 201, 429], "nor charged to the client they name"


def test_an_ipv6_client_is_one_client_for_its_whole_64(
    settings: Settings, behind_nginx: StartBehindNginx
) -> None:
    """Given two trusted proxies in a row (a load balancer on 127.0.0.5 that sends the client's IPv6 address,
    then nginx), the client is keyed by its /64: a new address of the same /64 is the same client."""
    proxy = behind_nginx(_runtime(settings, intake_limit_per_hour=3, trusted_proxies="127.0.0.0/8"))

    same_64 = ["2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:2:abcd:1:2:3", "2001:db8:1:2::99"]
    assert _reports(proxy, "127.0.0.5", 4, same_64) == [201, 201, 201, 429]
    assert _reports(proxy, "127.0.0.5", 1, ["2001:db8:1:3::1"]) == [201], "the next /64 is someone else"


def test_one_key_carrying_the_traffic_is_warned_about_without_any_address(
    settings: Settings, behind_nginx: StartBehindNginx, caplog: pytest.LogCaptureFixture
) -> None:
    """Given nginx in front but no trusted proxy set (the misconfiguration), when six clients send receipt
    look-ups, every one of them is the proxy: the service logs a warning that one key carries the traffic,
    and no line of the service's logs holds an address."""
    proxy = behind_nginx(_runtime(settings, receipt_limit_per_hour=1000))
    for n in range(6):
        with proxy.client(f"127.0.0.{10 + n}") as client:
            for _ in range(10):
                assert client.post("/api/v1/reports/lookup", json=LOOKUP).status_code == 404
    warnings = [r for r in caplog.records if r.name == "rueckhalt.ratelimit" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, "once per window, not once per request"
    assert "RUECKHALT_TRUSTED_PROXIES" in warnings[0].getMessage()
    ours = [r for r in caplog.records if r.name.startswith(("rueckhalt", "uvicorn", "service"))]
    assert ours
    for record in ours:
        assert "127.0.0." not in record.getMessage()


def test_with_the_proxy_trusted_nobody_is_dominant_and_nothing_is_warned(
    settings: Settings, behind_nginx: StartBehindNginx, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = behind_nginx(_runtime(settings, receipt_limit_per_hour=1000, trusted_proxies="127.0.0.1"))
    for n in range(6):
        with proxy.client(f"127.0.0.{10 + n}") as client:
            for _ in range(10):
                assert client.post("/api/v1/reports/lookup", json=LOOKUP).status_code == 404
    assert not [r for r in caplog.records if r.name == "rueckhalt.ratelimit" and r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.7", ["203.0.113.1"], "198.51.100.7"),  # not from a proxy: the header is ignored
        ("10.0.0.2", ["203.0.113.1, 198.51.100.9"], "198.51.100.9"),  # right-most untrusted hop
        ("10.0.0.2", ["203.0.113.1", "198.51.100.9, 10.0.0.3"], "198.51.100.9"),  # two headers, two proxies
        ("10.0.0.2", ["[2001:db8:a:b::1]:443"], "2001:db8:a:b::/64"),
        ("10.0.0.2", ["::ffff:192.0.2.4"], "192.0.2.4"),
        ("10.0.0.2", ["192.0.2.4:5555"], "192.0.2.4"),
        ("10.0.0.2", ["10.0.0.3"], "10.0.0.3"),  # only proxies: the left-most
        ("10.0.0.2", [], "10.0.0.2"),
        ("2001:db8:ffff::5", [], "2001:db8:ffff::/64"),
        ("10.0.0.2", ["unknown"], "unknown"),
    ],
)
def test_client_resolution(peer: str, forwarded: list[str], expected: str) -> None:
    resolver = ClientResolver(Settings(trusted_proxies="10.0.0.0/24").trusted_networks)
    assert resolver.resolve(peer, forwarded) == expected
