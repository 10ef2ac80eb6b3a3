"""Fixed-window rate limits shared by every process (Redis, or the database when there is no Redis).

Clients are identified by an HMAC of their address under a key that rotates daily, so neither the
database nor Redis ever holds an address, and yesterday's counters cannot be linked to today's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio.to_thread
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from service.crypto import keyed_hash
from service.observability import metrics
from service.ratelimit.models import RateLimitCounter

log = logging.getLogger("rueckhalt.ratelimit")


class Counter(Protocol):
    def hit(self, key: str, window_seconds: int, amount: int = 1) -> int: ...


class CounterUnavailable(Exception):
    """The counter's store cannot be reached now (Redis stopped, restarting, not answering)."""


@dataclass(frozen=True)
class Limit:
    scope: str
    max_hits: int
    window_seconds: int
    # Keyed by the client's address (not by an account or a device): watched for one dominant client.
    per_client: bool = True


class SqlCounter:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def hit(self, key: str, window_seconds: int, amount: int = 1) -> int:
        window = int(time.time()) // window_seconds * window_seconds
        with self._factory() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = (
                insert(RateLimitCounter)
                .values(key=key, window_start=window, count=amount)
                .on_conflict_do_update(
                    index_elements=["key", "window_start"], set_={"count": RateLimitCounter.count + amount}
                )
                .returning(RateLimitCounter.count)
            )
            count = int(session.execute(stmt).scalar_one())
            if count == amount:
                # A new window began for this key: old windows are of no use any more.
                session.execute(
                    delete(RateLimitCounter).where(RateLimitCounter.window_start < window - window_seconds)
                )
            # Its own transaction, never the request's (the counter stands in for Redis): a hit counts also
            # when the request is then refused or fails, and the row's lock is not held while it works.
            session.commit()
            return count


# Count and, for a new window, set its expiry: one command, atomic (a process that dies between an INCR and
# its EXPIRE would leave a key behind for good), and half the client's work of a two-command pipeline.
_HIT_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


def _window_key(key: str, window_seconds: int) -> str:
    return f"rl:{key}:{int(time.time()) // window_seconds}"


class RedisCounter:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_HIT_SCRIPT)
        self._errors = redis.RedisError

    def hit(self, key: str, window_seconds: int, amount: int = 1) -> int:
        try:
            count = self._script(keys=[_window_key(key, window_seconds)], args=[window_seconds * 2, amount])
        except self._errors as exc:
            raise CounterUnavailable(type(exc).__name__) from exc
        return int(count)


class AsyncRedisCounter:
    """The Redis counter on the event loop that serves (``redis.asyncio``): the intake's check then takes no
    thread hop and no thread's turn at the GIL. Made in the serving loop (the lifespan), closed there."""

    def __init__(self, url: str) -> None:
        import redis
        import redis.asyncio

        self._redis: Any = redis.asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_HIT_SCRIPT)
        self._errors = redis.RedisError

    async def hit(self, key: str, window_seconds: int, amount: int = 1) -> int:
        try:
            count = await self._script(
                keys=[_window_key(key, window_seconds)], args=[window_seconds * 2, amount]
            )
        except (self._errors, OSError) as exc:
            raise CounterUnavailable(type(exc).__name__) from exc
        return int(count)

    async def close(self) -> None:
        await self._redis.aclose()


class FailoverCounter:
    """Redis while it answers, the database while it does not: both are shared by every process.

    Intake must not depend on Redis. A report goes to the database with its notifications in the outbox,
    and a broker that is down only delays the mails; a rate-limit counter is no reason to refuse a report
    the database can take (it would be a 500 in front of a threatened reporter). The database counts from
    zero during the outage, so a client may get up to one limit more in the window the outage falls in;
    the limit still holds across processes.

    After a failure Redis is left alone for ``retry_after_seconds``: a Redis that hangs rather than refuses
    would otherwise cost every request its socket timeout.
    """

    def __init__(
        self,
        primary: Counter,
        fallback: Counter,
        *,
        retry_after_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._retry_after = retry_after_seconds
        self._clock = clock
        self._primary_down_until: float | None = None

    def hit(self, key: str, window_seconds: int, amount: int = 1) -> int:
        if self._primary_due():
            try:
                count = self._primary.hit(key, window_seconds, amount)
            except CounterUnavailable as exc:
                self._primary_failed(exc)
            else:
                self._primary_answered()
                return count
        return self._fallback.hit(key, window_seconds, amount)

    async def hit_async(self, key: str, window_seconds: int, primary: AsyncRedisCounter) -> int:
        """The same on the event loop, ``primary`` standing for Redis; the database's count in a thread."""
        if self._primary_due():
            try:
                count = await primary.hit(key, window_seconds)
            except CounterUnavailable as exc:
                self._primary_failed(exc)
            else:
                self._primary_answered()
                return count
        return await anyio.to_thread.run_sync(self._fallback.hit, key, window_seconds)

    def _primary_due(self) -> bool:
        down_until = self._primary_down_until
        return down_until is None or self._clock() >= down_until

    def _primary_failed(self, exc: CounterUnavailable) -> None:
        if self._primary_down_until is None:
            log.warning("rate limits: Redis unavailable (%s), counting in the database", exc)
        self._primary_down_until = self._clock() + self._retry_after

    def _primary_answered(self) -> None:
        if self._primary_down_until is not None:
            log.info("rate limits: Redis is back")
            self._primary_down_until = None


class TrafficWatch:
    """Warns when one client key carries most of a scope's requests: behind a proxy that the service does
    not know as trusted, every client looks like the proxy and shares one bucket (one flooder then silences
    everyone). The warning names the scope and the share, never an address or a key.

    In-process and bounded: per scope a Misra-Gries summary of ``slots`` counters (any key with more than
    1/(slots+1) of the hits is among them; its count is never overestimated), reset every window, and at
    most one warning per scope and window.
    """

    def __init__(
        self,
        *,
        window_seconds: float = 300.0,
        min_hits: int = 50,
        share: float = 0.5,
        slots: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window_seconds
        self._min_hits = min_hits
        self._share = share
        self._slots = slots
        self._clock = clock
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._totals: dict[str, int] = {}
        self._counts: dict[str, dict[str, int]] = {}
        self._warned: set[str] = set()

    def observe(self, scope: str, key: str) -> None:
        with self._lock:
            now = self._clock()
            if now - self._started.get(scope, float("-inf")) >= self._window:
                self._started[scope] = now
                self._totals[scope] = 0
                self._counts[scope] = {}
                self._warned.discard(scope)
            total = self._totals[scope] = self._totals[scope] + 1
            counts = self._counts[scope]
            if key in counts:
                counts[key] += 1
            elif len(counts) < self._slots:
                counts[key] = 1
            else:
                for other in list(counts):
                    counts[other] -= 1
                    if counts[other] == 0:
                        del counts[other]
            top = counts.get(key, 0)
            if scope in self._warned or total < self._min_hits or top <= self._share * total:
                return
            self._warned.add(scope)
        log.warning(
            "rate limits: one client carries %d%% of the last %d '%s' requests; if the service is behind a "
            "proxy, set RUECKHALT_TRUSTED_PROXIES to its address, or every client shares one limit",
            round(100 * top / total),
            total,
            scope,
        )


class RateLimiter:
    def __init__(self, counter: Counter, secret: bytes, watch: TrafficWatch | None = None) -> None:
        self._counter = counter
        self._secret = secret
        self._watch = watch or TrafficWatch()

    def _client_key(self, scope: str, client: str) -> str:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        day_key = keyed_hash(self._secret, "ratelimit-day", day.encode())
        return keyed_hash(day_key, f"ratelimit:{scope}", client.encode()).hex()

    def count(self, limit: Limit, client: str, amount: int = 1) -> int:
        """Count ``amount`` hits for this client and return the hits of this window so far (these
        included): one round trip for any amount."""
        key = self._client_key(limit.scope, client)
        if limit.per_client:
            self._watch.observe(limit.scope, key)
        return self._counter.hit(key, limit.window_seconds, amount)

    def allow(self, limit: Limit, client: str, amount: int = 1) -> bool:
        """Count ``amount`` hits for this client; False once the client is over the limit in this window
        (all or nothing: a refused amount is still counted, as a refused single hit is)."""
        return _refused_unless(self.count(limit, client, amount) <= limit.max_hits, limit)

    async def allow_async(self, limit: Limit, client: str, redis: AsyncRedisCounter | None) -> bool:
        """``allow`` for a coroutine: Redis on the event loop if there is one, else the count in a thread."""
        counter = self._counter
        if redis is None or not isinstance(counter, FailoverCounter):
            return await anyio.to_thread.run_sync(self.allow, limit, client)
        key = self._client_key(limit.scope, client)
        if limit.per_client:
            self._watch.observe(limit.scope, key)
        return _refused_unless(
            await counter.hit_async(key, limit.window_seconds, redis) <= limit.max_hits, limit
        )


def _refused_unless(allowed: bool, limit: Limit) -> bool:
    if not allowed:
        metrics.rate_limit_refusals.labels(metrics.one_of(limit.scope, metrics.RATE_LIMIT_SCOPES)).inc()
    return allowed
