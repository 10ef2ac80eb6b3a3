"""FastAPI dependencies shared by every feature."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.errors import RateLimited
from service.ratelimit.service import Limit
from service.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs sync dependencies in the thread pool, one hop per request for nothing.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def client_address(request: Request) -> str:
    """The peer address as uvicorn saw it (proxy headers only from trusted proxies); never stored."""
    return request.client.host if request.client else "unknown"


def enforce(runtime: Runtime, request: Request, limit: Limit) -> None:
    if not runtime.limiter.allow(limit, client_address(request)):
        raise RateLimited()


def runtime_of(request: Request) -> Runtime:
    """The runtime for page handlers that read the request body themselves (no dependency injection)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


# Translation keys of the validation errors that pages show (pydantic's types and the services' own).
VALIDATION_MESSAGE_KEYS = {
    "missing": "validation.required",
    "string_too_short": "validation.required",
    "too_short": "validation.required",
    "string_too_long": "validation.too_long",
    "too_long": "validation.too_long",
    "invalid_code": "validation.invalid_code",
    "district_land": "validation.district_land",
    "duplicate": "validation.invalid",
}
