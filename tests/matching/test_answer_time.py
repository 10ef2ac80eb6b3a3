"""The hostile reporter times the answer: a request whose identifiers match another case must not answer
later than one whose identifiers match nothing (``service.matching.answer_time``).

Adversary: someone naming a person as perpetrator (the perpetrator themself, to learn whether anyone has
reported them). A match does more before the answer than no match (it reads who holds the other case, tells
them and audits the match). To make that difference plain, a match is slowed here by ``SLOWER`` (far more
than it costs on its own, far less than the pad); every way in that may look up identifiers must then answer
at the same time for a match and for none. Negative control: with the pad at zero the same requests differ
by the slowdown, so the test would see a leak of that size.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.matching import answer_time
from service.matching.service import MatchingService
from service.runtime import Runtime
from tests.support.forms import csrf_token, report_body, submission_token
from tests.support.forms import file_json as file

SLOWER = 0.08
# The timing tests run on PostgreSQL, as served; the pad does not depend on the database.
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
ROUNDS = 5
OTHER_HANDLE = "max_m"


def identifiers(handle: str) -> dict[str, Any]:
    return {
        "perpetrator_identifiers": [{"kind": "handle", "value": handle, "platform": "instagram"}],
        "consent_matching": True,
    }


def report(handle: str) -> dict[str, Any]:
    return report_body(land="09", description="Drohbriefe.", channel="letter", **identifiers(handle))


@pytest.fixture
def slow_match(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each match that fires (and only a match) takes ``SLOWER`` longer; the list counts them."""
    fired: list[int] = []
    original = MatchingService._announce

    def slowed(self: MatchingService, session: Any, case_ids: list[str]) -> None:
        fired.append(1)
        time.sleep(SLOWER)
        original(self, session, case_ids)

    monkeypatch.setattr(MatchingService, "_announce", slowed)
    return fired


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def match_and_miss(prepare: Callable[[str], Callable[[], Any]]) -> tuple[list[float], list[float]]:
    """The timed call ``prepare`` returns, with the other case's handle and with one nobody named, in turns
    whose order alternates (a new handle each turn, so that the miss stays a miss and each match is new).
    ``prepare`` does what is not timed (a case to add identifiers to, a form page, a sign-in)."""
    matches: list[float] = []
    misses: list[float] = []
    for turn in range(ROUNDS):
        kinds = [(OTHER_HANDLE, matches), (f"niemand_{turn}_{time.monotonic_ns()}", misses)]
        for handle, times in kinds if turn % 2 else reversed(kinds):
            times.append(timed(prepare(handle)))
    return matches, misses


def assert_same_time(matches: list[float], misses: list[float]) -> None:
    pad = answer_time.MATCHING_ANSWER_SECONDS
    assert min(matches + misses) >= pad, "answered before the pad"
    # Compared by their fastest answers: load on the machine only ever adds time (an attacker measures the
    # same way). The slowdown is 80 ms; what is left of it must be the test client's noise, not the match.
    assert abs(min(matches) - min(misses)) < SLOWER / 2, (matches, misses)


@ON_POSTGRES
def test_a_report_with_identifiers_answers_at_the_same_time_match_or_not(
    client: TestClient, runtime: Runtime, slow_match: list[int]
) -> None:
    file(client, runtime, report(OTHER_HANDLE))  # the other reporter's case
    fired_before = len(slow_match)

    def filed(handle: str) -> Callable[[], None]:
        def call() -> None:
            assert client.post("/api/v1/reports", json=report(handle)).status_code == 201

        return call

    matches, misses = match_and_miss(filed)
    assert len(slow_match) - fired_before == ROUNDS, "each report naming the handle matched"
    assert_same_time(matches, misses)


@ON_POSTGRES
def test_identifiers_added_later_answer_at_the_same_time_match_or_not(
    client: TestClient, runtime: Runtime, slow_match: list[int]
) -> None:
    file(client, runtime, report(OTHER_HANDLE))
    fired_before = len(slow_match)

    def added(handle: str) -> Callable[[], Any]:
        # A case of the hostile reporter's to add them to, filed before the clock starts.
        receipt, _ = file(client, runtime, report_body(land="09", description="Drohbriefe."))
        body = {"receipt": receipt, **identifiers(handle)}
        return lambda: client.post("/api/v1/reports/identifiers", json=body).raise_for_status()

    matches, misses = match_and_miss(added)
    assert len(slow_match) - fired_before == ROUNDS
    assert_same_time(matches, misses)


@ON_POSTGRES
def test_the_report_form_with_identifiers_answers_at_the_same_time_match_or_not(
    client: TestClient, runtime: Runtime, slow_match: list[int]
) -> None:
    file(client, runtime, report(OTHER_HANDLE))
    fired_before = len(slow_match)

    def sent(handle: str) -> Callable[[], None]:
        page = client.get("/melden").text  # not timed: the form's own page
        form = {
            "csrf_token": csrf_token(page),
            "submission_token": submission_token(page),
            "land": "09",
            "type_codes": "A1",
            "description": "Drohbriefe.",
            "channel": "letter",
            "match_handle": handle,
            "match_platform": "instagram",
            "consent_matching": "1",
        }

        def call() -> None:
            answer = client.post("/melden", data=form)
            assert answer.status_code == 201, answer.text[:300]

        return call

    matches, misses = match_and_miss(sent)
    assert len(slow_match) - fired_before == ROUNDS
    assert_same_time(matches, misses)


@ON_POSTGRES
def test_identifiers_added_on_fall_answer_at_the_same_time_match_or_not(
    client: TestClient, runtime: Runtime, slow_match: list[int]
) -> None:
    file(client, runtime, report(OTHER_HANDLE))
    fired_before = len(slow_match)

    def added(handle: str) -> Callable[[], None]:
        # The hostile reporter's own case, signed in to: not timed.
        receipt, _ = file(client, runtime, report_body(land="09", description="Drohbriefe."))
        signed_in = client.post(
            "/fall/anmelden",
            data={"csrf_token": csrf_token(client.get("/fall").text), "receipt": receipt},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303
        form = {
            "csrf_token": csrf_token(client.get("/fall").text),
            "action": "save",
            "match_handle": handle,
            "match_platform": "instagram",
            "consent_matching": "1",
        }

        def call() -> None:
            saved = client.post("/fall/merkmale", data=form, follow_redirects=False)
            assert saved.headers["location"].startswith("/fall?notice=identifiers_saved")

        return call

    matches, misses = match_and_miss(added)
    assert len(slow_match) - fired_before == ROUNDS
    assert_same_time(matches, misses)


def test_the_reporters_sign_in_answers_no_sooner_than_the_pad(client: TestClient, runtime: Runtime) -> None:
    # The sign-in registers identifiers that waited (a used-up budget, a rotated matching key), so it answers
    # at the fixed time whether there were any or not.
    receipt, _ = file(client, runtime, report_body(land="09", description="Drohbriefe."))
    form = {"csrf_token": csrf_token(client.get("/fall").text), "receipt": receipt}
    started = time.perf_counter()
    signed_in = client.post("/fall/anmelden", data=form, follow_redirects=False)
    assert time.perf_counter() - started >= answer_time.MATCHING_ANSWER_SECONDS
    assert signed_in.status_code == 303


@ON_POSTGRES
def test_without_the_pad_the_same_requests_tell_a_match_apart(
    client: TestClient, runtime: Runtime, slow_match: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The negative control: the measurement above can see a difference of this size.
    monkeypatch.setattr(answer_time, "MATCHING_ANSWER_SECONDS", 0.0)
    file(client, runtime, report(OTHER_HANDLE))

    def filed(handle: str) -> Callable[[], Any]:
        return lambda: client.post("/api/v1/reports", json=report(handle)).raise_for_status()

    matches, misses = match_and_miss(filed)
    assert min(matches) - min(misses) > SLOWER / 2, (matches, misses)


def test_work_longer_than_the_pad_answers_at_its_next_multiple(monkeypatch: pytest.MonkeyPatch) -> None:
    # A loaded server: the answer waits for the next step, so a match shows only where it crosses one.
    monkeypatch.setattr(answer_time, "MATCHING_ANSWER_SECONDS", 0.1)

    async def block(work: float) -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with answer_time.answer_at_a_fixed_time():
            await asyncio.sleep(work)
        return loop.time() - began

    async def error() -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        with contextlib.suppress(ValueError):
            async with answer_time.answer_at_a_fixed_time():
                raise ValueError("refused")
        return loop.time() - began

    assert 0.1 <= asyncio.run(block(0.02)) < 0.15
    assert 0.2 <= asyncio.run(block(0.13)) < 0.25
    assert 0.3 <= asyncio.run(block(0.21)) < 0.35
    assert 0.1 <= asyncio.run(error()) < 0.15
