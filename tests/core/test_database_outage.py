"""A database that cannot be reached is a 503 that says "send again" in German and English, never a 500,
and the service recovers by itself when the database is back."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from service import db
from service.app import create_app
from service.config import Settings
from service.db import make_engine
from service.migrate import upgrade
from service.runtime import Runtime, build_runtime
from tests.support.forms import report_body
from tests.support.stack import PgCluster
from tests.support.staff import with_policy_organisations

# The response type of the TestClient (starlette picks httpx2 when it is installed, as here).
Response = Any

REPORT = report_body(type_codes=["A3a"], description="Drohung per Brief", channel="letter")


def _lost_connection(*_: object, **__: object) -> None:
    raise sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


def _broken_statement(*_: object, **__: object) -> None:
    raise sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key"))


def _assert_unavailable_json(response: Response) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    detail = response.json()["detail"]
    assert "nicht erreichbar" in detail, "German first"
    assert "temporarily unavailable" in detail, "then English"
    assert "nicht angenommen" in detail, "the reporter knows to send again"
    assert "not accepted" in detail


def test_a_lost_database_connection_answers_503_in_both_languages(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.intake, "file_report", _lost_connection)
    _assert_unavailable_json(client.post("/api/v1/reports", json=REPORT))


def test_the_form_says_so_on_a_page_in_the_readers_language(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.limiter, "allow", _lost_connection)
    german = client.post("/melden", data={"description": "x"})
    english = client.post("/melden?lang=en", data={"description": "x"})
    assert german.status_code == english.status_code == 503
    assert "vorübergehend nicht erreichbar" in german.text
    assert "temporarily unavailable" in english.text


def test_a_broken_statement_stays_a_500(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the database's state is a 503: a statement that is wrong is a bug, and must look like one."""
    monkeypatch.setattr(runtime.intake, "file_report", _broken_statement)
    response = TestClient(client.app, base_url="http://127.0.0.1", raise_server_exceptions=False).post(
        "/api/v1/reports", json=REPORT
    )
    assert response.status_code == 500
    assert "retry-after" not in response.headers


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL of this test alone: stopping the session's cluster would break every other test."""
    cluster = PgCluster(durable_commits=True)
    try:
        yield cluster
    finally:
        cluster.stop()


def _service_on(cluster: PgCluster, name: str) -> Runtime:
    """A migrated database of its own on ``cluster`` and a runtime with the policy's organisations."""
    with cluster.admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = cluster.url(name)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix=f"rh-{name}-")), database_url=url)
    return with_policy_organisations(build_runtime(settings))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_intake_answers_503_while_postgres_is_down_and_recovers_after_the_restart(
    own_cluster: PgCluster, mode: str
) -> None:
    """Given a running service on PostgreSQL, when the server stops (cleanly or as a crash), a report gets
    503 at once rather than a 500 or a hang; when the server is back, the next report is accepted."""
    runtime = _service_on(own_cluster, "outage")
    try:
        with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
            assert client.post("/api/v1/reports", json=REPORT).status_code == 201
            own_cluster.halt(mode)

            started = time.monotonic()
            _assert_unavailable_json(client.post("/api/v1/reports", json=REPORT))
            assert time.monotonic() - started < 6, "within the connect timeout, not a hang"
            assert client.post("/melden", data={"description": "x"}).status_code == 503
            assert client.get("/healthz").json()["database"] == {"ok": False, "error": "OperationalError"}

            own_cluster.start()
            # The requests during the outage invalidated the pool; the next one connects anew.
            assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    finally:
        runtime.dispose()


@pytest.mark.slow
def test_a_pooled_connection_idle_across_a_restart_is_replaced_before_use(
    own_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given connections in the pool, when PostgreSQL restarts while no request comes, then the first
    request after it succeeds: a connection idle longer than IDLE_PING_SECONDS is pinged at checkout and
    replaced (the threshold is set to 0 here so that the test need not wait for it)."""
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)
    runtime = _service_on(own_cluster, "idle")
    try:
        with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
            assert client.post("/api/v1/reports", json=REPORT).status_code == 201
            own_cluster.halt("fast")
            own_cluster.start()
            assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    finally:
        runtime.dispose()


def test_a_connection_in_use_is_not_pinged(monkeypatch: pytest.MonkeyPatch, pg_cluster: PgCluster) -> None:
    """Under load a connection goes back to work within the threshold: no round trip for a ping."""
    engine = make_engine(pg_cluster.url("rh_template"))
    pings: list[object] = []

    def do_ping(connection: object) -> bool:
        pings.append(connection)
        return True

    monkeypatch.setattr(engine.dialect, "do_ping", do_ping)
    try:
        for _ in range(5):
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        assert pings == []
        monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        assert len(pings) == 1
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_disconnect_met_by_one_pool_has_the_other_pool_ping_before_use(own_cluster: PgCluster) -> None:
    """An api process has two pools on one server: the thread pool's engine and the event loop's. Given a
    connection in each, when the server restarts and the thread pool's connection meets the break, then
    the event loop's connection is pinged and replaced at its next use, however briefly it was idle (the
    idle threshold alone would let it fail a reporter's request)."""
    url = own_cluster.url("postgres")
    threads = make_engine(url)
    loop_engine = db.make_async_engine(url)
    assert loop_engine is not None

    async def select_one() -> int:
        async with loop_engine.connect() as connection:
            return int((await connection.exec_driver_sql("SELECT 1")).scalar_one())

    async def run() -> None:
        try:
            assert await select_one() == 1
            with threads.connect() as connection:
                connection.exec_driver_sql("SELECT 1")

            own_cluster.halt("fast")
            own_cluster.start()
            with pytest.raises(sa_exc.OperationalError), threads.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            # Well within IDLE_PING_SECONDS of its last use, and yet:
            assert await select_one() == 1
        finally:
            await loop_engine.dispose()
            threads.dispose()

    asyncio.run(run())


def test_the_loop_engine_is_for_postgresql_only() -> None:
    """SQLite keeps the thread pool: it has no asyncio driver here and one writer at a time anyway."""
    assert db.make_async_engine("sqlite:///:memory:") is None
