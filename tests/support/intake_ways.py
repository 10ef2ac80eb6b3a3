"""The two ways the API files a report that is one statement, for tests that play either or both: on the
event loop with no session (``service.reports.on_loop``) and in a session (where the first declines)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import deps
from service.identity.repository import ReceiverCache
from service.reports import endpoints
from service.runtime import Runtime
from tests.support.forms import report_body

FIRST = report_body(description="Drohanruf im Rathaus.")


def in_a_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API files its reports in a session: the way on the loop declines, as it does once a second."""

    async def declines(*_args: Any) -> None:
        return None

    monkeypatch.setattr(endpoints, "file_on_loop", declines)


def cache_that_does_not_age(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The intake's read of the organisations, empty now, does not age during the test once made."""
    monkeypatch.setattr(runtime.intake, "_receivers", ReceiverCache(max_age=3600))


def on_the_loop(client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API files its reports on the loop: the organisations and their keys were read by a first report
    (in a session, as in a new process), and that read does not age during the test."""
    cache_that_does_not_age(runtime, monkeypatch)
    assert client.post("/api/v1/reports", json=FIRST).status_code == 201


def sessions_used(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per report the API filed in a unit of work (the session's way)."""
    used: list[int] = []
    original = deps.in_transaction  # what the endpoints module calls

    async def counted(*args: Any, **kwargs: Any) -> Any:
        used.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(endpoints, "in_transaction", counted)
    return used
