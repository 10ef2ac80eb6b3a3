"""Writes that arrive while one is in flight go together in the next: a group commit on the event loop.

A report filed on the loop is one statement in autocommit (``service.reports.on_loop``). Under load, each
such statement paid on its own what does not grow with its rows: the driver's sending and reading, a pool
checkout, PostgreSQL's bind, executor start and commit with its WAL flush, and the wake-up of the loop for
its answer. Here the writes of a process go one statement at a time; those that arrive while a statement is
in flight wait for it and then go together, in one statement. So:

- a write alone (the usual case on a quiet service) goes at once, as it did; one that comes while another
  is in flight waits for that one's answer, never longer;
- a group is one statement: all of it is stored or none of it, and each write's caller is answered only
  after the commit (a write is never acknowledged before it is durable);
- a group whose statement failed on its own terms (``one_by_one``: a row refused, which stores nothing) is
  sent again one write at a time, so that one write's refusal is not the others'; a connection lost with
  the statement in flight is not sent again (it may have been stored): every write of the group gets the
  error and looks for itself, as a write alone does;
- a caller cancelled before its write was sent takes the write with it; once sent, the write stands, as a
  statement in flight did before (the cancelled request no longer hears of it).

Measured: docs/intake-cost.md, session 17.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Generic, TypeVar

from service.observability import metrics

Write = TypeVar("Write")


class GroupCommit(Generic[Write]):
    """Sends writes through ``send`` (one statement for the list it is given, stored before it returns),
    at most ``most`` in one statement. Made and used in one event loop."""

    def __init__(
        self,
        send: Callable[[list[Write]], Awaitable[None]],
        *,
        one_by_one: Callable[[Exception], bool],
        most: int,
    ) -> None:
        if most < 1:
            raise ValueError("a group holds at least one write")
        self._send = send
        self._one_by_one = one_by_one
        self._most = most
        self._waiting: deque[tuple[Write, asyncio.Future[None]]] = deque()
        # The task that sends, while there is anything to send (a strong reference: asyncio keeps weak ones).
        self._sender: asyncio.Task[None] | None = None

    async def store(self, write: Write) -> None:
        """Returns once ``write`` is stored; raises the error of the statement that carried it."""
        loop = asyncio.get_running_loop()
        stored: asyncio.Future[None] = loop.create_future()
        entry = (write, stored)
        self._waiting.append(entry)
        if self._sender is None:
            self._sender = loop.create_task(self._send_all())
        try:
            await stored
        except asyncio.CancelledError:
            # Not sent yet: it never will be. Sent already: it stands, as a statement in flight does.
            with suppress(ValueError):
                self._waiting.remove(entry)
            raise

    def waiting(self) -> int:
        """Writes handed over and not sent yet."""
        return len(self._waiting)

    async def drained(self) -> None:
        """Waits until everything handed over has been sent (at shutdown, before the engine is disposed)."""
        sender = self._sender
        if sender is not None:
            await asyncio.shield(sender)

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                count = min(self._most, len(self._waiting))
                group = [self._waiting.popleft() for _ in range(count)]
                await self._send_group(group)
        finally:
            # No await between the loop's last look at the queue and this: a write handed over after it
            # finds no sender and starts one.
            self._sender = None
            for _, stored in self._waiting:
                # Only when this task itself was cancelled (the loop closing): nobody is left to send them.
                stored.cancel()
            self._waiting.clear()

    async def _send_group(self, group: list[tuple[Write, asyncio.Future[None]]]) -> None:
        metrics.writes_per_statement.observe(len(group))
        try:
            try:
                await self._send([write for write, _ in group])
            except Exception as error:
                if len(group) == 1 or not self._one_by_one(error):
                    for _, stored in group:
                        _settle(stored, error)
                    return
            else:
                for _, stored in group:
                    _settle(stored, None)
                return
            # Nothing of the group was stored: each write again on its own, so that only its own error is its.
            for write, stored in group:
                try:
                    await self._send([write])
                except Exception as own:
                    _settle(stored, own)
                else:
                    _settle(stored, None)
        except asyncio.CancelledError:
            for _, stored in group:
                stored.cancel()  # does nothing to one settled already
            raise


def _settle(stored: asyncio.Future[None], error: Exception | None) -> None:
    if stored.done():  # its caller was cancelled while the statement was in flight
        return
    if error is None:
        stored.set_result(None)
    else:
        stored.set_exception(error)
