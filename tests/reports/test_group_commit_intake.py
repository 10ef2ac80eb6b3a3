"""Reports filed on the loop while another's statement is in flight go together in the next statement
(``service.group_commit``), on the real PostgreSQL: each report is stored whole and once, with the rows it
has when filed alone; one report's grant refused by its guard does not refuse the others; and a connection
lost with the group in flight leaves every report of it to look for itself, never to be stored twice.

The first report's statement is held (in a thread, the loop free) until the others are handed over, so the
group is the one the test means, not one that chance makes. Adversaries: a removed member or a disabled
organisation (no grant for them in a group either), and the reporter of a lost answer (one case, not two)."""

from __future__ import annotations

import asyncio
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

from service import db_raw, deps
from service.cases.models import Incident
from service.crypto import open_sealed
from service.identity.models import CaseKeyGrant, Organisation
from service.reports import endpoints, on_loop, repository
from service.reports.opened import ctx
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.intake_ways import cache_that_does_not_age, on_the_loop
from tests.support.retention import table_census

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

BAVARIA = "beratung-by"


def report(number: int, district: str = "09162") -> dict[str, Any]:
    return report_body(
        description=f"Drohbrief Nummer {number} im Rathaus.", district_ags=district, land=district[:2]
    )


class Held:
    """Records how many reports each statement on the loop carries, and in ``group`` holds the first
    report's statement in flight until the others wait for it; with ``lose`` set, the connection of the
    next group of several is ended for real (its server process), after PostgreSQL ran the statement or
    before it was sent."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        self.armed = False
        self.entered = threading.Event()
        self.released = threading.Event()
        self.lose: str | None = None  # "after sending" | "before sending"
        self.ended: list[int] = []
        together = repository.together
        execute = db_raw.execute_on_loop  # what on_loop calls
        raw_execute = psycopg.AsyncRawCursor.execute

        def counted(reports: Any) -> Any:
            self.sizes.append(len(reports))
            return together(reports)

        async def held(engine: Any, query: str, params: Any) -> None:
            if self.armed:
                self.armed = False
                self.entered.set()
                assert await asyncio.to_thread(self.released.wait, 10), "never released"
            await execute(engine, query, params)

        async def lost(cursor: psycopg.AsyncRawCursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
            if self.lose is None or self.ended or self.sizes[-1] < 2:
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
        first: dict[str, Any],
        then: list[dict[str, Any]],
        meanwhile: Callable[[], None] | None = None,
    ) -> tuple[httpx2.Response, list[httpx2.Response]]:
        """Files ``first``, holds its statement, files ``then`` meanwhile (they wait for it), does
        ``meanwhile``, releases it."""

        def post(body: dict[str, Any]) -> httpx2.Response:
            return client.post("/api/v1/reports", json=body)

        statements = client.app.state.loop_statements  # type: ignore[attr-defined]
        self.sizes.clear()
        self.armed = True
        with ThreadPoolExecutor(max_workers=len(then) + 1) as pool:
            leading = pool.submit(post, first)
            assert self.entered.wait(10), "the first report never reached its statement"
            following: list[Future[httpx2.Response]] = [pool.submit(post, body) for body in then]
            deadline = time.monotonic() + 10
            while statements.group.waiting() < len(then):
                assert time.monotonic() < deadline, "the others never reached the group"
                time.sleep(0.01)
            if meanwhile is not None:
                meanwhile()
            self.released.set()
            return leading.result(10), [answer.result(10) for answer in following]


@pytest.fixture
def held(client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Held:
    on_the_loop(client, runtime, monkeypatch)
    return Held(runtime, monkeypatch)


def added(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def case_of(runtime: Runtime, receipt: str) -> Any:
    with runtime.sessions() as db:
        return runtime.intake.open_case(db, receipt)


def test_reports_ready_while_one_is_in_flight_are_stored_together_each_whole_and_once(
    client: TestClient, runtime: Runtime, held: Held
) -> None:
    before = table_census(runtime)
    alone = client.post("/api/v1/reports", json=report(0))
    assert alone.status_code == 201, alone.text
    one = added(before, table_census(runtime))

    middle = table_census(runtime)
    first, others = held.group(client, report(1), [report(number) for number in (2, 3, 4)])

    assert [answer.status_code for answer in [first, *others]] == [201] * 4
    assert held.sizes == [1, 3]
    # Every table got four times the rows of a report alone: nothing left out, nothing twice.
    assert added(middle, table_census(runtime)) == {table: 4 * rows for table, rows in one.items()}
    receipts = [answer.json()["receipt"] for answer in [first, *others]]
    assert len(set(receipts)) == 4
    for answer in [first, *others]:
        body = answer.json()
        assert body["routed_to"] == alone.json()["routed_to"]
        assert body["key_holders"] == alone.json()["key_holders"]
    # Each receipt opens its own case, and what its reporter wrote is sealed under that case's key.
    cases = {case_of(runtime, receipt).case.id for receipt in receipts}
    assert len(cases) == 4
    for number, receipt in enumerate(receipts, start=1):
        with runtime.sessions() as db:
            opened = runtime.intake.open_case(db, receipt)
            incident = db.scalars(select(Incident).where(Incident.case_id == opened.case.id)).one()
            sealed = incident.payload
        assert b"Drohbrief" not in sealed
        payload = json.loads(
            open_sealed(opened.data_key, sealed, ctx("incident", opened.case.id, incident.id))
        )
        assert payload["description"] == f"Drohbrief Nummer {number} im Rathaus."


def test_one_report_refused_by_a_grants_guard_does_not_refuse_the_others_of_its_group(
    client: TestClient, runtime: Runtime, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both organisations' keys met (a Hessian report read its own), so both kinds compose on the loop.
    assert client.post("/api/v1/reports", json=report(0, district="06412")).status_code == 201
    in_a_session: list[int] = []
    original = deps.in_transaction  # what the endpoints module calls

    async def counted(*args: Any, **kwargs: Any) -> Any:
        in_a_session.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(endpoints, "in_transaction", counted)
    before = table_census(runtime)

    def disable_bavaria_meanwhile() -> None:
        # As another process, while the others wait: this process's read, which they were composed from,
        # still has it.
        with runtime.engine.begin() as connection:
            connection.execute(update(Organisation).where(Organisation.slug == BAVARIA).values(active=False))

    first, (bavarian, hessian) = held.group(
        client,
        report(1, district="06412"),
        [report(2), report(3, district="06412")],
        meanwhile=disable_bavaria_meanwhile,
    )

    assert [answer.status_code for answer in (first, bavarian, hessian)] == [201] * 3
    # The group was refused as a whole, sent again one by one: the Hessian one stored, the Bavarian one
    # refused and routed afresh in a session, without Bavaria.
    assert held.sizes[:4] == [1, 2, 1, 1]
    assert in_a_session == [1]
    assert added(before, table_census(runtime))["case_file"] == 3
    with runtime.sessions() as db:
        bavaria = db.scalar(select(Organisation.id).where(Organisation.slug == BAVARIA))
        for answer in (first, bavarian, hessian):
            case_id = runtime.intake.open_case(db, answer.json()["receipt"]).case.id
            holders = set(
                db.scalars(select(CaseKeyGrant.organisation_id).where(CaseKeyGrant.case_id == case_id))
            )
            assert holders
            assert bavaria not in holders
    assert not any("Bayern" in name for name in bavarian.json()["routed_to"])


@pytest.mark.parametrize("when", ["after sending", "before sending"])
def test_a_group_whose_connection_was_lost_is_never_stored_twice(
    client: TestClient, runtime: Runtime, held: Held, when: str
) -> None:
    # Stored before the answer was lost: each report of the group finds itself and gets its receipt. Not
    # stored: each gets the 503 that asks to send it again. Sent again by the server, either would be twice.
    held.lose = when
    before = table_census(runtime)
    first, others = held.group(client, report(1), [report(2), report(3)])

    assert first.status_code == 201
    cases = added(before, table_census(runtime)).get("case_file", 0)
    if when == "after sending":
        assert [answer.status_code for answer in others] == [201, 201]
        assert cases == 3
        for answer in others:
            assert case_of(runtime, answer.json()["receipt"]).case.id
    else:
        assert [answer.status_code for answer in others] == [503, 503]
        assert all("erneut" in answer.json()["detail"] for answer in others)
        assert cases == 1
    assert len(held.ended) == 1
    assert held.sizes == [1, 2]  # not sent again


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
