"""``service.db_raw.execute_on_loop``: one statement in autocommit on a connection of the event loop's pool,
with no session. Stored when it returns; its errors are SQLAlchemy's; and the connection goes back to the
pool as it came (out of autocommit), or is dropped when it was lost or left mid-statement."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from service.db import database_unavailable, make_async_engine, make_engine
from service.db_raw import execute_on_loop
from tests.support.stack import PgCluster, free_port, rows_in

Check = Callable[[AsyncEngine], Awaitable[Any]]


@pytest.fixture
def table_url(pg_cluster: PgCluster) -> Iterator[tuple[Table, str]]:
    table = Table(
        f"loop_{uuid.uuid4().hex[:12]}",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("body", String(40), nullable=False),
    )
    url = pg_cluster.url("postgres")
    engine = make_engine(url)
    table.metadata.create_all(engine)
    try:
        yield table, url
    finally:
        table.metadata.drop_all(engine)
        engine.dispose()


def on_one_connection(url: str, work: Check) -> Any:
    """``work`` on a loop engine whose pool holds one connection, so the next checkout meets the same."""

    async def go() -> Any:
        engine = make_async_engine(url)
        assert engine is not None
        engine.sync_engine.pool.dispose()
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def backend_and_autocommit(engine: AsyncEngine) -> tuple[int, bool]:
    """The server process and autocommit of the connection the pool hands out next."""
    pooled = await engine.raw_connection()
    try:
        driver = pooled.driver_connection
        assert isinstance(driver, psycopg.AsyncConnection)
        return int(driver.info.backend_pid), bool(driver.autocommit)
    finally:
        await greenlet_spawn(pooled.close)


def insert_sql(table: Table) -> str:
    return f'INSERT INTO "{table.name}" (id, body) VALUES ($1, $2)'


def test_the_statement_is_stored_and_the_connection_goes_back_out_of_autocommit(
    table_url: tuple[Table, str],
) -> None:
    table, url = table_url

    async def work(engine: AsyncEngine) -> tuple[tuple[int, bool], tuple[int, bool]]:
        before = await backend_and_autocommit(engine)
        await execute_on_loop(engine, insert_sql(table), [1, "a"])
        return before, await backend_and_autocommit(engine)

    before, after = on_one_connection(url, work)
    # Committed by the statement itself: another connection sees the row.
    assert rows_in(url, table) == 1
    # The same connection (not dropped), back in the state the sessions expect.
    assert after == (before[0], False)


def test_an_error_of_the_statement_is_sqlalchemys_and_keeps_the_connection(
    table_url: tuple[Table, str],
) -> None:
    table, url = table_url

    async def work(engine: AsyncEngine) -> tuple[BaseException, tuple[int, bool], tuple[int, bool]]:
        before = await backend_and_autocommit(engine)
        try:
            await execute_on_loop(engine, insert_sql(table), [1, None])  # NOT NULL
        except BaseException as error:
            return error, before, await backend_and_autocommit(engine)
        raise AssertionError("the statement was not refused")

    error, before, after = on_one_connection(url, work)
    assert isinstance(error, sa_exc.IntegrityError)
    assert isinstance(error.orig, psycopg.errors.NotNullViolation)
    assert not error.connection_invalidated
    # The statement's values are not in the error (a report's ciphertext would be).
    assert "None" not in str(error)
    assert "$2" not in str(error)
    assert after == (before[0], False)
    assert rows_in(url, table) == 0


def test_a_lost_connection_is_dropped_and_its_error_says_so(
    table_url: tuple[Table, str], pg_cluster: PgCluster
) -> None:
    table, url = table_url

    async def work(engine: AsyncEngine) -> tuple[BaseException, int, tuple[int, bool]]:
        pid, _ = await backend_and_autocommit(engine)
        admin = make_engine(url)
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid}, 5000)")
        finally:
            admin.dispose()
        try:
            await execute_on_loop(engine, insert_sql(table), [1, "a"])
        except BaseException as error:
            return error, pid, await backend_and_autocommit(engine)
        raise AssertionError("the statement met no lost connection")

    error, pid, after = on_one_connection(url, work)
    assert isinstance(error, sa_exc.DBAPIError)
    assert error.connection_invalidated
    # Never handed out again: the next checkout is another server process, out of autocommit.
    assert after[0] != pid
    assert after[1] is False


def test_a_statement_cancelled_in_flight_drops_its_connection(table_url: tuple[Table, str]) -> None:
    # A request cancelled while its statement runs leaves the connection mid-statement: never pooled again.
    _table, url = table_url

    async def work(engine: AsyncEngine) -> tuple[int, tuple[int, bool]]:
        pid, _ = await backend_and_autocommit(engine)
        task = asyncio.ensure_future(execute_on_loop(engine, "SELECT pg_sleep(5)", []))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid, await backend_and_autocommit(engine)

    pid, after = on_one_connection(url, work)
    assert after[0] != pid
    assert after[1] is False


def test_a_server_out_of_reach_is_sqlalchemys_error_that_says_so() -> None:
    # Connecting anew fails: the same error a session's connect raises, so the intake answers 503.
    async def work() -> BaseException:
        engine = make_async_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
        assert engine is not None
        try:
            await execute_on_loop(engine, "SELECT 1", [])
        except BaseException as error:
            return error
        finally:
            await engine.dispose()
        raise AssertionError("a server out of reach answered")

    error = asyncio.run(work())
    assert isinstance(error, sa_exc.OperationalError)
    assert database_unavailable(error)
