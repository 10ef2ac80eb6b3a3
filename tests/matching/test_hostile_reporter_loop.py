"""A hostile reporter loops withdraw → add over the reporter's JSON API, on both databases.

Their case names the same handle as another reporter's case. Withdrawal deletes the case's tokens, so for
``register`` every add after a withdrawal is a new match (one ``matching.match`` audit event each). What
keeps the other case's counsellors from being mailed on every turn, and the shared budget from being spent:

- At most one match notice per case and holding organisation a day (``MATCH_NOTICE_INTERVAL``): the
  filing's notice goes out, a match within the day schedules one more for the day's end, and the loop adds
  nothing after that, from any address. (Before session 10 each cycle told them again: 1 + receipt_limit // 2
  notices an hour per client address, up to the service-wide budget across addresses.)
- Identifiers that already have a token cost no look-up of the service-wide budget; a refused request
  (too many identifiers) costs none either. (Before, every resend charged all the case's identifiers again:
  one client spent the whole hour's budget in ten calls.)
- Over the receipt limit every call answers 429 and changes nothing.
- Over the matching budget the added identifiers wait sealed (``registered`` false) and nobody is told.

The rate limiter's windows are fixed hours (service/ratelimit/service.py): the clock it reads is pinned to
the middle of an hour so that a loop does not straddle two windows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.app import create_app
from service.audit.models import AuditEvent
from service.cases.models import Case
from service.config import Settings
from service.identity.models import CaseKeyGrant
from service.matching.models import PerpetratorToken
from service.matching.service import MATCH_ACTION, MATCH_NOTICE_INTERVAL, MATCH_TOPIC
from service.outbox.models import OutboxMessage
from service.reports.schemas import MAX_IDENTIFIERS
from service.runtime import Runtime
from tests.support.forms import file_json as file
from tests.support.organisations_template import OrganisationsTemplate

BAYERN_LAND, SACHSEN_LAND = "09", "14"
HANDLE = "max_m"
# The hostile reporter's client address; a second one shows that the receipt limit is per client.
HOSTILE = ("198.51.100.7", 50000)
SECOND_ADDRESS = ("203.0.113.9", 50000)


def report(land: str, handle: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "land": land,
        "type_codes": ["A1"],
        "description": "Drohbriefe.",
        "channel": "letter",
    }
    if handle is not None:
        body["perpetrator_identifiers"] = [{"kind": "handle", "value": handle, "platform": "instagram"}]
        body["consent_matching"] = True
    return body


def identifiers(*handles: str) -> dict[str, Any]:
    return {
        "perpetrator_identifiers": [
            {"kind": "handle", "value": handle, "platform": "instagram"} for handle in handles
        ],
        "consent_matching": True,
    }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a call of the loop can change: the tokens, the sealed identifiers, the notices, the audit."""

    tokens: frozenset[tuple[bytes, bytes]]
    ciphertext: bytes | None
    updated_at: datetime
    outbox: int
    audit: int


@dataclass(frozen=True, slots=True)
class Cases:
    hostile_receipt: str
    hostile: str
    other: str
    # The other case's active grants: each is told once per match (one outbox row each).
    other_holders: int


@pytest.fixture
def make_runtime(
    settings: Settings, organisations_template: OrganisationsTemplate, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Runtime]]:
    # Fixed-hour windows: pinned to the middle of the current hour, so a loop never straddles two windows.
    pinned = int(time.time()) // 3600 * 3600 + 1800
    monkeypatch.setattr(
        "service.ratelimit.service.time", SimpleNamespace(time=lambda: pinned, monotonic=time.monotonic)
    )
    made: list[Runtime] = []

    def make(**limits: int) -> Runtime:
        runtime = organisations_template.runtime(settings.model_copy(update=limits))
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.dispose()


def two_cases(client: TestClient, runtime: Runtime, *, hostile_names_it: bool) -> Cases:
    """The other reporter's case (Sachsen) names the handle; the hostile reporter's (Bayern) too, or not yet.
    Filed through the intake, which has a limit of its own: the receipt limit is untouched."""
    _, other = file(client, runtime, report(SACHSEN_LAND, HANDLE))
    receipt, hostile = file(client, runtime, report(BAYERN_LAND, "@Max_M" if hostile_names_it else None))
    with runtime.sessions() as db:
        holders = db.scalar(
            select(func.count()).where(CaseKeyGrant.case_id == other, CaseKeyGrant.active.is_(True))
        )
    assert holders, "the other case has holders to tell"
    return Cases(hostile_receipt=receipt, hostile=hostile, other=other, other_holders=int(holders))


def notices(runtime: Runtime, case_id: str) -> list[OutboxMessage]:
    """Outbox notices of a match addressed to the holders of ``case_id``."""
    with runtime.sessions() as db:
        rows = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == MATCH_TOPIC)).all()
        return [row for row in rows if row.payload["case_id"] == case_id]


def told(runtime: Runtime, case_id: str) -> int:
    return len(notices(runtime, case_id))


def match_events(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return int(db.scalar(select(func.count()).where(AuditEvent.action == MATCH_ACTION)) or 0)


def snapshot(runtime: Runtime, case_id: str) -> Snapshot:
    with runtime.sessions() as db:
        case = db.get(Case, case_id)
        assert case is not None
        return Snapshot(
            tokens=frozenset((row.token, row.case_ref) for row in db.scalars(select(PerpetratorToken)).all()),
            ciphertext=case.perpetrator_ciphertext,
            updated_at=case.updated_at,
            outbox=int(db.scalar(select(func.count()).select_from(OutboxMessage)) or 0),
            audit=int(db.scalar(select(func.count()).select_from(AuditEvent)) or 0),
        )


def caller(client: TestClient, receipt: str) -> Callable[[str], int]:
    """One step of the loop: "withdraw", or "add" (the handle again, as another way of writing it)."""

    def step(kind: str) -> int:
        if kind == "withdraw":
            response = client.post("/api/v1/reports/identifiers/withdraw", json={"receipt": receipt})
        else:
            response = client.post(
                "/api/v1/reports/identifiers", json={"receipt": receipt, **identifiers("MAX_M ")}
            )
            if response.status_code == 200:
                assert response.json() == {"registered": True}
        return response.status_code

    return step


RECEIPT_LIMIT = 6
# One withdraw → add cycle is two receipt calls.
CYCLES = RECEIPT_LIMIT // 2


def test_a_withdraw_add_loop_tells_the_other_holders_once_now_and_once_at_the_end_of_the_day(
    make_runtime: Callable[..., Runtime],
) -> None:
    """The filing's match tells the other case's holders at once; the first add after a withdrawal is a new
    match and schedules one notice for a day after the first; every further turn, from this address or
    another, adds none. Each match is still recorded in the audit log. Over the receipt limit: 429."""
    runtime = make_runtime(receipt_limit_per_hour=RECEIPT_LIMIT, matching_limit_per_hour=1000)
    app = create_app(runtime=runtime)
    with TestClient(app, base_url="http://127.0.0.1", client=HOSTILE) as client:
        cases = two_cases(client, runtime, hostile_names_it=True)
        assert told(runtime, cases.other) == cases.other_holders, "the filing's match"
        assert match_events(runtime) == 1
        step = caller(client, cases.hostile_receipt)
        told_after: list[int] = []
        statuses = []
        for kind in ["withdraw", "add"] * CYCLES:
            statuses.append(step(kind))
            told_after.append(told(runtime, cases.other) // cases.other_holders)
        assert statuses == [204, 200] * CYCLES
        assert told_after == [1, 2, 2, 2, 2, 2]
        assert match_events(runtime) == 1 + CYCLES, "every match is in the audit log"
        assert [step("withdraw"), step("add"), step("withdraw")] == [429, 429, 429]
    with TestClient(app, base_url="http://127.0.0.1", client=SECOND_ADDRESS) as elsewhere:
        step = caller(elsewhere, cases.hostile_receipt)
        assert [step(kind) for kind in ["withdraw", "add"] * CYCLES] == [204, 200] * CYCLES
    assert told(runtime, cases.other) == 2 * cases.other_holders, "another address tells nobody again"
    assert match_events(runtime) == 1 + 2 * CYCLES
    # The second notice of each holder waits for the end of the day that began with the first.
    rows = sorted(notices(runtime, cases.other), key=lambda row: row.available_at)
    first, scheduled = rows[: cases.other_holders], rows[cases.other_holders :]
    assert all(row.available_at == row.created_at for row in first)
    for row in scheduled:
        told_first = next(f for f in first if f.payload["organisation_id"] == row.payload["organisation_id"])
        assert row.available_at == told_first.available_at + MATCH_NOTICE_INTERVAL
        assert row.dispatched_at is None, "not sent before its time"
    # The hostile reporter's own counsellors are held to the same rule.
    assert told(runtime, cases.hostile) <= 2 * len(
        {row.payload["organisation_id"] for row in notices(runtime, cases.hostile)}
    )


def test_a_match_after_the_day_is_told_at_once(make_runtime: Callable[..., Runtime]) -> None:
    """The interval is a day from the last notice: once it is over, a new match tells at once again."""
    runtime = make_runtime(receipt_limit_per_hour=RECEIPT_LIMIT, matching_limit_per_hour=1000)
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", client=HOSTILE) as client:
        cases = two_cases(client, runtime, hostile_names_it=True)
        with runtime.sessions() as db:  # the filing's notices were sent a day and a minute ago
            for row in db.scalars(select(OutboxMessage).where(OutboxMessage.topic == MATCH_TOPIC)):
                row.available_at = row.created_at = (
                    row.available_at - MATCH_NOTICE_INTERVAL - timedelta(minutes=1)
                )
            db.commit()
        step = caller(client, cases.hostile_receipt)
        assert [step("withdraw"), step("add")] == [204, 200]
    now = [row for row in notices(runtime, cases.other) if row.available_at == row.created_at]
    assert len(now) == 2 * cases.other_holders, "told again, at once"
    assert told(runtime, cases.other) == 2 * cases.other_holders, "nothing scheduled"


def test_the_same_identifiers_sent_again_without_a_withdrawal_tell_nobody(
    make_runtime: Callable[..., Runtime],
) -> None:
    """The memory ``register`` has: a token already stored for the case is no new match. Only withdrawal
    forgets it (the test above)."""
    runtime = make_runtime(receipt_limit_per_hour=RECEIPT_LIMIT, matching_limit_per_hour=1000)
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", client=HOSTILE) as client:
        cases = two_cases(client, runtime, hostile_names_it=False)
        step = caller(client, cases.hostile_receipt)
        assert [step("add") for _ in range(RECEIPT_LIMIT)] == [200] * RECEIPT_LIMIT
    assert told(runtime, cases.other) == cases.other_holders, "told once, at the first add"
    assert match_events(runtime) == 1


def test_over_the_receipt_limit_a_call_answers_429_and_changes_nothing(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime(receipt_limit_per_hour=2, matching_limit_per_hour=1000)
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", client=HOSTILE) as client:
        cases = two_cases(client, runtime, hostile_names_it=True)
        step = caller(client, cases.hostile_receipt)
        assert [step("withdraw"), step("add")] == [204, 200]
        before = snapshot(runtime, cases.hostile)
        assert before.tokens, "the hostile case's token is stored again"
        receipt = {"receipt": cases.hostile_receipt}
        # A withdrawal would delete the tokens; an add of a new identifier would seal it and store a token.
        assert client.post("/api/v1/reports/identifiers/withdraw", json=receipt).status_code == 429
        added = client.post("/api/v1/reports/identifiers", json={**receipt, **identifiers("ganz_neu")})
        assert added.status_code == 429
        assert (
            client.post("/api/v1/reports/identifiers", json={**receipt, **identifiers("MAX_M")}).status_code
            == 429
        )
        assert snapshot(runtime, cases.hostile) == before
        with runtime.sessions() as db:
            case = db.get(Case, cases.hostile)
            assert case is not None
            typed = runtime.intake.identifiers_of(
                case, runtime.intake.open_case(db, cases.hostile_receipt).data_key
            )
        assert [item.value for item in typed] == ["MAX_M"], "the 429 add sealed nothing"


def test_over_the_matching_budget_added_identifiers_wait_sealed_and_nobody_is_told(
    make_runtime: Callable[..., Runtime],
) -> None:
    """Budget of 4 look-ups: the two filings spend 2 (one match), two cycles 2 more (two more matches, one
    notice scheduled); from then on each add answers registered=false, the identifiers are sealed without a
    token, and the other holders are not told, however long the loop goes on within the receipt limit."""
    runtime = make_runtime(receipt_limit_per_hour=100, matching_limit_per_hour=4)
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", client=HOSTILE) as client:
        cases = two_cases(client, runtime, hostile_names_it=True)
        step = caller(client, cases.hostile_receipt)
        assert [step(kind) for kind in ["withdraw", "add"] * 2] == [204, 200] * 2
        assert told(runtime, cases.other) == 2 * cases.other_holders
        assert match_events(runtime) == 3
        for _ in range(5):
            assert step("withdraw") == 204
            waited = client.post(
                "/api/v1/reports/identifiers", json={"receipt": cases.hostile_receipt, **identifiers("MAX_M")}
            )
            assert waited.status_code == 200
            assert waited.json() == {"registered": False}
            with runtime.sessions() as db:
                case = db.get(Case, cases.hostile)
                assert case is not None
                assert case.perpetrator_ciphertext is not None, "sealed, waiting"
                assert not runtime.matching.registered(db, cases.hostile), "no token"
    assert told(runtime, cases.other) == 2 * cases.other_holders
    assert match_events(runtime) == 3


def test_resending_identifiers_costs_no_look_up_of_the_shared_budget(
    make_runtime: Callable[..., Runtime],
) -> None:
    """Identifiers with a token already cost nothing: one client resending the same nine identifiers ten
    times spends nine look-ups, not 183 of the hour's 200, and another reporter's identifiers are still
    looked up at once. (Before session 10 each resend charged every identifier of the case again.)"""
    runtime = make_runtime(receipt_limit_per_hour=20, matching_limit_per_hour=13)
    nine = [f"{HANDLE}_{number}" for number in range(9)]
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", client=HOSTILE) as client:
        cases = two_cases(client, runtime, hostile_names_it=True)  # 2 look-ups, one match
        body = {"receipt": cases.hostile_receipt, **identifiers(*nine)}
        answers = [client.post("/api/v1/reports/identifiers", json=body).json() for _ in range(11)]
    assert answers == [{"registered": True}] * 11  # 2 + 9 = 11 of 13
    assert told(runtime, cases.other) == cases.other_holders
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", client=SECOND_ADDRESS) as other:
        _, third = file(other, runtime, report(SACHSEN_LAND, "jemand_anders"))  # 12 of 13
    with runtime.sessions() as db:
        assert runtime.matching.registered(db, third), "looked up at once: the budget was not spent"


def test_a_refused_add_spends_no_look_up(make_runtime: Callable[..., Runtime]) -> None:
    """More identifiers than one case may hold (those held and those sent): 422, nothing kept, and the
    shared budget untouched; before session 10 the look-ups were reserved before the size was checked, and
    three refused requests here spent the budget the valid one then needed."""
    held = [f"{HANDLE}_{number}" for number in range(5)]
    too_many = [f"neu_{number}" for number in range(MAX_IDENTIFIERS - len(held) + 1)]
    # The other case's filing (1), the five held (5), the two added at the end (2).
    runtime = make_runtime(receipt_limit_per_hour=20, matching_limit_per_hour=1 + len(held) + 2)
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", client=HOSTILE) as client:
        cases = two_cases(client, runtime, hostile_names_it=False)
        receipt = {"receipt": cases.hostile_receipt}
        first = client.post("/api/v1/reports/identifiers", json={**receipt, **identifiers(*held)})
        assert first.json() == {"registered": True}
        before = snapshot(runtime, cases.hostile)
        for _ in range(3):
            refused = client.post("/api/v1/reports/identifiers", json={**receipt, **identifiers(*too_many)})
            assert refused.status_code == 422
            assert "perpetrator_identifiers" in refused.text
        assert snapshot(runtime, cases.hostile) == before, "nothing kept"
        added = client.post("/api/v1/reports/identifiers", json={**receipt, **identifiers("neu_a", "neu_b")})
        assert added.json() == {"registered": True}, "the two look-ups were still there"
