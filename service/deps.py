"""FastAPI dependencies shared by every feature."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.errors import RateLimited
from service.ratelimit.service import AsyncRedisCounter, Limit
from service.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs sync dependencies in the thread pool, one hop per request for nothing.
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

T = TypeVar("T")


def unit_of_work(request: Request) -> Iterator[Session]:
    """The request's one database session: committed when the endpoint returns, rolled back when it raises.

    Declared with ``scope="function"`` (``DbSession``), so the commit runs when the endpoint function has
    returned and before the response is sent: a client that reads a 2xx knows its change is stored. Services
    take this session and never commit it; an endpoint that must keep a change although it then answers with
    an error (a counted failed sign-in) commits before it raises, and says why.
    """
    with transaction(runtime_of(request)) as session:
        yield session


DbSession = Annotated[Session, Depends(unit_of_work, scope="function")]


async def in_transaction(request: Request, work: Callable[[Session], T], *, on_event_loop: bool = False) -> T:
    """The request's unit of work for a handler that reads its body itself (an async page handler cannot take
    the form as a dependency before its token is checked) or that must keep up with a flood (the intake).

    ``work`` gets a session; it is committed when ``work`` returns and rolled back when it raises, and the
    answer is built after that, so a 2xx means stored. Callbacks registered with ``service.db.after_commit``
    (the intake hands its notifications to the broker) run right after the commit.

    The work runs in the thread pool. Only the JSON intake passes ``on_event_loop``: with PostgreSQL the
    served application also has asyncio connections (``service.db.make_async_engine``), and the intake's
    work then runs on the event loop, its queries awaited in between (``AsyncSession.run_sync``), with no
    thread hop and nothing to compete with for the GIL (``make bench-intake-engines``). Most reports do not
    even come here: they are one statement, filed on the loop with no session (``service.reports.on_loop``).
    Everything else must stay off the loop: while work runs there, the process answers nobody (an Argon2
    check, a PDF, a merge re-encrypting files would stall every request of the worker). Without that engine
    (SQLite, or an application without its lifespan) the intake too runs in the thread pool. The work is the
    same code.
    """
    async_sessions: async_sessionmaker[AsyncSession] | None = getattr(
        request.app.state, "async_sessions", None
    )
    if on_event_loop and async_sessions is not None:
        async with async_sessions() as session:
            # On error the session's close rolls back (and drops the after-commit callbacks).
            result = await session.run_sync(work)
            await session.commit()
            return result
    return await run_in_threadpool(in_unit_of_work, runtime_of(request), work)


def in_unit_of_work(runtime: Runtime, work: Callable[[Session], T]) -> T:
    """The unit of work for code that already runs in a thread (``in_transaction``'s thread pool, the Argon2
    gate's thread): ``work`` gets a session that is committed when it returns and rolled back when it
    raises."""
    with transaction(runtime) as session:
        return work(session)


@contextmanager
def transaction(runtime: Runtime) -> Iterator[Session]:
    """The one body of every unit of work above: a session committed when the block ends and rolled back
    when it raises (then re-raised). Callbacks registered with ``service.db.after_commit`` run after the
    commit, those of ``after_rollback`` after the rollback."""
    with runtime.sessions() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()


def client_address(request: Request) -> str:
    """The client's rate-limit key: the peer, or behind a trusted proxy the right-most untrusted hop of
    X-Forwarded-For (service.ratelimit.clients); IPv6 by /64. Never stored, never logged."""
    peer = request.client.host if request.client else None
    return runtime_of(request).clients.resolve(peer, request.headers.getlist("x-forwarded-for"))


def enforce(runtime: Runtime, request: Request, limit: Limit) -> None:
    if not runtime.limiter.allow(limit, client_address(request)):
        raise RateLimited()


async def enforce_async(runtime: Runtime, request: Request, limit: Limit) -> None:
    """``enforce`` on the event loop: Redis through the serving loop's client (``app.state.async_redis``,
    made by the lifespan), the database's count (Redis away, or none configured) in the thread pool."""
    redis: AsyncRedisCounter | None = getattr(request.app.state, "async_redis", None)
    if not await runtime.limiter.allow_async(limit, client_address(request), redis):
        raise RateLimited()


def runtime_of(request: Request) -> Runtime:
    """The runtime for page handlers that read the request body themselves (no dependency injection)."""
    runtime: Runtime = request.app.state.runtime
    return runtime
