"""Reports filed on the loop while every statement of the process is in flight go together in the next
statement (``service.group_commit``), on the real PostgreSQL: each report is stored whole and once, with the
rows it has when filed alone; one report's grant refused by its guard does not refuse the others; a
connection lost with the group in flight leaves every report of it to look for itself, never to be stored
twice; and a report that waits too long for a statement is a 503, stored nowhere.

The statements a process may have in flight at once are held (in a thread, the loop free) until the next
reports wait for a free one, so the group is the one the test means, not one that chance makes.
Adversaries: a removed member or a disabled organisation (no grant for them in a group either), and the
reporter of a lost answer (one case, not two)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx2
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from service import db_raw
from service.cases.models import Incident
from service.crypto import open_sealed
from service.identity.models import CaseKeyGrant, Organisation
from service.reports import on_loop, repository
from service.reports.opened import ctx
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.intake_ways import cache_that_does_not_age, on_the_loop, sessions_used
from tests.support.retention import table_census

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

BAVARIA = "beratung-by"
BAVARIAN = "09162"  # Munich: Bavaria's counselling
HESSIAN = "06412"  # Frankfurt: Hesse's


def report(number: int, district: str = BAVARIAN) -> dict[str, Any]:
    return report_body(
        description=f"Drohbrief Nummer {number} im Rathaus.", district_ags=district, land=district[:2]
    )


# How many reports the statement being sent carries (set where the sender puts it together, in its task).
CARRYING: contextvars.ContextVar[int] = contextvars.ContextVar("carrying", default=0)


class Held:
    """Records how many reports each statement on the loop carries, and in ``group`` holds every statement
    a process may have in flight until the next reports wait for a free one; with ``lose`` set, the
    connection of the next group of several is ended for real (its server process), after PostgreSQL ran
    the statement or before it was sent."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        self.to_hold = 0
        self.entered = threading.Event()
        self.released = threading.Event()
        self.lose: str | None = None  # "after sending" | "before sending"
        self.ended: list[int] = []
        together = repository.together
        execute = db_raw.execute_on_loop  # what on_loop calls
        raw_execute = psycopg.AsyncRawCursor.execute

        def counted(reports: Any) -> Any:
            self.sizes.append(len(reports))
            CARRYING.set(len(reports))
            return together(reports)

        async def held(engine: Any, query: str, params: Any) -> None:
            if self.to_hold:  # on the loop's thread only
                self.to_hold -= 1
                if not self.to_hold:
                    self.entered.set()
                assert await asyncio.to_thread(self.released.wait, 10), "never released"
            await execute(engine, query, params)

        async def lost(cursor: psycopg.AsyncRawCursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
            if self.lose is None or self.ended or CARRYING.get() < 2:
                return await raw_execute(cursor, query, *args, **kwargs)
            if self.lose == "after sending":
                await raw_execute(cursor, query, *args, **kwargs)
            self.ended.append(cursor.connection.info.backend_pid)
            with runtime.engine.connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": self.ended[0]})
            return await raw_execute(cursor, "SELECT 1")  # meets the closed connection: the real error path

        monkeypatch.setattr(repository, "together", counted)
        monkeypatch.setattr(on_loop, "execute_on_loop", held)
        monkeypatch.setattr(psycopg.AsyncRawCursor, "execute", lost)

    def group(
        self,
        client: TestClient,
        first: list[dict[str, Any]],
        then: list[dict[str, Any]],
        meanwhile: Callable[[], None] | None = None,
    ) -> tuple[list[httpx2.Response], list[httpx2.Response]]:
        """Files ``first`` (one report per statement a process may have in flight) and holds their
        statements, files ``then`` meanwhile (they wait for a free statement), does ``meanwhile``, and
        releases the first."""
        assert len(first) == on_loop.STATEMENTS_AT_ONCE

        def post(body: dict[str, Any]) -> httpx2.Response:
            return client.post("/api/v1/reports", json=body)

        statements = client.app.state.loop_statements  # type: ignore[attr-defined]
        self.sizes.clear()
        self.entered.clear()
        self.released.clear()
        self.to_hold = len(first)
        with ThreadPoolExecutor(max_workers=len(first) + len(then)) as pool:
            leading = [pool.submit(post, body) for body in first]
            assert self.entered.wait(10), "the first reports never reached their statements"
            following: list[Future[httpx2.Response]] = [pool.submit(post, body) for body in then]
            deadline = time.monotonic() + 10
            while statements.group.waiting() < len(then) and not any(answer.done() for answer in following):
                assert time.monotonic() < deadline, "the others never reached the group"
                time.sleep(0.01)
            assert statements.group.waiting() == len(then), "the others did not wait for a statement"
            if meanwhile is not None:
                meanwhile()
            self.released.set()
            return [answer.result(10) for answer in leading], [answer.result(10) for answer in following]


@pytest.fixture
def held(client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Held:
    on_the_loop(client, runtime, monkeypatch)
    return Held(runtime, monkeypatch)


def added(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def case_of(runtime: Runtime, receipt: str) -> Any:
    with runtime.sessions() as db:
        return runtime.intake.open_case(db, receipt)


def test_reports_ready_while_every_statement_is_busy_are_stored_together_each_whole_and_once(
    client: TestClient, runtime: Runtime, held: Held
) -> None:
    # A report alone of each kind (Bavaria's organisations, Hesse's), for its rows and its answer.
    alone: dict[str, tuple[dict[str, int], dict[str, Any]]] = {}
    for district in (BAVARIAN, HESSIAN):
        before = table_census(runtime)
        answer = client.post("/api/v1/reports", json=report(0, district))
        assert answer.status_code == 201, answer.text
        alone[district] = (added(before, table_census(runtime)), answer.json())

    middle = table_census(runtime)
    districts = [BAVARIAN, HESSIAN, BAVARIAN, HESSIAN]
    bodies = [report(number, district) for number, district in enumerate(districts, start=3)]
    firsts, others = held.group(client, [report(1), report(2)], bodies)

    assert [answer.status_code for answer in [*firsts, *others]] == [201] * 6
    assert held.sizes == [1, 1, 4]
    # Every table got the rows of four Bavarian reports alone and two Hessian ones: none left out, none twice.
    expected = {
        table: 4 * alone[BAVARIAN][0].get(table, 0) + 2 * alone[HESSIAN][0].get(table, 0)
        for table in alone[BAVARIAN][0].keys() | alone[HESSIAN][0].keys()
    }
    assert added(middle, table_census(runtime)) == expected
    for answer, district in zip(others, districts, strict=True):
        assert answer.json()["routed_to"] == alone[district][1]["routed_to"]
        assert answer.json()["key_holders"] == alone[district][1]["key_holders"]
    # Each receipt opens its own case, and what its reporter wrote is sealed under that case's key.
    receipts = [answer.json()["receipt"] for answer in others]
    assert len({case_of(runtime, receipt).case.id for receipt in receipts}) == 4
    for body, receipt in zip(bodies, receipts, strict=True):
        with runtime.sessions() as db:
            opened = runtime.intake.open_case(db, receipt)
            incident = db.scalars(select(Incident).where(Incident.case_id == opened.case.id)).one()
            sealed = incident.payload
        assert b"Drohbrief" not in sealed
        payload = json.loads(
            open_sealed(opened.data_key, sealed, ctx("incident", opened.case.id, incident.id))
        )
        assert payload["description"] == body["description"]


def test_one_report_refused_by_a_grants_guard_does_not_refuse_the_others_of_its_group(
    client: TestClient, runtime: Runtime, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both organisations' keys met (a Hessian report read its own), so both kinds compose on the loop.
    assert client.post("/api/v1/reports", json=report(0, HESSIAN)).status_code == 201
    in_a_session = sessions_used(monkeypatch)
    before = table_census(runtime)

    def disable_bavaria_meanwhile() -> None:
        # As another process, while the others wait: this process's read, which they were composed from,
        # still has it.
        with runtime.engine.begin() as connection:
            connection.execute(update(Organisation).where(Organisation.slug == BAVARIA).values(active=False))

    firsts, (bavarian, hessian) = held.group(
        client,
        [report(1, HESSIAN), report(2, HESSIAN)],
        [report(3), report(4, HESSIAN)],
        meanwhile=disable_bavaria_meanwhile,
    )

    assert [answer.status_code for answer in (*firsts, bavarian, hessian)] == [201] * 4
    # The group was refused as a whole, sent again one by one: the Hessian one stored, the Bavarian one
    # refused and routed afresh in a session, without Bavaria.
    assert held.sizes == [1, 1, 2, 1, 1]
    assert in_a_session == [1]
    assert added(before, table_census(runtime))["case_file"] == 4
    with runtime.sessions() as db:
        bavaria = db.scalar(select(Organisation.id).where(Organisation.slug == BAVARIA))
        for answer in (*firsts, bavarian, hessian):
            case_id = runtime.intake.open_case(db, answer.json()["receipt"]).case.id
            holders = set(
                db.scalars(select(CaseKeyGrant.organisation_id).where(CaseKeyGrant.case_id == case_id))
            )
            assert holders
            assert bavaria not in holders
    assert not any("Bayern" in name for name in bavarian.json()["routed_to"])


@pytest.mark.parametrize("when", ["after sending", "before sending"])
def test_a_group_whose_connection_was_lost_is_never_stored_twice(
    client: TestClient, runtime: Runtime, held: Held, when: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stored before the answer was lost: each report of the group gets its receipt. Not stored: each gets
    # the 503 that asks to send it again. Sent again by the server, either would be twice. One look on a new
    # connection tells for the whole group (one statement: all of it stored or none).
    held.lose = when
    looks: list[str] = []
    look = repository.case_by_id

    def counted(session: Any, case_id: str) -> Any:
        looks.append(case_id)
        return look(session, case_id)

    monkeypatch.setattr(repository, "case_by_id", counted)
    before = table_census(runtime)
    firsts, others = held.group(client, [report(1), report(2)], [report(3), report(4)])

    assert [answer.status_code for answer in firsts] == [201, 201]
    cases = added(before, table_census(runtime)).get("case_file", 0)
    if when == "after sending":
        assert [answer.status_code for answer in others] == [201, 201]
        assert cases == 4
        for answer in others:
            assert case_of(runtime, answer.json()["receipt"]).case.id
    else:
        assert [answer.status_code for answer in others] == [503, 503]
        assert all("erneut" in answer.json()["detail"] for answer in others)
        assert cases == 2
    assert len(held.ended) == 1
    assert held.sizes == [1, 1, 2]  # not sent again
    assert len(looks) == 1


def test_a_report_that_waits_too_long_for_a_statement_is_a_503_and_stored_nowhere(
    client: TestClient, runtime: Runtime, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every statement of the process held up: the report is given up as the pool's timeout gave up a
    # request, with the 503 that asks to send it again, and nothing of it is stored later.
    monkeypatch.setattr(on_loop, "POOL_TIMEOUT_SECONDS", 1.0)
    app = client.app
    app.state.loop_statements = on_loop.LoopStatements(app.state.async_engine)  # type: ignore[attr-defined]
    before = table_census(runtime)

    def wait_past_the_limit() -> None:
        time.sleep(1.5)

    firsts, (late,) = held.group(client, [report(1), report(2)], [report(3)], meanwhile=wait_past_the_limit)

    assert [answer.status_code for answer in firsts] == [201, 201]
    assert late.status_code == 503
    assert "erneut" in late.json()["detail"]
    assert added(before, table_census(runtime))["case_file"] == 2
    assert held.sizes == [1, 1]


def test_a_quiet_service_sends_each_report_alone(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_that_does_not_age(runtime, monkeypatch)
    assert client.post("/api/v1/reports", json=report(0)).status_code == 201
    sizes: list[int] = []
    together = repository.together

    def counted(reports: Any) -> Any:
        sizes.append(len(reports))
        return together(reports)

    monkeypatch.setattr(repository, "together", counted)
    for number in (1, 2, 3):
        assert client.post("/api/v1/reports", json=report(number)).status_code == 201
    assert sizes == [1, 1, 1]
