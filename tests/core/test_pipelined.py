"""``service.db_raw.pipelined`` and ``execute_raw``: the intake's inserts go to PostgreSQL in one round trip,
on the thread pool's connections and on the event loop's alike, and a failure among them is the same
SQLAlchemy error a plain execute raises (a 500 for a wrong statement, a 503 for a lost connection), with
nothing stored."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from service import db
from service.db import (
    database_unavailable,
    make_async_engine,
    make_async_sessionmaker,
    make_engine,
    make_sessionmaker,
)
from service.db_raw import execute_raw, pipelined
from tests.support.stack import PgCluster, rows_in

T = TypeVar("T")
Run = Callable[[Callable[[Session], Any]], Any]


def _table() -> Table:
    # A table of this test alone, in the shared cluster's ``postgres`` database.
    return Table(
        f"pipe_{uuid.uuid4().hex[:12]}",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("body", String(40)),
    )


@contextlib.contextmanager
def _session_runner(kind: str, url: str, table: Table) -> Iterator[Run]:
    """Run a function with a session: on a thread-pool engine, or inside ``AsyncSession.run_sync`` on the
    event loop's engine; the table exists meanwhile."""
    engine = make_engine(url)
    table.metadata.create_all(engine)
    try:
        if kind == "event_loop":
            loop_engine = make_async_engine(url)
            assert loop_engine is not None

            def on_loop(work: Callable[[Session], T]) -> T:
                async def go() -> T:
                    try:
                        async with make_async_sessionmaker(loop_engine)() as session:
                            return await session.run_sync(work)
                    finally:
                        await loop_engine.dispose()

                return asyncio.run(go())

            yield on_loop
        else:

            def in_thread(work: Callable[[Session], T]) -> T:
                with make_sessionmaker(engine)() as session:
                    return work(session)

            yield in_thread
    finally:
        table.metadata.drop_all(engine)
        engine.dispose()


@pytest.fixture(params=["threads", "event_loop", "sqlite"])
def run_in_session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Run, Table, str]]:
    """On either PostgreSQL engine, or on SQLite (where ``pipelined`` does nothing)."""
    table = _table()
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pipe.db'}"
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        url = cluster.url("postgres")
    with _session_runner("threads" if request.param == "sqlite" else request.param, url, table) as run:
        yield run, table, url


def test_every_row_of_the_block_is_stored_after_the_commit(run_in_session: tuple[Run, Table, str]) -> None:
    run, table, url = run_in_session

    def work(session: Session) -> None:
        connection = session.connection()
        with pipelined(session):
            connection.execute(insert(table), [{"id": 1, "body": "a"}])
            connection.execute(insert(table), [{"id": n, "body": "b"} for n in range(2, 6)])
            connection.execute(insert(table), [{"id": 6, "body": "c"}])
        session.commit()

    run(work)
    assert rows_in(url, table) == 6


def test_a_failing_insert_is_sqlalchemys_integrity_error_and_nothing_is_stored(
    run_in_session: tuple[Run, Table, str],
) -> None:
    run, table, url = run_in_session
    caught: list[BaseException] = []

    def work(session: Session) -> None:
        connection = session.connection()
        try:
            with pipelined(session):
                connection.execute(insert(table), [{"id": 1, "body": "a"}])
                connection.execute(insert(table), [{"id": 1, "body": "again"}])
                connection.execute(insert(table), [{"id": 2, "body": "after"}])
        except sa_exc.DBAPIError as error:
            caught.append(error)
            session.rollback()
            return
        session.commit()

    run(work)
    assert len(caught) == 1
    assert isinstance(caught[0], sa_exc.IntegrityError)
    assert not database_unavailable(caught[0]), "a wrong statement stays a 500"
    assert rows_in(url, table) == 0


@pytest.mark.parametrize("engine_kind", ["threads", "event_loop"])
def test_a_connection_lost_in_the_block_is_a_503_and_the_pool_replaces_it(
    pg_cluster: PgCluster, engine_kind: str
) -> None:
    """The server ends the backend while the inserts are queued: the error at the end of the block says
    the database is unavailable (the reporter gets "send again"), and the next transaction works."""
    table = _table()
    url = pg_cluster.url("postgres")
    setup = make_engine(url)
    table.metadata.create_all(setup)

    def lose_connection(session: Session) -> BaseException | None:
        connection = session.connection()
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        try:
            with pipelined(session):
                connection.execute(insert(table), [{"id": 1, "body": "a"}])
                with pg_cluster.admin() as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                connection.execute(insert(table), [{"id": 2, "body": "b"}])
        except sa_exc.DBAPIError as error:
            return error
        return None

    def store(session: Session) -> None:
        session.connection().execute(insert(table), [{"id": 3, "body": "c"}])
        session.commit()

    before = db._Disconnects.last
    try:
        if engine_kind == "threads":
            sessions = make_sessionmaker(setup)
            with sessions() as session:
                error = lose_connection(session)
            with sessions() as session:
                store(session)
        else:
            loop_engine = make_async_engine(url)
            assert loop_engine is not None

            async def go() -> BaseException | None:
                try:
                    async with make_async_sessionmaker(loop_engine)() as session:
                        lost = await session.run_sync(lose_connection)
                    async with make_async_sessionmaker(loop_engine)() as session:
                        await session.run_sync(store)
                    return lost
                finally:
                    await loop_engine.dispose()

            error = asyncio.run(go())
        assert error is not None
        assert database_unavailable(error)
        assert isinstance(error, sa_exc.DBAPIError)
        assert error.connection_invalidated
        assert rows_in(url, table) == 1, "only the later transaction's row"
        assert db._Disconnects.last > before, "every older connection of both pools is pinged next"
    finally:
        table.metadata.drop_all(setup)
        setup.dispose()


def test_a_connection_that_did_not_leave_pipeline_mode_never_goes_back_to_the_pool(
    pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when a request is cancelled while the pipeline's last answers are awaited: leaving pipeline mode
    does not finish. The connection is invalidated rather than pooled in that state."""

    @contextlib.contextmanager
    def interrupted(self: psycopg.Connection[Any]) -> Iterator[None]:
        self.pgconn.enter_pipeline_mode()
        yield
        raise KeyboardInterrupt  # before psycopg could leave pipeline mode

    engine = make_engine(pg_cluster.url("postgres"))
    monkeypatch.setattr(psycopg.Connection, "pipeline", interrupted)
    try:
        with make_sessionmaker(engine)() as session:
            connection = session.connection()
            with pytest.raises(KeyboardInterrupt), pipelined(session):
                pass
            assert connection.invalidated
        monkeypatch.undo()
        with engine.connect() as fresh:
            assert fresh.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        engine.dispose()


# -- execute_raw: one long statement on psycopg's raw cursor (the intake's single insert) -----------------


@pytest.fixture(params=["threads", "event_loop"])
def run_on_postgres(
    request: pytest.FixtureRequest, pg_cluster: PgCluster
) -> Iterator[tuple[Run, Table, str]]:
    table = _table()
    url = pg_cluster.url("postgres")
    with _session_runner(request.param, url, table) as run:
        yield run, table, url


def _values(table: Table, ids: list[int]) -> tuple[str, list[Any]]:
    rows = ", ".join(f"(${2 * n + 1}, ${2 * n + 2})" for n in range(len(ids)))
    return f'INSERT INTO "{table.name}" (id, body) VALUES {rows}', [v for i in ids for v in (i, f"value-{i}")]


def test_execute_raw_stores_a_statement_with_more_values_than_psycopgs_cache_takes(
    run_on_postgres: tuple[Run, Table, str],
) -> None:
    run, table, url = run_on_postgres
    query, params = _values(table, list(range(1, 61)))  # 120 values: past the 50 psycopg caches

    def work(session: Session) -> None:
        execute_raw(session, query, params)
        session.commit()

    run(work)
    assert rows_in(url, table) == 60


def test_execute_raw_failing_is_sqlalchemys_integrity_error_and_nothing_is_stored(
    run_on_postgres: tuple[Run, Table, str],
) -> None:
    run, table, url = run_on_postgres
    query, params = _values(table, [1, 2, 1])
    caught: list[BaseException] = []

    def work(session: Session) -> None:
        try:
            execute_raw(session, query, params)
        except sa_exc.DBAPIError as error:
            caught.append(error)
            session.rollback()
            return
        session.commit()

    run(work)
    assert len(caught) == 1
    assert isinstance(caught[0], sa_exc.IntegrityError)
    assert not database_unavailable(caught[0]), "a wrong statement stays a 500"
    # (A marker that neither the statement nor the table's random hex name can contain by chance.)
    assert "value-" not in str(caught[0]), "the statement's values are not in the error"
    assert rows_in(url, table) == 0


def test_execute_raw_on_a_lost_connection_is_a_503_and_the_pool_replaces_it(
    run_on_postgres: tuple[Run, Table, str], pg_cluster: PgCluster
) -> None:
    run, table, url = run_on_postgres
    query, params = _values(table, [1, 2])

    def lose_connection(session: Session) -> BaseException | None:
        pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with pg_cluster.admin() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        try:
            execute_raw(session, query, params)
        except sa_exc.DBAPIError as error:
            return error
        return None

    before = db._Disconnects.last
    error = run(lose_connection)
    assert error is not None
    assert database_unavailable(error)
    assert error.connection_invalidated
    assert db._Disconnects.last > before

    def insert_and_commit(session: Session) -> None:
        execute_raw(session, *_values(table, [3]))
        session.commit()

    run(insert_and_commit)
    assert rows_in(url, table) == 1
