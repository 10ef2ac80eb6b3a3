"""The smallest app a served worker can run: it answers with its process id (tests/core/test_serving.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def pid(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))


async def slow(request: Request) -> PlainTextResponse:
    """A request still in flight a second after it came: a stop must let it finish."""
    await asyncio.sleep(1.0)
    return PlainTextResponse(str(os.getpid()))


def create_app() -> Starlette:
    return Starlette(routes=[Route("/", pid), Route("/slow", slow)])


def failing_app() -> Starlette:
    """An app whose lifespan's start fails."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    return Starlette(routes=[Route("/", pid)], lifespan=lifespan)


def unreachable_database_app() -> Starlette:
    """A factory that fails as the service's does without its database: ``create_app`` reads it."""
    raise ConnectionRefusedError("database at 127.0.0.1:1 refused the connection")
