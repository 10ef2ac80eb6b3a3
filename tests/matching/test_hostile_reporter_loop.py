"""A hostile reporter loops withdraw → add over the reporter's JSON API, on both databases.

Their case names the same handle as another reporter's case; each time the identifiers are added again the
other case's holders are told. What bounds that, as the code stands (service/matching/service.py
``register``: "a match fires only for tokens not stored for this case before", and withdrawal deletes the
case's tokens):

- There is **no per-pair memory**: withdrawal forgets the tokens, so every add after a withdrawal is a new
  match and tells the other case's holders again (one outbox row per active grant, one ``matching.match``
  audit event). The only bounds are the client's receipt limit (both calls count against it: one cycle is
  two calls, so at most ``receipt_limit // 2`` more notices per hour and client address) and the
  service-wide hourly matching budget (one look-up per re-added identifier), which a hostile reporter
  with several addresses can spend alone.
- Over the receipt limit every call answers 429 and changes nothing.
- Over the matching budget the added identifiers wait sealed (``registered`` false) and nobody is told.

The rate limiter's windows are fixed hours (service/ratelimit/service.py): the clock it reads is pinned to
the middle of an hour so that a loop does not straddle two windows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
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
from service.matching.service import MATCH_ACTION, MATCH_TOPIC
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
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


def file(client: TestClient, runtime: Runtime, body: dict[str, Any]) -> tuple[str, str]:
    response = client.post("/api/v1/reports", json=body)
    assert response.status_code == 201, response.text
    receipt = str(response.json()["receipt"])
    with runtime.sessions() as db:
        return receipt, runtime.intake.open_case(db, receipt).case.id


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


def told(runtime: Runtime, case_id: str) -> int:
    """Outbox notices of a match addressed to the holders of ``case_id``."""
    with runtime.sessions() as db:
        rows = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == MATCH_TOPIC)).all()
        return sum(1 for row in rows if row.payload["case_id"] == case_id)


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


def test_each_withdraw_add_cycle_tells_the_other_holders_again_bounded_only_by_the_receipt_limit(
    make_runtime: Callable[..., Runtime],
) -> None:
    """WEAKNESS (no per-pair memory): the holders of the other case are told once at the filing and then
    once more for every withdraw → add cycle, because withdrawal deletes the tokens that ``register``
    remembers a match by. Per client address and hour that is ``1 + receipt_limit // 2`` notices (here
    1 + 3) per holder of the other case, as many ``matching.match`` events; a second address gets
    ``receipt_limit // 2`` more. With the defaults (20 receipt calls per hour) that is 10 notices an hour per
    address, up to the service-wide matching budget (200 look-ups an hour) across addresses."""
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
        # Every add after a withdrawal told the other holders again: no memory of the pair.
        assert told_after == [1, 2, 2, 3, 3, 4]
        assert match_events(runtime) == 1 + CYCLES
        # Used up: the loop stops telling anyone for this client in this hour.
        assert [step("withdraw"), step("add"), step("withdraw")] == [429, 429, 429]
        assert told(runtime, cases.other) == (1 + CYCLES) * cases.other_holders
        assert match_events(runtime) == 1 + CYCLES
    # The limit is per client address: the same receipt from another address loops on.
    with TestClient(app, base_url="http://127.0.0.1", client=SECOND_ADDRESS) as elsewhere:
        step = caller(elsewhere, cases.hostile_receipt)
        assert [step(kind) for kind in ["withdraw", "add"] * CYCLES] == [204, 200] * CYCLES
        assert step("withdraw") == 429
    assert told(runtime, cases.other) == (1 + 2 * CYCLES) * cases.other_holders
    assert match_events(runtime) == 1 + 2 * CYCLES


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
    """Budget of 4 look-ups: the two filings spend 2 (one match), two cycles 2 more (two more matches);
    from then on each add answers registered=false, the identifiers are sealed without a token, and the
    other holders are not told, however long the loop goes on within the receipt limit."""
    runtime = make_runtime(receipt_limit_per_hour=100, matching_limit_per_hour=4)
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", client=HOSTILE) as client:
        cases = two_cases(client, runtime, hostile_names_it=True)
        step = caller(client, cases.hostile_receipt)
        assert [step(kind) for kind in ["withdraw", "add"] * 2] == [204, 200] * 2
        assert told(runtime, cases.other) == 3 * cases.other_holders
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
    assert told(runtime, cases.other) == 3 * cases.other_holders
    assert match_events(runtime) == 3


def test_resending_identifiers_spends_the_service_wide_budget_without_looking_anything_up(
    make_runtime: Callable[..., Runtime],
) -> None:
    """WEAKNESS (budget exhaustion by one client): ``add_identifiers`` reserves one look-up for every
    identifier the case already holds plus every one sent, even when all are stored already. With ten
    identifiers held, each resend costs 20 look-ups: with the default limits (20 receipt calls an hour,
    200 look-ups an hour service-wide) one client address spends the whole budget in 10 calls, and every
    other reporter's identifiers wait for the next hour. Nobody is told by the resends."""
    runtime = make_runtime(receipt_limit_per_hour=20, matching_limit_per_hour=200)
    nine = [f"{HANDLE}_{number}" for number in range(9)]
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", client=HOSTILE) as client:
        cases = two_cases(client, runtime, hostile_names_it=True)  # 2 look-ups, one match
        body = {"receipt": cases.hostile_receipt, **identifiers(*nine)}
        # 1 held + 9 sent = 10 look-ups; then 10 held + 9 sent (the same) = 19 each.
        answers = [client.post("/api/v1/reports/identifiers", json=body).json() for _ in range(11)]
    assert answers[:10] == [{"registered": True}] * 10  # 2 + 10 + 9 * 19 = 183 of 200
    assert answers[10] == {"registered": False}, "202 > 200: spent, though nothing new was looked up"
    assert told(runtime, cases.other) == cases.other_holders
    # Another reporter's identifiers now wait: the budget is gone for the hour.
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1", client=SECOND_ADDRESS) as other:
        _, third = file(other, runtime, report(SACHSEN_LAND, "jemand_anders"))
    with runtime.sessions() as db:
        assert not runtime.matching.registered(db, third)
