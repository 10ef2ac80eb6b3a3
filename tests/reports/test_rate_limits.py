"""Intake and receipt look-ups are limited per client, keyed without ever storing the address."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.config import Settings
from service.ratelimit.models import RateLimitCounter
from service.ratelimit.service import Counter, CounterUnavailable, FailoverCounter, RedisCounter, SqlCounter
from service.runtime import Runtime, build_runtime
from tests.support.forms import report_body
from tests.support.notification import RedisProcess
from tests.support.stack import free_port
from tests.support.staff import with_policy_organisations

REPORT = report_body()


@pytest.fixture
def strict_runtime(settings: Settings) -> Iterator[Runtime]:
    limited = settings.model_copy(update={"intake_limit_per_hour": 3, "receipt_limit_per_hour": 2})
    runtime = build_runtime(limited)
    with_policy_organisations(runtime)
    yield runtime
    runtime.dispose()


def test_intake_is_limited_per_client(strict_runtime: Runtime) -> None:
    with TestClient(create_app(runtime=strict_runtime), base_url="http://127.0.0.1") as client:
        statuses = [client.post("/api/v1/reports", json=REPORT).status_code for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]


def test_receipt_lookups_are_limited_per_client(strict_runtime: Runtime) -> None:
    with TestClient(create_app(runtime=strict_runtime), base_url="http://127.0.0.1") as client:
        statuses = [
            client.post("/api/v1/reports/lookup", json={"receipt": "ABCD-EFGH-JKMN-PQRS-TVWX"}).status_code
            for _ in range(4)
        ]
    assert statuses == [404, 404, 429, 429]


def test_the_html_form_is_limited_too_and_says_so_in_german(strict_runtime: Runtime) -> None:
    with TestClient(create_app(runtime=strict_runtime), base_url="http://127.0.0.1") as client:
        for _ in range(3):
            client.post("/api/v1/reports", json=REPORT)
        response = client.post("/melden", data={"description": "x"})
    assert response.status_code == 429
    assert '<html lang="de"' in response.text


def test_counters_hold_no_client_address(strict_runtime: Runtime) -> None:
    with TestClient(create_app(runtime=strict_runtime), base_url="http://127.0.0.1") as client:
        client.post("/api/v1/reports", json=REPORT)
    with strict_runtime.sessions() as session:
        keys = list(session.scalars(select(RateLimitCounter.key)))
    assert keys
    for key in keys:
        assert "127.0.0.1" not in key
        assert "testclient" not in key
        assert len(key) == 64


class _Counts:
    """A counter that counts, or is down."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.down = False

    def hit(self, key: str, window_seconds: int, amount: int = 1) -> int:
        if self.down:
            raise CounterUnavailable("ConnectionError")
        self.hits[key] = self.hits.get(key, 0) + amount
        return self.hits[key]


def test_while_redis_is_down_the_database_counts_and_redis_is_asked_again_later() -> None:
    primary, fallback, now = _Counts(), _Counts(), [0.0]
    counter = FailoverCounter(primary, fallback, retry_after_seconds=5, clock=lambda: now[0])
    assert counter.hit("k", 3600) == 1
    primary.down = True
    assert [counter.hit("k", 3600) for _ in range(3)] == [1, 2, 3], "counted in the fallback"
    primary.down = False
    now[0] = 4.9
    assert counter.hit("k", 3600) == 4, "not asked again before the pause is over"
    now[0] = 5.0
    assert counter.hit("k", 3600) == 2, "back on the primary"


def test_an_amount_is_counted_in_one_call_in_redis_and_in_the_database(
    settings: Settings, tmp_path: Path
) -> None:
    """The matching budget counts the identifiers of a report with one call: the same totals as that many
    single hits, the window's expiry set by the first call in Redis, old windows cleaned in the database."""
    redis_server = RedisProcess(tmp_path, free_port(), appendonly=False)
    runtime = build_runtime(settings)
    try:
        redis_server.start()
        counters: list[Counter] = [RedisCounter(redis_server.url), SqlCounter(runtime.sessions)]
        for counter in counters:
            assert counter.hit("amounts", 3600, 3) == 3
            assert counter.hit("amounts", 3600) == 4
            assert counter.hit("amounts", 3600, 5) == 9
        ttl = redis.Redis.from_url(redis_server.url).ttl(f"rl:amounts:{int(time.time()) // 3600}")
        assert 3600 < int(ttl) <= 7200
        with runtime.sessions() as db:
            assert db.scalars(
                select(RateLimitCounter.count).where(RateLimitCounter.key == "amounts")
            ).all() == [9]
    finally:
        redis_server.stop()
        runtime.dispose()


def test_intake_goes_on_and_stays_limited_while_redis_is_down(settings: Settings, tmp_path: Path) -> None:
    """Given the production set-up (counters in Redis), when Redis stops, reports are still accepted (the
    database counts) and the limit still holds: intake never depends on Redis."""
    redis_server = RedisProcess(tmp_path, free_port(), appendonly=False)
    limited = settings.model_copy(update={"intake_limit_per_hour": 3, "redis_url": redis_server.url})
    runtime = with_policy_organisations(build_runtime(limited))
    try:
        redis_server.start()
        with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
            assert client.post("/api/v1/reports", json=REPORT).status_code == 201
            redis_server.stop()
            statuses = [client.post("/api/v1/reports", json=REPORT).status_code for _ in range(4)]
    finally:
        redis_server.stop()
        runtime.dispose()
    assert statuses == [201, 201, 201, 429], "the database's window starts at zero for the outage"


def test_the_intake_counts_in_redis_on_the_event_loop_with_the_other_calls(
    settings: Settings, tmp_path: Path
) -> None:
    """The JSON intake asks Redis from the event loop, the form from a thread: one counter in Redis for both,
    so the limit holds in total."""
    redis_server = RedisProcess(tmp_path, free_port(), appendonly=False)
    limited = settings.model_copy(update={"intake_limit_per_hour": 3, "redis_url": redis_server.url})
    runtime = with_policy_organisations(build_runtime(limited))
    try:
        redis_server.start()
        with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
            statuses = [client.post("/api/v1/reports", json=REPORT).status_code for _ in range(2)]
            form = client.post("/melden", data={"description": "x"})
            statuses.append(client.post("/api/v1/reports", json=REPORT).status_code)
        keys = redis.Redis.from_url(redis_server.url).keys("rl:*")
    finally:
        redis_server.stop()
        runtime.dispose()
    assert statuses == [201, 201, 429]
    assert form.status_code != 429, "the third hit, counted in the same window"
    assert len(keys) == 1, "one counter for the client, in Redis"
