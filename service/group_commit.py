"""Writes that arrive while the statements in flight are busy go together in the next: a group commit.

A report filed on the event loop is one statement in autocommit (``service.reports.on_loop``). Under load,
each such statement paid on its own what does not grow with its rows: the driver's sending and reading, a
pool checkout, PostgreSQL's bind, executor start and commit with its WAL flush, and the wake-up of the loop
for its answer. Here a process keeps at most ``at_once`` statements in flight; the writes that arrive while
all of them are busy wait, and the next sender free takes them together, in one statement. So:

- while fewer than ``at_once`` statements are in flight (a quiet service), a write goes at once, as it did;
- a group is one statement: all of it is stored or none of it, and each write's caller is answered only
  after the commit (a write is never acknowledged before it is durable);
- a group whose statement failed on its own terms (``one_by_one``: a row refused, which stores nothing) is
  sent again one write at a time, so that one write's refusal is not the others'; a group whose fate is
  unknown (a connection lost in flight: it may have been stored) is never sent again: each of its writes'
  callers gets the error and looks for itself, as a write alone does;
- a write that waited ``wait_at_most`` seconds without being taken (every statement in flight stuck: a lock,
  a connection that hangs) is given up with the error ``overdue`` makes, stored nowhere; so the pool's
  timeout was before (its 503 asks the reporter to send the report again). A write taken then waits for
  its statement as before, a connection from the pool included: the slowest 503 comes after about twice
  the pool's timeout;
- a caller cancelled before its write was taken takes the write with it; once taken, the write goes with
  its group, as a statement in flight did before (the cancelled request no longer hears of it).

Measured: docs/intake-cost.md, session 17.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from service.observability import metrics

Write = TypeVar("Write")

log = logging.getLogger("rueckhalt.group_commit")


@dataclass(eq=False)
class _Waiting(Generic[Write]):
    write: Write
    stored: asyncio.Future[None]
    timer: asyncio.TimerHandle | None = field(default=None)


class GroupCommit(Generic[Write]):
    """Sends writes through ``send`` (one statement for the list it is given, stored before it returns),
    at most ``most`` in one statement and ``at_once`` statements at a time. Made and used in one event
    loop."""

    def __init__(
        self,
        send: Callable[[list[Write]], Awaitable[None]],
        *,
        one_by_one: Callable[[Exception], bool],
        most: int,
        at_once: int,
        wait_at_most: float,
        overdue: Callable[[], Exception],
    ) -> None:
        if most < 1 or at_once < 1:
            raise ValueError("a group holds at least one write, and at least one statement goes at a time")
        self._send = send
        self._one_by_one = one_by_one
        self._most = most
        self._at_once = at_once
        self._wait_at_most = wait_at_most
        self._overdue = overdue
        self._waiting: deque[_Waiting[Write]] = deque()
        # The tasks that send (strong references: asyncio keeps weak ones); each leaves the set when done,
        # also one cancelled before it ever ran.
        self._senders: set[asyncio.Task[None]] = set()

    async def store(self, write: Write) -> None:
        """Returns once ``write`` is stored; raises the error of the statement that carried it."""
        loop = asyncio.get_running_loop()
        entry = _Waiting(write, loop.create_future())
        self._waiting.append(entry)
        entry.timer = loop.call_later(self._wait_at_most, self._give_up, entry)
        if self._busy() < self._at_once:
            sender = loop.create_task(self._send_all())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        try:
            await entry.stored
        except asyncio.CancelledError:
            # Not taken yet: it never will be. Taken: it goes with its group, as a statement in flight does.
            self._drop(entry)
            raise

    def _busy(self, besides: asyncio.Task[object] | None = None) -> int:
        # A sender that has ended leaves the set by a callback a moment later: it takes nothing more.
        return sum(1 for sender in self._senders if not sender.done() and sender is not besides)

    def waiting(self) -> int:
        """Writes handed over and not taken yet."""
        return len(self._waiting)

    async def drained(self, at_most: float) -> None:
        """Waits until every write handed over has been sent or given up (at shutdown), for ``at_most``
        seconds; then the senders still in flight are cancelled (their callers with them). Raises nothing."""
        deadline = asyncio.get_running_loop().time() + at_most
        while self._senders:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                for sender in self._senders:
                    sender.cancel()
                await asyncio.wait(set(self._senders))
                return
            await asyncio.wait(set(self._senders), timeout=left)

    def _drop(self, entry: _Waiting[Write]) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
        with contextlib.suppress(ValueError):  # taken already
            self._waiting.remove(entry)

    def _give_up(self, entry: _Waiting[Write]) -> None:
        if entry in self._waiting:
            self._drop(entry)
            _settle(entry.stored, self._overdue())

    def _take(self) -> list[_Waiting[Write]]:
        group: list[_Waiting[Write]] = []
        while self._waiting and len(group) < self._most:
            entry = self._waiting.popleft()
            if entry.timer is not None:
                entry.timer.cancel()
            if not entry.stored.done():  # its caller cancelled, its CancelledError not yet delivered
                group.append(entry)
        return group

    async def _send_all(self) -> None:
        try:
            while group := self._take():
                await self._send_group(group)
        finally:
            # Only when this task itself was cancelled (the loop closing) can writes be left with no sender:
            # never sent, they are given up as overdue (stored nowhere: the 503 that asks to send again).
            if not self._busy(besides=asyncio.current_task()):
                while self._waiting:
                    entry = self._waiting.popleft()
                    if entry.timer is not None:
                        entry.timer.cancel()
                    _settle(entry.stored, self._overdue())

    async def _send_group(self, group: list[_Waiting[Write]]) -> None:
        try:
            metrics.writes_per_statement.observe(len(group))
            try:
                await self._send([entry.write for entry in group])
            except Exception as error:
                if len(group) == 1 or not self._one_by_one(error):
                    for entry in group:
                        _settle(entry.stored, error if len(group) == 1 else _own_copy(error))
                    return
            else:
                for entry in group:
                    _settle(entry.stored, None)
                return
            # Nothing of the group was stored: each write again on its own, so that only its own error is its.
            for entry in group:
                if entry.stored.done():
                    continue  # its caller is gone: what nobody waits for is not stored
                try:
                    await self._send([entry.write])
                except Exception as own:
                    _settle(entry.stored, own)
                else:
                    _settle(entry.stored, None)
        except Exception as error:
            # Outside a statement (the metric, ``one_by_one``): nobody waits in vain, and the sender goes on.
            log.error("group commit: %s outside a statement", type(error).__name__)
            for entry in group:
                _settle(entry.stored, _own_copy(error))
        except BaseException:
            # Cancelled (the loop closing): the callers are cancelled with it, none waits for ever.
            for entry in group:
                entry.stored.cancel()
            raise


def _own_copy(error: Exception) -> Exception:
    """The error for one of a group's callers: each raises and chains its own (a lost connection's error is
    raised again by every report's look for itself, at the same time)."""
    try:
        return copy.copy(error)
    except Exception:
        return error


def _settle(stored: asyncio.Future[None], error: Exception | None) -> None:
    if stored.done():  # its caller was cancelled while the statement was in flight
        return
    if error is None:
        stored.set_result(None)
    else:
        stored.set_exception(error)
