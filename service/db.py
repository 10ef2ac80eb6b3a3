"""Engine, sessions and the declarative base shared by every feature's models."""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import (
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker

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


class CoarseUTCDateTime(UTCDateTime):
    """A UTC timestamp stored truncated to whole ``step_seconds`` (a minute, a second).

    A time to the microsecond is a fingerprint: it joins a row to any outside record of the same moment (an
    access log, a mail server, a capture). Columns that no query needs finer keep only the precision their
    queries need (docs/clear-columns.md). Truncating, never rounding up: a stored time is never later than
    the event, so a timer that counts from it fires at most one step early, never late."""

    cache_ok = True

    def __init__(self, step_seconds: int) -> None:
        super().__init__()
        if not 1 <= step_seconds <= 86_400 or 86_400 % step_seconds:
            raise ValueError("a step must divide a day")
        self.step_seconds = step_seconds

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        utc = super().process_bind_param(value, dialect)
        return None if utc is None else truncate_time(utc, self.step_seconds)


def truncate_time(value: datetime, step_seconds: int) -> datetime:
    """``value`` truncated to a whole step counted from midnight of its own day (UTC for UTC values)."""
    # The steps in use need no arithmetic: a whole second, minute or hour from midnight is one on the clock.
    # (Every report binds about a dozen such times; the arithmetic was half of their cost.)
    if step_seconds == 1:
        return value.replace(microsecond=0)
    if step_seconds == 60:
        return value.replace(second=0, microsecond=0)
    if step_seconds == 3600:
        return value.replace(minute=0, second=0, microsecond=0)
    midnight = value.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = int((value - midnight).total_seconds())
    return midnight + timedelta(seconds=elapsed - elapsed % step_seconds)


def ceil_time(value: datetime, step_seconds: int) -> datetime:
    """``value`` rounded up to a whole step (itself when it is one): what ends at ``value`` ends by then."""
    down = truncate_time(value, step_seconds)
    return down if down == value else down + timedelta(seconds=step_seconds)


# The precisions in use (docs/clear-columns.md says which column has which, and why).
MINUTE = CoarseUTCDateTime(60)
SECOND = CoarseUTCDateTime(1)
HOUR = CoarseUTCDateTime(3600)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewRow:
    """A complete row for a Core insert: every column of its table given, no ORM object behind it.

    The intake writes about ten rows per report. Built as ORM objects, they cost more (every attribute set
    is instrumented, then read back for the insert) than the database spends storing them.
    """

    table: Table
    # Column values of any type, bound to the statement as they are: the table, not this type, says what
    # each one is (``new_row`` checks that every column is given).
    values: dict[str, object]
    # Values the insert checks the row against but does not store (a grant's key digest:
    # ``reports.repository``), by name.
    guard: dict[str, object] = field(default_factory=dict)


@functools.cache
def _column_names(table: Table) -> frozenset[str]:
    return frozenset(column.key for column in table.columns)


def new_row(model: type[Base], **values: object) -> NewRow:
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


# A connection whose peer is gone (a host that died, a link that drops packets) is noticed within about half
# a minute, not after the kernel's two hours of keepalive or fifteen minutes of retransmits: a statement
# sent on it fails as a lost connection (the report looks for itself, or the 503), and frees its place,
# rather than hanging with the reports that wait behind it (``service.group_commit``). A peer that answers
# (a slow query, a lock wait) is never cut off: keepalives are answered by its kernel. libpq's parameters;
# ignored on a Unix socket.
TCP_LIVENESS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ms that sent data may stay unacknowledged
}


def _server_pool_options(size: int, overflow: int) -> dict[str, Any]:
    return {
        # An error's message would list the statement's values (ciphertext, identifiers, a lookup hash)
        # wherever it is logged or retried: Celery's retry log line, a driver's warning.
        "hide_parameters": True,
        "pool_size": size,
        "max_overflow": overflow,
        # The most recently used connection first: under load a few stay busy and need no ping (below).
        "pool_use_lifo": True,
        # Without these a server that does not answer (a stop in progress, a network that drops packets)
        # holds a request for as long as the kernel keeps trying: the reporter should hear "try again"
        # (503) within seconds instead.
        "pool_timeout": POOL_TIMEOUT_SECONDS,
        "connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **TCP_LIVENESS},
    }


# (pool size, overflow) per api process: up to 20 connections for the thread pool (its 40 threads share
# them) and up to 15 for the event loop. The pool size is what stays open: a busy process keeps as many
# transactions in flight as it has clients, and an overflow connection is closed when it comes back, so a
# pool smaller than that would connect and disconnect on every request. docker-compose.yml sizes
# PostgreSQL's max_connections for this.
THREAD_POOL_CONNECTIONS = (10, 10)
EVENT_LOOP_CONNECTIONS = (16, 4)


def _ping_idle_connections(engine: Engine) -> None:
    event.listen(engine, "handle_error", _note_disconnect)
    event.listen(engine, "checkin", _note_idle)
    event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10}, hide_parameters=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, **_server_pool_options(*THREAD_POOL_CONNECTIONS))
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
    engine = create_async_engine(url, **_server_pool_options(*EVENT_LOOP_CONNECTIONS))
    _ping_idle_connections(engine.sync_engine)
    return engine


# A pooled connection unused for this long is pinged before use, so one that died with a server restart is
# replaced and the first request after PostgreSQL is back succeeds. SQLAlchemy's pool_pre_ping would ping
# on every checkout: a round trip per request, a twentieth of an intake. A connection that fails in use
# instead is dropped and its request gets the 503; every connection of either pool last used before that
# moment is pinged before its next use (``_Disconnects``; SQLAlchemy also invalidates the whole pool when a
# statement it sent met the disconnect, the statements of ``service.db_raw`` drop their own connection).
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
        note_disconnect()


def note_disconnect() -> None:
    """The server was found gone just now (``service.db_raw`` finds it past SQLAlchemy's own handling):
    every connection of either pool last used before now is pinged before its next use."""
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


# -- after the commit ----------------------------------------------------------------------------------------
# A service that must act once its rows are stored (hand a notification to the broker) says so with
# ``after_commit`` instead of committing itself: whoever owns the transaction (unit of work, command, task,
# test) commits, and the callbacks run then; a rollback drops them. The listeners sit on the Session class.
_AFTER_COMMIT = "rueckhalt.after_commit"
_AFTER_ROLLBACK = "rueckhalt.after_rollback"
log = logging.getLogger(__name__)
T = TypeVar("T")


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's current transaction has committed; never if it rolls back.

    Callbacks must not use the session (it is between transactions) and must not block: they hand work to
    a thread or a queue. One that raises is logged and does not undo the commit or stop the others."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def of_this_transaction(session: Session, key: str, make: Callable[[], T]) -> T:
    """State in ``session.info[key]`` for the current transaction only: a new one starts with ``make()``."""
    transaction, state = session.info.get(key, (None, None))
    if state is None or transaction is not session.get_transaction():
        transaction, state = session.info[key] = (session.get_transaction(), make())
    return cast(T, state)


def holds_work(session: Session) -> bool:
    """True if ``session`` carries anything of its caller's that a rollback would drop: a transaction
    begun, objects added or changed and not yet flushed, callbacks waiting for the commit or a rollback."""
    return bool(
        session.in_transaction()
        or session.new
        or session.dirty
        or session.deleted
        or session.info.get(_AFTER_COMMIT)
        or session.info.get(_AFTER_ROLLBACK)
    )


def after_rollback(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's current transaction has ended without a commit (rolled back, or
    the session closed): undo what was done outside the database for it (a blob written for rows that are
    now not stored). Never after a commit. Same rules as ``after_commit``."""
    session.info.setdefault(_AFTER_ROLLBACK, []).append(callback)


def after_stored(callback: Callable[[], None]) -> None:
    """Run ``callback`` now, as ``after_commit`` would run it, for rows stored without a session (one
    statement in autocommit, ``service.db_raw.execute_on_loop``): one that raises is logged and does not
    turn what was stored into a failed request."""
    _run([callback], "after-commit")


def _run(callbacks: list[Callable[[], None]], what: str) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the transaction's outcome stands; what a callback left undone is logged
            log.exception("an %s callback failed", what)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the rows are not stored until the outer transaction commits
    session.info.pop(_AFTER_ROLLBACK, None)
    _run(session.info.pop(_AFTER_COMMIT, []), "after-commit")


@event.listens_for(Session, "after_transaction_end")
def _end_of_transaction(session: Session, transaction: SessionTransaction) -> None:
    # After a commit both lists are gone; after a rollback or a close without commit the commit's are
    # dropped and the rollback's run. A savepoint that ends (``begin_nested``) keeps the outer transaction's.
    if transaction.parent is None:
        session.info.pop(_AFTER_COMMIT, None)
        _run(session.info.pop(_AFTER_ROLLBACK, []), "after-rollback")
