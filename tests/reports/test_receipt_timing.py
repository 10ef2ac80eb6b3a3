"""Guessing receipts: the time a wrong receipt costs tells nothing about how close the guess was.

A receipt is found by HMAC(pepper, receipt), never by comparing characters, and a miss runs the same key
unwrap on a dummy as a hit, so a guess one character away from a real receipt, a random guess and a
malformed one cost the same. (Whether a receipt exists is told by the answer itself — 200 or 404 — so the
time of a hit is not a secret; guessing is bounded by the rate limits, tested in test_rate_limits.py and
across processes in tests/system.)

The samples are taken in rounds of one guess of each kind in random order, and each is compared with the
random guess of its own round, so drift or a burst of load on the machine falls on all kinds alike (compared
as medians over the whole run, a burst at the suite's end once made one kind 17 % cheaper); the median of a
few hundred such ratios is stable to a few per cent, and the bound of 10 % is far above that and far below
the differences a character-by-character comparison or an early return would make.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from service.crypto import new_receipt, normalize_receipt
from service.crypto.receipt import CROCKFORD_ALPHABET
from service.errors import NotFound
from service.runtime import Runtime
from tests.support.forms import report_body

REPORT = report_body(description="Drohung.")
SAMPLES = 300


def near_miss(receipt: str) -> Callable[[], str]:
    def guess() -> str:
        chars = list(receipt)
        at = random.randrange(len(chars))
        chars[at] = random.choice([c for c in CROCKFORD_ALPHABET if c != chars[at]])
        return "".join(chars)

    return guess


def test_near_misses_random_and_malformed_guesses_cost_the_same(client: TestClient, runtime: Runtime) -> None:
    filed = client.post("/api/v1/reports", json=REPORT)
    assert filed.status_code == 201
    receipt = normalize_receipt(filed.json()["receipt"])
    kinds: dict[str, Callable[[], str]] = {
        "near miss": near_miss(receipt),
        "random": new_receipt,
        "malformed": lambda: "!" * 24,
    }
    # Measured in rounds of one guess of each kind, in random order: a burst of load on the machine (the
    # last of another test's processes ending) falls on the three guesses of a round alike, so the ratio
    # of each to the random guess of its own round cancels it. An early return or a comparison by
    # characters would shift every round's ratio and still fail the bound.
    ratios: dict[str, list[float]] = {kind: [] for kind in kinds}
    timings: dict[str, list[int]] = {kind: [] for kind in kinds}
    with runtime.sessions() as db:
        for _ in range(30):  # warm caches and the connection before measuring
            with contextlib.suppress(NotFound):
                runtime.intake.open_case(db, new_receipt())
        for _ in range(SAMPLES):
            order = list(kinds)
            random.shuffle(order)
            took: dict[str, int] = {}
            for kind in order:
                guess = kinds[kind]()
                start = time.perf_counter_ns()
                try:
                    runtime.intake.open_case(db, guess)
                except NotFound:
                    took[kind] = time.perf_counter_ns() - start
                else:
                    raise AssertionError("a guess opened the case")
            for kind, elapsed in took.items():
                timings[kind].append(elapsed)
                ratios[kind].append(elapsed / took["random"])
    medians = {kind: statistics.median(values) for kind, values in timings.items()}
    figures = ", ".join(f"{kind} {value / 1000:.1f} µs" for kind, value in medians.items())
    for kind, values in ratios.items():
        ratio = statistics.median(values)
        assert abs(ratio - 1) <= 0.10, (
            f"{kind}: {ratio:.2f} of a random guess's cost in its round ({figures})"
        )
