"""A bound on concurrent Argon2 work, so that a flood of logins cannot starve intake (docs/security.md).

Each derivation takes 64 MiB and most of a core for a fraction of a second. Without a bound, a few hundred
login attempts would occupy every core, the memory and every thread of the pool that intake also needs.
The gate lets at most ``slots`` derivations run in this process; a request that cannot get a slot within
``wait_seconds`` is answered 503 at once. Waiting happens on the event loop, not in a pool thread, so the
queue itself takes nothing from intake; only the running derivations hold threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio

from service.errors import ServiceBusy

T = TypeVar("T")

# One derivation at a time per process. Measured here with cryptography 50.0.2: two Argon2id derivations
# (64 MiB, t=3, p=4) started at once in two threads of one process never finish (both threads hang inside
# the library; in the server some fail with MemoryError instead). Several processes each running one are
# fine. tests/auth/test_gate.py keeps the gate from ever running two at once.
DEFAULT_SLOTS = 1
DEFAULT_WAIT_SECONDS = 3.0
_POLL_SECONDS = 0.01


# 0 is normal; 19 the lowest. 15 leaves sign-ins working on an idle machine and yielding on a busy one.
ARGON2_NICENESS = 15


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ARGON2_NICENESS)


class Argon2Gate:
    def __init__(self, slots: int = DEFAULT_SLOTS, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> None:
        if slots < 1:
            raise ValueError("an Argon2 gate needs at least one slot")
        self.slots = slots
        self.wait_seconds = wait_seconds
        # A threading semaphore rather than an asyncio one: it is shared by every event loop in the process
        # (tests run several) and by synchronous callers such as the command line.
        self._semaphore = threading.BoundedSemaphore(slots)
        # Derivations run on threads of their own with a lower CPU priority (Linux niceness is per thread):
        # under a flood the scheduler gives intake's threads the cores first, and sign-ins merely slow down.
        self._executor = ThreadPoolExecutor(
            max_workers=slots, thread_name_prefix="argon2", initializer=_lower_priority
        )

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` (Argon2 derivations) in a pool thread once a slot is free; ServiceBusy if none is."""
        deadline = time.monotonic() + self.wait_seconds
        # Polling keeps the wait off the thread pool; 10 ms is far below the cost of one derivation.
        while not self._semaphore.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise ServiceBusy()
            await anyio.sleep(_POLL_SECONDS)
        try:
            # Shielded: a client that disconnects must not free the slot while its derivation still runs.
            with anyio.CancelScope(shield=True):
                result = await asyncio.get_running_loop().run_in_executor(self._executor, work)
        finally:
            self._semaphore.release()
        return result

    def run_sync(self, work: Callable[[], T]) -> T:
        """The same bound for callers that are already in a thread of their own."""
        if not self._semaphore.acquire(timeout=self.wait_seconds):
            raise ServiceBusy()
        try:
            return work()
        finally:
            self._semaphore.release()


# One per process: uvicorn runs one application per worker process, so this is the per-process bound.
ARGON2_GATE = Argon2Gate()
