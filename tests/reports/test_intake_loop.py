"""Where the JSON intake runs: on the event loop with PostgreSQL's asyncio connections when the served
application has them, in the thread pool otherwise; the same code and the same rows either way."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.app import create_app
from service.cases.models import Case, Incident, RoutingRecord
from service.db import new_row
from service.extract.models import StatisticsExtract
from service.identity.models import CaseKeyGrant
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.product import on_event_loop

REPORT = report_body(type_codes=["A3a"], description="Drohung per Brief", channel="letter")


def _record_where_filed(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    seen: list[bool] = []
    file_report = runtime.intake.file_report

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(on_event_loop())
        return file_report(*args, **kwargs)

    monkeypatch.setattr(runtime.intake, "file_report", recording)
    return seen


def _is_sqlite(runtime: Runtime) -> bool:
    return runtime.settings.resolved_database_url.startswith("sqlite")


def test_the_json_intake_runs_on_the_event_loop_with_postgresql_only(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a served application (its lifespan started), a report filed through the API is stored from
    the event loop on PostgreSQL (nothing to compete with for the GIL) and from the thread pool on SQLite."""
    seen = _record_where_filed(runtime, monkeypatch)
    assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    assert seen == [not _is_sqlite(runtime)]


def test_without_a_lifespan_the_thread_pool_files_the_report(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asyncio connections belong to the loop that opened them: without a lifespan there is none to own
    them, and the intake still works, from the thread pool."""
    seen = _record_where_filed(runtime, monkeypatch)
    app = create_app(runtime=runtime)
    response = TestClient(app, base_url="http://127.0.0.1").post("/api/v1/reports", json=REPORT)
    assert response.status_code == 201
    assert seen == [False]
    assert app.state.async_sessions is None


def test_the_lifespan_ends_with_the_loop_engine_gone(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert (app.state.async_sessions is None) == _is_sqlite(runtime)
        assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    assert app.state.async_sessions is None


def test_a_report_is_the_same_rows_either_way(runtime: Runtime, client: TestClient) -> None:
    """One case, one incident with its statistics row, a grant per organisation of the decision, the
    routing record and a notification per target: from the loop and from the thread pool alike."""
    from_loop = client.post("/api/v1/reports", json=REPORT)
    from_threads = TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1").post(
        "/api/v1/reports", json=REPORT
    )
    assert from_loop.status_code == from_threads.status_code == 201
    assert from_loop.json()["routed_to"] == from_threads.json()["routed_to"]
    with runtime.sessions() as db:
        counts = {
            model.__name__: db.scalar(select(func.count()).select_from(model))
            for model in (Case, Incident, StatisticsExtract, CaseKeyGrant, RoutingRecord, OutboxMessage)
        }
        grants_per_case = dict(
            db.execute(select(CaseKeyGrant.case_id, func.count()).group_by(CaseKeyGrant.case_id)).all()
        )
    assert counts["Case"] == counts["Incident"] == counts["StatisticsExtract"] == counts["RoutingRecord"] == 2
    assert len(set(grants_per_case.values())) == 1, "the same decision grants the same organisations"
    targets = len(from_loop.json()["routed_to"])
    assert counts["OutboxMessage"] == 2 * targets


def test_a_new_row_names_every_column_and_only_columns() -> None:
    """The intake's rows skip the models' defaults: a forgotten column must fail loudly, not store NULL."""
    complete: dict[str, object] = {
        "id": "m1",
        "topic": "t",
        "payload": {},
        "created_at": None,
        "available_at": None,
        "dispatched_at": None,
        "completed_at": None,
        "attempts": 0,
        "dead_at": None,
        "last_error": None,
    }
    assert new_row(OutboxMessage, **complete).values == complete
    with pytest.raises(TypeError, match=r"missing columns \['attempts'\]"):
        new_row(OutboxMessage, **{k: v for k, v in complete.items() if k != "attempts"})
    with pytest.raises(TypeError, match=r"unknown \['atempts'\]"):
        new_row(OutboxMessage, **complete, atempts=1)
