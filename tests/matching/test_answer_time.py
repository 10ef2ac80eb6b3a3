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

import statistics
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
ROUNDS = 4
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


def match_and_miss(request: Callable[[str], Any]) -> tuple[list[float], list[float]]:
    """``request`` with the other case's handle and with a handle nobody named, alternating (new handles
    each round, so that the miss stays a miss and the match a new one)."""
    matches: list[float] = []
    misses: list[float] = []
    for turn in range(ROUNDS):
        nobody = f"niemand_{turn}_{time.monotonic_ns()}"
        misses.append(timed(lambda: request(nobody)))  # noqa: B023 - called at once, in this turn
        matches.append(timed(lambda: request(OTHER_HANDLE)))
    return matches, misses


def assert_same_time(matches: list[float], misses: list[float]) -> None:
    pad = answer_time.MATCHING_ANSWER_SECONDS
    assert min(matches + misses) >= pad, "answered before the pad"
    # The slowdown is 80 ms; what is left of it must be the noise of the test client, not the match.
    assert abs(statistics.median(matches) - statistics.median(misses)) < SLOWER / 2, (matches, misses)


def test_a_report_with_identifiers_answers_at_the_same_time_match_or_not(
    client: TestClient, runtime: Runtime, slow_match: list[int]
) -> None:
    file(client, runtime, report(OTHER_HANDLE))  # the other reporter's case
    fired_before = len(slow_match)

    def filed(handle: str) -> None:
        assert client.post("/api/v1/reports", json=report(handle)).status_code == 201

    matches, misses = match_and_miss(filed)
    assert len(slow_match) - fired_before == ROUNDS, "each report naming the handle matched"
    assert_same_time(matches, misses)


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

    matches: list[float] = []
    misses: list[float] = []
    for turn in range(ROUNDS):
        misses.append(timed(added(f"niemand_{turn}_{time.monotonic_ns()}")))
        matches.append(timed(added(OTHER_HANDLE)))
    assert len(slow_match) - fired_before == ROUNDS
    assert_same_time(matches, misses)


def test_the_report_form_with_identifiers_answers_at_the_same_time_match_or_not(
    client: TestClient, runtime: Runtime, slow_match: list[int]
) -> None:
    file(client, runtime, report(OTHER_HANDLE))
    fired_before = len(slow_match)

    def sent(handle: str) -> None:
        page = client.get("/melden").text
        answer = client.post(
            "/melden",
            data={
                "csrf_token": csrf_token(page),
                "submission_token": submission_token(page),
                "land": "09",
                "type_codes": "A1",
                "description": "Drohbriefe.",
                "channel": "letter",
                "match_handle": handle,
                "match_platform": "instagram",
                "consent_matching": "1",
            },
        )
        assert answer.status_code == 201, answer.text[:300]

    matches, misses = match_and_miss(sent)
    assert len(slow_match) - fired_before == ROUNDS
    assert_same_time(matches, misses)


def test_without_the_pad_the_same_requests_tell_a_match_apart(
    client: TestClient, runtime: Runtime, slow_match: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The negative control: the measurement above can see a difference of this size.
    monkeypatch.setattr(answer_time, "MATCHING_ANSWER_SECONDS", 0.0)
    file(client, runtime, report(OTHER_HANDLE))

    def filed(handle: str) -> None:
        assert client.post("/api/v1/reports", json=report(handle)).status_code == 201

    matches, misses = match_and_miss(filed)
    assert statistics.median(matches) - statistics.median(misses) > SLOWER / 2


def test_the_reporters_sign_in_and_identifiers_on_fall_answer_no_sooner_than_the_pad(
    client: TestClient, runtime: Runtime
) -> None:
    # The sign-in registers identifiers that waited (a used-up budget, a rotated key); /fall/merkmale adds
    # them. Both may look one up, so both answer at the fixed time, whatever there was to look up.
    pad = answer_time.MATCHING_ANSWER_SECONDS
    receipt, _ = file(client, runtime, report_body(land="09", description="Drohbriefe."))
    form = {"csrf_token": csrf_token(client.get("/fall").text), "receipt": receipt}
    started = time.perf_counter()
    signed_in = client.post("/fall/anmelden", data=form, follow_redirects=False)
    assert time.perf_counter() - started >= pad
    assert signed_in.status_code == 303
    page = client.get("/fall").text
    saved = {
        "csrf_token": csrf_token(page),
        "action": "save",
        "match_handle": "@max_m",
        "match_platform": "instagram",
        "consent_matching": "1",
    }
    started = time.perf_counter()
    added = client.post("/fall/merkmale", data=saved, follow_redirects=False)
    assert time.perf_counter() - started >= pad
    assert added.headers["location"].startswith("/fall?notice=identifiers_saved")
