"""Engine, sessions and the declarative base shared by every feature's models."""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, String, TypeDecorator, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both databases (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """Random identifiers: sequential ids would tell an observer how many reports came in."""
    return str(uuid.uuid4())


ID_TYPE = String(36)


def _sha256(value: bytes | None) -> bytes | None:
    return None if value is None else hashlib.sha256(value).digest()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # PostgreSQL has sha256(bytea) built in; the organisation key digests of the intake use it on both.
    dbapi_connection.create_function("sha256", 1, _sha256, deterministic=True)
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted pages are overwritten so crypto-shredded rows do not linger in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


# How long a request waits for PostgreSQL to accept a connection, and for a free connection of the pool.
CONNECT_TIMEOUT_SECONDS = 5
POOL_TIMEOUT_SECONDS = 10


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        # The most recently used connection first: under load a few stay busy and need no ping (below).
        pool_use_lifo=True,
        # Without these a server that does not answer (a stop in progress, a network that drops packets)
        # holds a request, and the thread serving it, for as long as the kernel keeps trying: the reporter
        # should hear "try again" (503) within seconds instead.
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )
    event.listen(engine, "checkin", _note_idle)
    event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect))
    return engine


# A pooled connection unused for this long is pinged before use, so one that died with a server restart is
# replaced and the first request after PostgreSQL is back succeeds. SQLAlchemy's pool_pre_ping would ping
# on every checkout: a round trip per request, a twentieth of an intake. A connection that fails in use
# instead invalidates the whole pool (SQLAlchemy does that on a disconnect) and its request gets the 503.
IDLE_PING_SECONDS = 1.0


def _note_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect: Dialect, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except Exception as exc:
        # The pool drops this connection and checks out another (or connects anew).
        raise sa_exc.DisconnectionError("a pooled connection did not answer its ping") from exc


def database_unavailable(error: BaseException) -> bool:
    """True for errors that say the database cannot be reached now (stopped, restarting, connection lost,
    pool exhausted), as opposed to a mistake in a statement, which stays a 500 and gets fixed."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
