"""How many plan PDFs one client may have made per hour, counted in this process's memory only.

A PDF costs a few hundred milliseconds of CPU (fpdf2 sets and subsets the font), and anyone may ask for one:
without a bound, a single client could keep the api's threads busy. The service's rate limiter would bound it
across processes, but it counts in Redis or the database, and the plans promise that making one writes
nothing anywhere. So this counter lives in memory: keyed by the client key of the other limits (the
address, IPv6 by its /64; service/deps.py), in hourly windows, never written, never logged, gone at a
restart. It bounds each api process on its own: with N processes a client may have N times as many.
"""

from __future__ import annotations

import threading
import time

# Keys kept at most; past that the oldest window is dropped first (a flood of addresses must not grow memory).
MAX_KEYS = 10_000


class MemoryWindowLimiter:
    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        window = int((time.time() if now is None else now) // 3600)
        with self._lock:
            start, count = self._counts.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            if count >= self.per_hour:
                return False
            self._counts[key] = (start, count + 1)
            if len(self._counts) > MAX_KEYS:
                stale = [k for k, (w, _) in self._counts.items() if w != window]
                for old in stale or list(self._counts)[: len(self._counts) - MAX_KEYS]:
                    del self._counts[old]
            return True
