"""GET /healthz: what an operator's monitor and the newcomer check look at."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Health of the service and its database")
def healthz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, Any] = {}
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "backend": runtime.engine.dialect.name}
    except Exception as exc:  # the monitor needs a state, not a stack trace
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    healthy = all(check["ok"] for check in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", **checks}, status_code=200 if healthy else 503
    )
