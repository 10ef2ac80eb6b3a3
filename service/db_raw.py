"""Statements sent to psycopg past SQLAlchemy's execution machinery, for the paths that run on every report.

SQLAlchemy stays in charge of the connections (its pools and their pings; a connection found lost here is
dropped, and the others are pinged before their next use: ``service.db.note_disconnect``) and of the errors (a
psycopg error comes out as the ``DBAPIError`` a plain execute raises, so that ``database_unavailable`` and the
503 see it the same way); only the statement goes straight to the driver.
PostgreSQL only; with SQLite there are no round trips or driver costs to save.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import AdaptedConnection, Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from sqlalchemy.util import greenlet_spawn

from service.db import note_disconnect

log = logging.getLogger(__name__)


@contextlib.contextmanager
def pipelined(session: Session) -> Iterator[None]:
    """Send the inserts of this block without waiting for each answer (PostgreSQL's pipeline mode).

    The intake inserts into six tables per report: one round trip each, and each one a wake-up of the
    serving thread or loop. In pipeline mode psycopg queues the statements and waits once, at the end of
    the block; the error of any of them is raised there, as the SQLAlchemy error a plain execute raises
    (a lost connection is invalidated and becomes the 503, anything else stays a 500).

    Writes only: SQLAlchemy decides whether a statement returns rows before its answer has come, so a
    query in the block would look empty. Nor may the block commit or roll back: commit after it. With
    SQLite, which has no round trips, this does nothing.
    """
    connection = session.connection()
    proxied = connection.connection
    driver = proxied.driver_connection
    enter: Callable[[], object]
    leave: Callable[[BaseException | None], object]
    if isinstance(driver, psycopg.Connection):
        block = driver.pipeline()
        enter = block.__enter__

        def leave(exc: BaseException | None) -> object:
            return block.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    elif isinstance(driver, psycopg.AsyncConnection):
        # Inside ``AsyncSession.run_sync``: SQLAlchemy's documented bridge to the asyncio driver.
        adapted = cast(AdaptedConnection, proxied.dbapi_connection)
        async_block = driver.pipeline()

        def enter() -> object:
            return adapted.run_async(lambda _: async_block.__aenter__())

        def leave(exc: BaseException | None) -> object:
            return adapted.run_async(
                lambda _: async_block.__aexit__(
                    type(exc) if exc else None, exc, exc.__traceback__ if exc else None
                )
            )

    else:
        yield
        return
    try:
        with _as_sqlalchemy_errors(connection, driver):
            enter()
            try:
                yield
            except BaseException as exc:
                leave(exc)
                raise
            leave(None)
    finally:
        # Leaving pipeline mode did not finish (a cancelled request, a failure while leaving): such a
        # connection never goes back to the pool.
        if not driver.closed and driver.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF:
            connection.invalidate()


@contextlib.contextmanager
def _as_sqlalchemy_errors(
    connection: Connection, driver: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]
) -> Iterator[None]:
    """A psycopg error of a statement sent past SQLAlchemy, raised as the error a plain execute raises."""
    try:
        yield
    except psycopg.Error as error:
        translated = _as_sqlalchemy_error(error, driver, connection.dialect)
        if translated.connection_invalidated:
            connection.invalidate(error)
        raise translated from error


def _as_sqlalchemy_error(
    error: psycopg.Error, driver: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], dialect: Dialect
) -> sa_exc.DBAPIError:
    """What SQLAlchemy would raise for ``error``; the caller drops the connection if it says it was lost."""
    # SQLAlchemy's own test for psycopg: the connection is closed or broken.
    gone = driver.closed or driver.broken
    if gone:
        # What SQLAlchemy's own handling of a lost connection does: every connection of either pool last
        # used before now is pinged before its next use.
        note_disconnect()
    # The statement is not named: its parameters are a report's ciphertext and identifiers.
    translated = sa_exc.DBAPIError.instance(
        None, None, error, psycopg.Error, connection_invalidated=gone, dialect=dialect
    )
    return cast(sa_exc.DBAPIError, translated)  # a psycopg.Error always becomes a DBAPIError


# The isolation level of a unit of work that is one statement (``IntakeService.file_report``).
AUTOCOMMIT = "AUTOCOMMIT"


def in_autocommit(session: Session) -> bool:
    """True if the session's PostgreSQL connection runs each statement as its own transaction."""
    driver = session.connection().connection.driver_connection
    return isinstance(driver, psycopg.Connection | psycopg.AsyncConnection) and driver.autocommit


def execute_raw(session: Session, query: str, params: Sequence[object]) -> None:
    """One write statement with PostgreSQL's own ``$1, $2, ...`` placeholders, on psycopg's raw cursor.

    For a statement too long for psycopg's query cache (over 4,096 characters or 50 parameters): psycopg
    would otherwise parse its placeholders on every execution, which cost the intake's one insert a tenth
    of a millisecond per report. Errors are SQLAlchemy's, as in ``pipelined``. PostgreSQL only.
    """
    _raw(session, query, params, fetch=False)


def fetch_raw(session: Session, query: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
    """The rows of one query, as psycopg's plain tuples, on its raw cursor (as ``execute_raw``).

    For a query run on every report whose rows need none of SQLAlchemy's result machinery: building a
    ``Row`` for each of them and reading its columns by name cost more than the query. PostgreSQL only."""
    return _raw(session, query, params, fetch=True)


_Rows = list[tuple[object, ...]]


def _raw(session: Session, query: str, params: Sequence[object], *, fetch: bool) -> _Rows:
    connection = session.connection()
    proxied = connection.connection
    driver = proxied.driver_connection
    if isinstance(driver, psycopg.AsyncConnection):
        adapted = cast(AdaptedConnection, proxied.dbapi_connection)
        loop_driver = driver

        async def run(_: object) -> _Rows:
            async with psycopg.AsyncRawCursor(loop_driver) as cursor:
                await cursor.execute(query, params)
                return await cursor.fetchall() if fetch else []

        with _as_sqlalchemy_errors(connection, driver):
            return adapted.run_async(run)
    if isinstance(driver, psycopg.Connection):
        with _as_sqlalchemy_errors(connection, driver), psycopg.RawCursor(driver) as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if fetch else []
    raise TypeError("execute_raw and fetch_raw are for PostgreSQL (psycopg) connections")


async def execute_on_loop(engine: AsyncEngine, query: str, params: Sequence[object]) -> None:
    """One write statement in autocommit on a connection of the event loop's pool, with no session around
    it (``service.reports.on_loop``): atomic and durable on its own, committed when PostgreSQL answers.

    A session, its transaction and SQLAlchemy's asyncio bridge around a single statement cost the api
    process more CPU than the statement (about 0.35 ms against 0.1 ms; docs/intake-cost.md, session 16).
    The connection comes from the same pool as the sessions' (its checkout pings one that has been idle)
    and goes back in the state it came in: autocommit off. One that was lost, or left in an unknown state
    by a cancelled request, is dropped from the pool instead."""
    try:
        pooled = await engine.raw_connection()
    except psycopg.Error as error:
        # Connecting anew failed (the pool's own errors are SQLAlchemy's already): the 503 of a session.
        raise sa_exc.DBAPIError.instance(
            None, None, error, psycopg.Error, connection_invalidated=False, dialect=engine.dialect
        ) from error
    driver = cast(psycopg.AsyncConnection[Any], pooled.driver_connection)
    sound = False  # idle, out of autocommit: fit to go back to the pool
    stored = False
    try:
        await driver.set_autocommit(True)
        try:
            async with psycopg.AsyncRawCursor(driver) as cursor:
                await cursor.execute(query, params)
        except psycopg.Error:
            # The statement's own error (a refused grant) leaves the connection idle and sound.
            if not (driver.closed or driver.broken):
                await driver.set_autocommit(False)
                sound = True
            raise
        stored = True
        await driver.set_autocommit(False)
        sound = True
    except psycopg.Error as error:
        if not stored:
            raise _as_sqlalchemy_error(error, driver, engine.dialect) from error
        # Committed already: the caller's rows are stored, only this connection is unfit (dropped below).
        log.warning("a connection failed after its statement was stored (%s)", type(error).__name__)
    finally:
        # Closing a connection (dropped or handed back) goes through SQLAlchemy's asyncio bridge.
        if not sound:
            await greenlet_spawn(pooled.invalidate)
        await greenlet_spawn(pooled.close)
