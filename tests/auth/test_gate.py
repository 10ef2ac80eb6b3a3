"""The Argon2 gate: at most N derivations at once per process, and a quick 503 instead of a long queue."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from service.auth.gate import ARGON2_GATE, Argon2Gate
from service.errors import ServiceBusy


def test_the_process_wide_gate_runs_one_derivation_at_a_time_and_waits_about_three_seconds() -> None:
    """Two concurrent Argon2id derivations in one process hang inside cryptography 50 (see gate.py)."""
    assert ARGON2_GATE.slots == 1
    assert ARGON2_GATE.wait_seconds == pytest.approx(3.0)


def test_no_more_than_the_slots_run_at_once() -> None:
    gate = Argon2Gate(slots=2, wait_seconds=5.0)
    lock = threading.Lock()
    running = 0
    peak = 0

    def derive() -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return 1

    async def main() -> list[int]:
        results: list[int] = []

        async def one() -> None:
            results.append(await gate.run(derive))

        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(one)
        return results

    assert anyio.run(main) == [1] * 6
    assert peak == 2


def test_a_full_gate_refuses_after_the_wait_and_frees_its_slot_after_errors() -> None:
    gate = Argon2Gate(slots=1, wait_seconds=0.05)

    def fail() -> None:
        raise RuntimeError("derivation failed")

    with pytest.raises(RuntimeError):
        anyio.run(gate.run, fail)
    assert gate._semaphore.acquire(blocking=False), "the failed run gave its slot back"
    try:
        started = time.monotonic()
        with pytest.raises(ServiceBusy):
            anyio.run(gate.run, lambda: 1)
        assert time.monotonic() - started < 1.0
        with pytest.raises(ServiceBusy):
            gate.run_sync(lambda: 1)
    finally:
        gate._semaphore.release()
    assert gate.run_sync(lambda: 2) == 2


def test_derivations_run_on_low_priority_threads() -> None:
    """Under a login flood the scheduler favours intake: Argon2 threads carry a raised niceness."""
    import asyncio
    import os
    import threading

    from service.auth.gate import ARGON2_NICENESS, Argon2Gate

    gate = Argon2Gate(slots=1)
    base = os.getpriority(os.PRIO_PROCESS, 0)

    niceness = asyncio.run(gate.run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))

    assert niceness == max(base, ARGON2_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base, "the caller keeps its priority"
