"""Two transactions at once: one holds a row, the other must wait for it (PostgreSQL's locks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def waits_for(holder_commit: Callable[[], None], work: Callable[[], None], what: str) -> None:
    """Run ``work`` in a thread, check that it still waits a second later (held by the transaction that
    ``holder_commit`` ends), then commit the holder and let ``work`` finish."""
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive(), f"{what} waits for the other transaction"
    holder_commit()
    thread.join(timeout=30)
    assert not thread.is_alive(), f"{what} finished once the other transaction committed"


def at_once(work: Callable[[], T], count: int = 2) -> list[T | BaseException]:
    """``work`` in ``count`` threads released together; what each returned or raised, in the order they
    ended (an exception is a result here: the caller's assertion shows it)."""
    start = threading.Barrier(count)
    results: list[T | BaseException] = []

    def run() -> None:
        start.wait()
        try:
            results.append(work())
        except BaseException as error:
            results.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "every thread ended within a minute"
    return results
