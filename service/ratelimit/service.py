"""Fixed-window rate limits shared by every process (Redis, or the database when there is no Redis).

Clients are identified by an HMAC of their address under a key that rotates daily, so neither the
database nor Redis ever holds an address, and yesterday's counters cannot be linked to today's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from service.crypto import keyed_hash
from service.ratelimit.models import RateLimitCounter


class Counter(Protocol):
    def hit(self, key: str, window_seconds: int) -> int: ...


@dataclass(frozen=True)
class Limit:
    scope: str
    max_hits: int
    window_seconds: int


class SqlCounter:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def hit(self, key: str, window_seconds: int) -> int:
        window = int(time.time()) // window_seconds * window_seconds
        with self._factory() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = (
                insert(RateLimitCounter)
                .values(key=key, window_start=window, count=1)
                .on_conflict_do_update(
                    index_elements=["key", "window_start"], set_={"count": RateLimitCounter.count + 1}
                )
                .returning(RateLimitCounter.count)
            )
            count = int(session.execute(stmt).scalar_one())
            if count == 1:
                # A new window began for this key: old windows are of no use any more.
                session.execute(
                    delete(RateLimitCounter).where(RateLimitCounter.window_start < window - window_seconds)
                )
            session.commit()
            return count


class RedisCounter:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def hit(self, key: str, window_seconds: int) -> int:
        window = int(time.time()) // window_seconds
        name = f"rl:{key}:{window}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, window_seconds * 2)
        count, _ = pipe.execute()
        return int(count)


class RateLimiter:
    def __init__(self, counter: Counter, secret: bytes) -> None:
        self._counter = counter
        self._secret = secret

    def _client_key(self, scope: str, client: str) -> str:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        day_key = keyed_hash(self._secret, "ratelimit-day", day.encode())
        return keyed_hash(day_key, f"ratelimit:{scope}", client.encode()).hex()

    def allow(self, limit: Limit, client: str) -> bool:
        """Count one hit for this client; False once the client is over the limit in this window."""
        return (
            self._counter.hit(self._client_key(limit.scope, client), limit.window_seconds) <= limit.max_hits
        )
