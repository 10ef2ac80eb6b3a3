"""What happens after the commit (``service.db.after_commit``), and the intake that relies on it.

A service that must act once its rows are stored (the intake hands its notifications to the broker) registers
a callback instead of committing: the owner of the transaction commits, and only then does the callback run;
a rollback drops it. Played on both databases, and through the served JSON intake, whose notifications must
never reach the broker before the case they announce is visible to a worker.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.cases.models import Case
from service.db import after_commit, after_rollback
from service.outbox.models import OutboxMessage
from service.ratelimit.models import RateLimitCounter
from service.runtime import Runtime
from tests.support.forms import report_body


def _counter(key: str) -> RateLimitCounter:
    return RateLimitCounter(key=key, window_start=0, count=1)


def _visible(runtime: Runtime, key: str) -> bool:
    with runtime.sessions() as other:
        return other.scalar(select(RateLimitCounter.key).where(RateLimitCounter.key == key)) is not None


def test_a_callback_runs_after_the_commit_and_sees_the_rows_stored(runtime: Runtime) -> None:
    seen: list[bool] = []
    with runtime.sessions() as session:
        session.add(_counter("after-commit-ok"))
        session.flush()
        after_commit(session, lambda: seen.append(_visible(runtime, "after-commit-ok")))
        assert seen == [], "nothing runs before the commit"
        session.commit()
    assert seen == [True]


def test_a_rollback_or_a_close_without_commit_drops_the_callbacks(runtime: Runtime) -> None:
    ran: list[str] = []
    with runtime.sessions() as session:
        session.add(_counter("after-commit-rolled-back"))
        after_commit(session, lambda: ran.append("rolled back"))
        session.rollback()
        # The same session, a new transaction: the dropped callback must not ride along with its commit.
        session.add(_counter("after-commit-next"))
        session.commit()
    with runtime.sessions() as session:
        session.add(_counter("after-commit-closed"))
        after_commit(session, lambda: ran.append("closed"))
    assert ran == []
    assert not _visible(runtime, "after-commit-rolled-back")
    assert not _visible(runtime, "after-commit-closed")


def test_a_savepoint_that_ends_keeps_the_outer_transactions_callbacks(runtime: Runtime) -> None:
    ran: list[str] = []
    with runtime.sessions() as session:
        after_commit(session, lambda: ran.append("outer"))
        with session.begin_nested():
            session.add(_counter("after-commit-savepoint"))
        assert ran == []
        session.commit()
    assert ran == ["outer"]


def test_a_failing_callback_is_logged_and_the_others_still_run(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("broker gone")

    with runtime.sessions() as session:
        session.add(_counter("after-commit-broken"))
        after_commit(session, broken)
        after_commit(session, lambda: ran.append("second"))
        session.commit()
    assert ran == ["second"]
    assert _visible(runtime, "after-commit-broken"), "a failing callback does not undo the commit"
    assert any(
        record.levelno == logging.ERROR and "after-commit callback failed" in record.getMessage()
        for record in caplog.records
    )


class _Recording:
    """A dispatcher that records, at the moment it is handed the rows, whether their case is stored."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.handed: list[tuple[str, bool]] = []

    def ready(self) -> bool:
        return True

    def submit(self, rows: list[tuple[str, str]]) -> None:
        with self.runtime.sessions() as other:
            stored = set(other.scalars(select(Case.id)))
            for row_id, _topic in rows:
                message = other.get(OutboxMessage, row_id)
                case_id = str(message.payload["case_id"]) if message is not None else ""
                self.handed.append((row_id, case_id in stored))


def test_the_served_intake_hands_its_notifications_on_only_after_the_commit(runtime: Runtime) -> None:
    """With the application's lifespan (the event loop's connections on PostgreSQL), a report's outbox rows
    reach the dispatcher once the case they announce is visible to another connection, and not before."""
    recording = _Recording(runtime)
    runtime.intake.dispatcher = recording  # type: ignore[assignment]
    try:
        with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
            response = client.post(
                "/api/v1/reports",
                json=report_body(type_codes=["A3a"], description="Drohung", channel="letter"),
            )
    finally:
        runtime.intake.dispatcher = None
    assert response.status_code == 201, response.text
    assert recording.handed, "the new case's notifications were handed on"
    assert all(stored for _row, stored in recording.handed)


def test_a_refused_report_spends_none_of_the_matching_budget(runtime: Runtime, client: TestClient) -> None:
    """A hostile or mistaken report with identifiers that the intake refuses (an unknown incident code)
    counts no look-up: the hourly budget is for reports that are filed."""
    reserved: list[int] = []
    original = runtime.matching.reserve

    def counted(count: int) -> Any:
        reserved.append(count)
        return original(count)

    runtime.matching.reserve = counted  # type: ignore[method-assign]
    body = report_body(type_codes=["Z9"], description="Drohung", channel="letter")
    body["perpetrator_identifiers"] = [{"kind": "handle", "value": "@max_m", "platform": "instagram"}]
    body["consent_matching"] = True
    response = client.post("/api/v1/reports", json=body)
    assert response.status_code == 422, response.text
    assert reserved == []
    body["type_codes"] = ["A3a"]
    assert client.post("/api/v1/reports", json=body).status_code == 201
    assert reserved == [1]


def test_after_rollback_runs_when_the_transaction_ends_without_a_commit_and_never_after_one(
    runtime: Runtime,
) -> None:
    """What was done outside the database for rows that are then not stored (a blob) is undone once the
    transaction is rolled back or the session closed without a commit; a commit drops the undo."""
    undone: list[str] = []
    with runtime.sessions() as session:
        after_rollback(session, lambda: undone.append("rolled back"))
        session.add(_counter("after-rollback-1"))
        session.rollback()
    with runtime.sessions() as session:
        after_rollback(session, lambda: undone.append("closed"))
        session.add(_counter("after-rollback-2"))
    with runtime.sessions() as session:
        after_rollback(session, lambda: undone.append("committed"))
        with session.begin_nested():
            session.add(_counter("after-rollback-3"))
        assert undone == ["rolled back", "closed"], "a savepoint's end is not the transaction's"
        session.commit()
    assert undone == ["rolled back", "closed"]
    assert _visible(runtime, "after-rollback-3")
