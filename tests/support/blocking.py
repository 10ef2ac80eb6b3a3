"""Two transactions at once: one holds a row, the other must wait for it (PostgreSQL's locks)."""

from __future__ import annotations

import threading
from collections.abc import Callable


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
