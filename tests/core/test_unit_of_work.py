"""The request's unit of work (``service.deps.DbSession``): stored before the answer starts, nothing on error.

Played against the real databases: an ASGI wrapper looks into the database from a session of its own at the
moment the response starts, which is what a client that reads a 2xx relies on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.deps import DbSession, in_transaction
from service.errors import DomainError, NotFound
from service.observability import metrics
from service.ratelimit.models import RateLimitCounter
from service.runtime import Runtime
from tests.support.product import on_event_loop

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _stored(runtime: Runtime, key: str) -> bool:
    with runtime.sessions() as session:
        return session.scalar(select(RateLimitCounter.key).where(RateLimitCounter.key == key)) is not None


def _app(
    runtime: Runtime, seen_at_start: dict[str, bool]
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    app = FastAPI()
    app.state.runtime = runtime

    async def domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        return JSONResponse({"detail": exc.public_message}, status_code=exc.status_code)

    app.add_exception_handler(DomainError, domain_error)

    @app.post("/store/{key}")
    def store(key: str, session: DbSession) -> dict[str, str]:
        session.add(RateLimitCounter(key=key, window_start=0, count=1))
        session.flush()
        return {"stored": key}

    @app.post("/page-store/{key}")
    async def page_store(key: str, request: Request) -> dict[str, str]:
        def work(session: Session) -> None:
            session.add(RateLimitCounter(key=key, window_start=0, count=1))
            if key.endswith("fail"):
                session.flush()
                raise NotFound()

        await in_transaction(request, work)
        return {"stored": key}

    @app.post("/store-then-fail/{key}")
    def store_then_fail(key: str, session: DbSession) -> dict[str, str]:
        session.add(RateLimitCounter(key=key, window_start=0, count=1))
        session.flush()
        raise NotFound()

    async def watching(scope: Scope, receive: Receive, send: Send) -> None:
        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                key = str(scope["path"]).rsplit("/", 1)[-1]
                seen_at_start[key] = _stored(runtime, key)
            await send(message)

        await app(scope, receive, watch)

    return watching


def test_the_change_is_committed_before_the_response_starts(runtime: Runtime) -> None:
    seen: dict[str, bool] = {}
    with TestClient(_app(runtime, seen)) as client:
        assert client.post("/store/uow-ok").status_code == 200
    assert seen == {"uow-ok": True}, "visible to another session when the answer began"


def test_an_error_rolls_everything_back(runtime: Runtime) -> None:
    seen: dict[str, bool] = {}
    with TestClient(_app(runtime, seen)) as client:
        assert client.post("/store-then-fail/uow-fail").status_code == 404
    assert seen == {"uow-fail": False}
    assert not _stored(runtime, "uow-fail")


def test_a_page_that_reads_its_form_itself_has_the_same_unit_of_work(runtime: Runtime) -> None:
    seen: dict[str, bool] = {}
    with TestClient(_app(runtime, seen)) as client:
        assert client.post("/page-store/uow-page").status_code == 200
        assert client.post("/page-store/uow-page-fail").status_code == 404
    assert seen == {"uow-page": True, "uow-page-fail": False}
    assert not _stored(runtime, "uow-page-fail")


def test_page_work_stays_off_the_event_loop_and_only_the_intake_runs_on_it(runtime: Runtime) -> None:
    """With the served application's lifespan (asyncio connections on PostgreSQL), a page's work still runs
    in the thread pool: on the loop an Argon2 check, a PDF or a merge's re-encryption would stall every
    request of the process. Only work that asks for it (the JSON intake) runs on the loop, and only where
    that engine exists."""
    from service.app import create_app

    app = create_app(runtime=runtime)
    where: dict[str, bool] = {}

    @app.post("/probe/{name}")
    async def probe(name: str, request: Request) -> dict[str, str]:
        def work(_: Session) -> None:
            where[name] = on_event_loop()

        await in_transaction(request, work, on_event_loop=name == "intake")
        return {}

    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            assert client.post("/probe/page").status_code == 200
            assert client.post("/probe/intake").status_code == 200
    finally:
        # The metrics are the process's: a test route must not stay in them for a later test that checks
        # every route label against the application's own routes (CI failed on that once).
        with suppress(KeyError):
            metrics.http_request_duration.remove("/probe/{name}", "POST")
            metrics.http_requests.remove("/probe/{name}", "POST", "200")
    postgres = not runtime.settings.resolved_database_url.startswith("sqlite")
    assert where == {"page": False, "intake": postgres}
