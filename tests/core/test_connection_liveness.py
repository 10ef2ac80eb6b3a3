"""Every connection to PostgreSQL, of the thread pool's engine and of the event loop's, asks the kernel to
notice a peer that is gone within about half a minute (``service.db.TCP_LIVENESS``): TCP keepalives and a
limit on unacknowledged data. Without them a statement sent on a dead link waits for as long as the kernel
retries, and the reports waiting behind it with it (``service.group_commit``)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from service.db import TCP_LIVENESS, make_async_engine, make_engine
from tests.support.stack import PgCluster


def expected() -> dict[str, str]:
    return {name: str(value) for name, value in TCP_LIVENESS.items()}


def liveness_of(parameters: dict[str, str]) -> dict[str, str]:
    return {name: parameters.get(name, "(default)") for name in TCP_LIVENESS}


def test_the_thread_pools_connections_notice_a_dead_peer(pg_cluster: PgCluster) -> None:
    engine = make_engine(pg_cluster.url("postgres"))
    try:
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            assert liveness_of(driver.info.get_parameters()) == expected()
    finally:
        engine.dispose()


def test_the_event_loops_connections_notice_a_dead_peer(pg_cluster: PgCluster) -> None:
    async def parameters() -> dict[str, str]:
        engine = make_async_engine(pg_cluster.url("postgres"))
        assert engine is not None
        try:
            pooled = await engine.raw_connection()
            try:
                driver: Any = pooled.driver_connection
                assert isinstance(driver, psycopg.AsyncConnection)
                return dict(driver.info.get_parameters())
            finally:
                pooled.close()
        finally:
            await engine.dispose()

    assert liveness_of(asyncio.run(parameters())) == expected()
