"""FastAPI dependencies shared by every feature."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from service.db import session_scope
from service.errors import RateLimited
from service.ratelimit.service import Limit
from service.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_db(runtime: RuntimeDep) -> Iterator[Session]:
    yield from session_scope(runtime.sessions)


DbDep = Annotated[Session, Depends(get_db)]


def client_address(request: Request) -> str:
    """The peer address as uvicorn saw it (proxy headers only from trusted proxies); never stored."""
    return request.client.host if request.client else "unknown"


def enforce(runtime: Runtime, request: Request, limit: Limit) -> None:
    if not runtime.limiter.allow(limit, client_address(request)):
        raise RateLimited()
