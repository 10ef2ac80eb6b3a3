"""GET /healthz: what an operator's monitor and the newcomer check look at.

Database, broker and worker each report their state; the answer is 503 when any of them is down, because
a service whose worker is gone accepts reports that nobody is told about. The worker is judged by its
heartbeat (written by the beat schedule through a worker, and when a worker starts).

A monitor, a load balancer and an attacker may all ask often: each process keeps one broker connection for
the check (not one per request), and requests that come while a round of checks runs share its result, so a
flood of /healthz costs one round at a time per process and holds no thread while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal, NotRequired, TypedDict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from kombu.connection import Connection
from sqlalchemy import select, text
from starlette.concurrency import run_in_threadpool

from service.db import utcnow
from service.outbox.models import WorkerHeartbeat
from service.runtime import Runtime
from service.web import StrictRoute

router = APIRouter(tags=["health"], route_class=StrictRoute)

# The beat schedule writes a heartbeat every 30 s; three missed beats mean nobody does the work.
HEARTBEAT_STALE_AFTER = timedelta(seconds=90)


class Check(TypedDict):
    """One component's state in the /healthz body; ``error`` is a short reason (an exception's class name,
    never its message: the body is public)."""

    ok: bool
    error: NotRequired[str]
    backend: NotRequired[str]  # the database's dialect
    transport: NotRequired[str]  # the broker's URL scheme
    heartbeat_age_seconds: NotRequired[float]


class Checks(TypedDict):
    database: Check
    broker: Check
    worker: Check


class Health(Checks):
    """The /healthz body, as ``_HEALTH`` documents it."""

    status: Literal["ok", "degraded"]


_CHECK = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
_HEALTH: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "database": _CHECK,
        "broker": _CHECK,
        "worker": _CHECK,
    },
    "required": ["status", "database", "broker", "worker"],
}


def _database(runtime: Runtime) -> Check:
    with runtime.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"ok": True, "backend": runtime.engine.dialect.name}


def _worker(runtime: Runtime) -> Check:
    with runtime.sessions() as session:
        beat_at = session.scalar(select(WorkerHeartbeat.beat_at).where(WorkerHeartbeat.name == "worker"))
    if beat_at is None:
        return {"ok": False, "error": "no heartbeat yet"}
    age = (utcnow() - beat_at).total_seconds()
    return {"ok": age <= HEARTBEAT_STALE_AFTER.total_seconds(), "heartbeat_age_seconds": round(age, 1)}


def _guarded(check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:  # the monitor needs a state, not a stack trace
        return {"ok": False, "error": type(exc).__name__}


class BrokerProbe:
    """One broker connection per process, opened on first use, checked with a PING (Redis) on every round,
    and opened again after a failure."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._transport = url.split(":", 1)[0]
        # kombu's types are partial (a channel's client is not declared): kept as Any.
        self._connection: Any = None

    def check(self) -> Check:
        try:
            if self._connection is None:
                self._connection = Connection(self._url, connect_timeout=2)  # type: ignore[no-untyped-call]
                self._connection.ensure_connection(max_retries=1, timeout=2)
            if self._transport.startswith("redis"):
                # A kept connection can be dead without knowing it: ask the server.
                self._connection.default_channel.client.ping()
            else:
                self._connection.ensure_connection(max_retries=1, timeout=2)
        except Exception:
            self.close()
            raise
        return {"ok": True, "transport": self._transport}

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.release()
            self._connection = None


class HealthProbe:
    """The checks of one process. Requests that arrive while a round of checks runs wait for its result
    (without holding a thread) instead of starting their own: however many ask at once, one round runs."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._broker = BrokerProbe(runtime.settings.resolved_broker_url)
        self._lock = threading.Lock()
        self._running: asyncio.Future[Checks] | None = None
        self.rounds = 0

    def _round(self) -> Checks:
        # The lock orders rounds of different event loops (a test's clients); one loop never waits here.
        with self._lock:
            self.rounds += 1
            # In this order: the body lists the database, the broker and the worker.
            return Checks(
                database=_guarded(lambda: _database(self._runtime)),
                broker=_guarded(self._broker.check),
                worker=_guarded(lambda: _worker(self._runtime)),
            )

    async def checks(self) -> Checks:
        running = self._running
        if running is None or running.done() or running.get_loop() is not asyncio.get_running_loop():
            running = self._running = asyncio.ensure_future(run_in_threadpool(self._round))
        # Shielded: a client that hangs up must not cancel the round the others wait for.
        return await asyncio.shield(running)

    def close(self) -> None:
        with self._lock:
            self._broker.close()


@router.get(
    "/healthz",
    summary="Health of the service: database, broker and worker",
    responses={
        200: {"description": "Everything is up", "content": {"application/json": {"schema": _HEALTH}}},
        503: {
            "description": "The database, the broker or the worker is down",
            "content": {"application/json": {"schema": _HEALTH}},
        },
    },
)
async def healthz(request: Request) -> JSONResponse:
    probe: HealthProbe = request.app.state.health
    checks = await probe.checks()
    healthy = checks["database"]["ok"] and checks["broker"]["ok"] and checks["worker"]["ok"]
    body: Health = {"status": "ok" if healthy else "degraded", **checks}
    return JSONResponse(body, status_code=200 if healthy else 503)
