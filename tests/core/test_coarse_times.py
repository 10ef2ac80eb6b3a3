"""``service.db.truncate_time``: a stored time is cut to a whole step counted from midnight, never rounded up
(a timer counting from it fires at most one step early, never late). The steps in use take a shortcut
without arithmetic; it must give what the arithmetic gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.db import ceil_time, truncate_time

STEPS = [1, 60, 900, 3600, 7200, 86_400]


def by_arithmetic(value: datetime, step: int) -> datetime:
    midnight = value.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = int((value - midnight).total_seconds())
    return midnight + timedelta(seconds=elapsed - elapsed % step)


def moments() -> list[datetime]:
    rng = random.Random(16)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    found = [
        start,
        start - timedelta(microseconds=1),
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
    found += [start + timedelta(seconds=rng.uniform(0, 3 * 365 * 86_400)) for _ in range(2_000)]
    # A zone that is not a whole hour from UTC: counted from its own midnight as well.
    india = timezone(timedelta(hours=5, minutes=30))
    return found + [moment.astimezone(india) for moment in found[:200]]


@pytest.mark.parametrize("step", STEPS)
def test_a_time_is_cut_to_its_step_and_never_later(step: int) -> None:
    for moment in moments():
        cut = truncate_time(moment, step)
        assert cut == by_arithmetic(moment, step)
        assert cut.tzinfo is moment.tzinfo
        assert moment - timedelta(seconds=step) < cut <= moment


@pytest.mark.parametrize("step", STEPS)
def test_ceil_is_the_next_step_or_the_time_itself(step: int) -> None:
    for moment in moments()[:300]:
        up = ceil_time(moment, step)
        assert moment <= up < moment + timedelta(seconds=step)
        assert truncate_time(up, step) == up
