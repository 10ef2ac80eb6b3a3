"""GET /healthz: what an operator's monitor and the newcomer check look at.

Database, broker and worker each report their state; the answer is 503 when any of them is down, because
a service whose worker is gone accepts reports that nobody is told about. The worker is judged by its
heartbeat (written by the beat schedule through a worker, and when a worker starts).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from kombu.connection import Connection
from sqlalchemy import select, text

from service.db import utcnow
from service.outbox.models import WorkerHeartbeat
from service.runtime import Runtime
from service.web import StrictRoute

router = APIRouter(tags=["health"], route_class=StrictRoute)

# The beat schedule writes a heartbeat every 30 s; three missed beats mean nobody does the work.
HEARTBEAT_STALE_AFTER = timedelta(seconds=90)

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


def _database(runtime: Runtime) -> dict[str, Any]:
    with runtime.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"ok": True, "backend": runtime.engine.dialect.name}


def _broker(runtime: Runtime) -> dict[str, Any]:
    url = runtime.settings.resolved_broker_url
    with Connection(url, connect_timeout=2) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=2)
    return {"ok": True, "transport": url.split(":", 1)[0]}


def _worker(runtime: Runtime) -> dict[str, Any]:
    with runtime.sessions() as session:
        beat_at = session.scalar(select(WorkerHeartbeat.beat_at).where(WorkerHeartbeat.name == "worker"))
    if beat_at is None:
        return {"ok": False, "error": "no heartbeat yet"}
    age = (utcnow() - beat_at).total_seconds()
    return {"ok": age <= HEARTBEAT_STALE_AFTER.total_seconds(), "heartbeat_age_seconds": round(age, 1)}


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
def healthz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, Any] = {}
    for name, check in (("database", _database), ("broker", _broker), ("worker", _worker)):
        try:
            checks[name] = check(runtime)
        except Exception as exc:  # the monitor needs a state, not a stack trace
            checks[name] = {"ok": False, "error": type(exc).__name__}
    healthy = all(check["ok"] for check in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", **checks}, status_code=200 if healthy else 503
    )
