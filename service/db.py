"""Engine, sessions and the declarative base shared by every feature's models."""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime, Engine, MetaData, String, Table, TypeDecorator, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
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


@dataclass(frozen=True)
class NewRow:
    """A complete row for a Core insert: every column of its table given, no ORM object behind it.

    The intake writes about ten rows per report. Built as ORM objects, they cost more (every attribute set
    is instrumented, then read back for the insert) than the database spends storing them.
    """

    table: Table
    values: dict[str, Any]


@functools.cache
def _column_names(table: Table) -> frozenset[str]:
    return frozenset(column.key for column in table.columns)


def new_row(model: type[Base], **values: Any) -> NewRow:
    """A row of ``model``'s table. Every column must be named (the models' defaults are not applied on this
    path), and only columns: a missing or misspelt one is a TypeError here, not a NULL in the database."""
    table = cast(Table, model.__table__)
    columns = _column_names(table)
    if values.keys() != columns:
        missing = sorted(columns - values.keys())
        unknown = sorted(values.keys() - columns)
        raise TypeError(f"{table.name}: missing columns {missing}, unknown {unknown}")
    return NewRow(table, values)


def row_of(obj: Base) -> NewRow:
    """The row of an ORM object that has every column set (attribute names equal column names here)."""
    table = cast(Table, type(obj).__table__)
    return NewRow(table, {name: getattr(obj, name) for name in _column_names(table)})


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


def _server_pool_options() -> dict[str, Any]:
    return {
        "pool_size": 10,
        "max_overflow": 10,
        # The most recently used connection first: under load a few stay busy and need no ping (below).
        "pool_use_lifo": True,
        # Without these a server that does not answer (a stop in progress, a network that drops packets)
        # holds a request for as long as the kernel keeps trying: the reporter should hear "try again"
        # (503) within seconds instead.
        "pool_timeout": POOL_TIMEOUT_SECONDS,
        "connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    }


def _ping_idle_connections(engine: Engine) -> None:
    event.listen(engine, "handle_error", _note_disconnect)
    event.listen(engine, "checkin", _note_idle)
    event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, **_server_pool_options())
    _ping_idle_connections(engine)
    return engine


def make_async_engine(url: str) -> AsyncEngine | None:
    """The same PostgreSQL with asyncio connections, for the intake's JSON endpoint; None for SQLite.

    A report served from the thread pool competes for the GIL with the other reports in flight, and every
    database round trip is a chance to lose it: at eight reports in flight that cost half again the CPU
    of one report alone. On the event loop nothing competes, and the intake's code stays the same
    (``AsyncSession.run_sync``). The connections belong to the event loop that opened them, so the engine is
    made and disposed by the served application's lifespan (``service.app``), never shared between loops.
    SQLite keeps the thread pool: one writer at a time, and the embedded default serves one office.
    """
    if url.startswith("sqlite"):
        return None
    engine = create_async_engine(url, **_server_pool_options())
    _ping_idle_connections(engine.sync_engine)
    return engine


# A pooled connection unused for this long is pinged before use, so one that died with a server restart is
# replaced and the first request after PostgreSQL is back succeeds. SQLAlchemy's pool_pre_ping would ping
# on every checkout: a round trip per request, a twentieth of an intake. A connection that fails in use
# instead invalidates the whole pool (SQLAlchemy does that on a disconnect) and its request gets the 503.
IDLE_PING_SECONDS = 1.0


class _Disconnects:
    """When the server was last found gone by any engine of this process.

    An api process has two pools on the same server (the thread pool's and the event loop's), and
    SQLAlchemy invalidates only the pool that met the error. A connection of either pool that was last used
    before that moment is as dead as the one that failed, however briefly it has been idle: it is pinged.
    """

    last = 0.0


def _note_disconnect(context: ExceptionContext) -> None:
    if context.is_disconnect:
        _Disconnects.last = time.monotonic()


def _note_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect: Dialect, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None:
        return
    if time.monotonic() - idle_since < IDLE_PING_SECONDS and idle_since > _Disconnects.last:
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


def make_async_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
