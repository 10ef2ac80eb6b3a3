"""The event loop's group commit (``service.group_commit``): a write alone goes at once; writes that arrive
while a statement is in flight go together in the next; a group refused for one write's rows is sent again
one write at a time; a group whose fate is unknown (a connection lost in flight) is never sent again; a
caller cancelled before its write was sent takes the write with it.

The statement is played by a function that records what it was given and waits where the test says: these
tests are about who goes with whom and who hears what. That the group is one PostgreSQL statement, stored
whole, is tested on the real database in ``tests/reports/test_group_commit_intake.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import psycopg
import pytest
from sqlalchemy import Dialect, create_engine
from sqlalchemy import exc as sa_exc

from service.group_commit import GroupCommit, _own_copy
from service.reports import on_loop


class Refused(Exception):
    """A statement's own error: it stored nothing (a constraint, a grant's guard)."""


class Lost(Exception):
    """The connection went with the statement in flight: it may have been stored."""


class Database:
    """Stores what it is sent, one statement per call; a statement with a write in ``refuse`` is refused
    as a whole, one with a write in ``lose`` is lost after it was stored. ``hold`` keeps the next statement in
    flight until released."""

    def __init__(self) -> None:
        self.statements: list[list[str]] = []
        self.stored: list[str] = []
        self.refuse: set[str] = set()
        self.lose: set[str] = set()
        self.hold: asyncio.Event | None = None
        self.in_flight = asyncio.Event()

    async def send(self, writes: list[str]) -> None:
        self.statements.append(list(writes))
        self.in_flight.set()
        if self.hold is not None:
            held, self.hold = self.hold, None
            await held.wait()
        self.in_flight.clear()
        if self.refuse & set(writes):
            raise Refused()
        self.stored += writes
        if self.lose & set(writes):
            raise Lost()


class Overdue(Exception):
    """A write that waited too long for a statement."""


def group_of(
    database: Database, most: int = 32, at_once: int = 1, wait_at_most: float = 5.0
) -> GroupCommit[str]:
    return GroupCommit(
        database.send,
        one_by_one=lambda error: isinstance(error, Refused),
        most=most,
        at_once=at_once,
        wait_at_most=wait_at_most,
        overdue=Overdue,
    )


async def outcome(store: Awaitable[None]) -> str:
    try:
        await store
    except Exception as error:
        return type(error).__name__
    return "stored"


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 5))


async def while_one_is_in_flight(
    database: Database, group: GroupCommit[str], first: str, then: list[str]
) -> tuple[asyncio.Task[str], list[asyncio.Task[str]]]:
    """``first`` is sent and held in flight; ``then`` are handed over meanwhile (and wait)."""
    database.hold = asyncio.Event()
    held = database.hold
    leading = asyncio.ensure_future(outcome(group.store(first)))
    await database.in_flight.wait()
    following = [asyncio.ensure_future(outcome(group.store(write))) for write in then]
    await asyncio.sleep(0)
    assert group.waiting() == len(then)
    held.set()
    return leading, following


def test_a_write_alone_goes_at_once_and_returns_once_stored() -> None:
    async def test() -> None:
        database = Database()
        group = group_of(database)
        await group.store("a")
        assert database.statements == [["a"]]
        assert database.stored == ["a"]
        await group.store("b")  # a new sender for the next write
        assert database.statements == [["a"], ["b"]]

    run(test)


def test_writes_that_arrive_while_one_is_in_flight_go_together_in_the_next_statement() -> None:
    async def test() -> None:
        database = Database()
        group = group_of(database)
        leading, following = await while_one_is_in_flight(database, group, "a", ["b", "c", "d"])
        assert await leading == "stored"
        assert [await task for task in following] == ["stored"] * 3
        assert database.statements == [["a"], ["b", "c", "d"]]
        assert group.waiting() == 0

    run(test)


def test_a_group_holds_at_most_so_many_writes() -> None:
    async def test() -> None:
        database = Database()
        group = group_of(database, most=2)
        _, following = await while_one_is_in_flight(database, group, "a", ["b", "c", "d"])
        await asyncio.gather(*following)
        assert database.statements == [["a"], ["b", "c"], ["d"]]

    run(test)


def test_a_group_refused_for_one_write_is_sent_again_one_by_one_and_only_that_one_fails() -> None:
    async def test() -> None:
        database = Database()
        database.refuse = {"c"}
        group = group_of(database)
        leading, following = await while_one_is_in_flight(database, group, "a", ["b", "c", "d"])
        assert await leading == "stored"
        assert [await task for task in following] == ["stored", "Refused", "stored"]
        assert database.statements == [["a"], ["b", "c", "d"], ["b"], ["c"], ["d"]]
        assert database.stored == ["a", "b", "d"]  # each once

    run(test)


def test_a_group_lost_in_flight_is_not_sent_again_and_every_write_hears_of_it() -> None:
    # Sent again, a group that was stored before its answer was lost would be stored twice.
    async def test() -> None:
        database = Database()
        group = group_of(database)
        database.lose = {"b"}
        leading, following = await while_one_is_in_flight(database, group, "a", ["b", "c"])
        assert await leading == "stored"
        assert [await task for task in following] == ["Lost", "Lost"]
        assert database.statements == [["a"], ["b", "c"]]
        assert database.stored == ["a", "b", "c"]

    run(test)


def test_a_write_alone_that_is_refused_is_not_sent_twice() -> None:
    async def test() -> None:
        database = Database()
        database.refuse = {"a"}
        group = group_of(database)
        assert await outcome(group.store("a")) == "Refused"
        assert database.statements == [["a"]]

    run(test)


def test_a_caller_cancelled_before_its_write_was_sent_takes_the_write_with_it() -> None:
    async def test() -> None:
        database = Database()
        group = group_of(database)
        database.hold = asyncio.Event()
        held = database.hold
        first = asyncio.ensure_future(outcome(group.store("a")))
        await database.in_flight.wait()
        waiting = asyncio.ensure_future(group.store("b"))
        kept = asyncio.ensure_future(outcome(group.store("c")))
        await asyncio.sleep(0)
        assert group.waiting() == 2
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert group.waiting() == 1
        held.set()
        assert await first == "stored"
        assert await kept == "stored"
        assert database.statements == [["a"], ["c"]]

    run(test)


def test_a_caller_cancelled_while_its_write_is_in_flight_leaves_it_stored_and_the_others_answered() -> None:
    async def test() -> None:
        database = Database()
        group = group_of(database)
        database.hold = asyncio.Event()
        held = database.hold
        first = asyncio.ensure_future(group.store("a"))
        other = asyncio.ensure_future(outcome(group.store("b")))
        await database.in_flight.wait()
        assert database.statements == [["a", "b"]]  # both handed over before the sender ran
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        held.set()
        assert await other == "stored"
        assert "a" in database.stored  # sent already: it stands, as a statement in flight did

    run(test)


def test_writes_still_waiting_when_the_sender_is_cancelled_do_not_hang() -> None:
    # The loop closing cancels the sender: its callers are cancelled too, none waits for an answer forever.
    async def test() -> None:
        database = Database()
        group = group_of(database)
        database.hold = asyncio.Event()
        first = asyncio.ensure_future(group.store("a"))
        await database.in_flight.wait()
        second = asyncio.ensure_future(group.store("b"))
        await asyncio.sleep(0)
        (sender,) = group._senders  # the loop's shutdown, played
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first  # in flight: its fate unknown, its caller cancelled with the sender
        with pytest.raises(Overdue):
            await second  # never sent: given up, the 503 that asks to send it again
        assert group.waiting() == 0
        await group.store("c")  # and the group works again
        assert database.stored == ["c"]

    run(test)


def test_drained_waits_for_the_statement_in_flight() -> None:
    async def test() -> None:
        database = Database()
        group = group_of(database)
        database.hold = asyncio.Event()
        held = database.hold
        writer = asyncio.ensure_future(group.store("a"))
        await database.in_flight.wait()
        draining = asyncio.ensure_future(group.drained(at_most=5))
        await asyncio.sleep(0.01)
        assert not draining.done()
        held.set()
        await draining
        assert database.stored == ["a"]
        await writer
        await group.drained(at_most=5)  # nothing in flight: at once

    run(test)


def test_a_group_needs_room_for_one_write_and_one_statement() -> None:
    for most, at_once in ((0, 1), (1, 0)):
        with pytest.raises(ValueError):
            GroupCommit(
                Database().send,
                one_by_one=lambda _error: False,
                most=most,
                at_once=at_once,
                wait_at_most=1,
                overdue=Overdue,
            )


def test_while_fewer_statements_than_allowed_are_in_flight_a_write_goes_at_once() -> None:
    # One statement held up (a lock, a connection that hangs) does not hold up the next write.
    async def test() -> None:
        database = Database()
        group = group_of(database, at_once=2)
        database.hold = asyncio.Event()
        held = database.hold
        first = asyncio.ensure_future(outcome(group.store("a")))
        await database.in_flight.wait()
        assert await outcome(group.store("b")) == "stored"  # while "a" is still in flight
        assert not first.done()
        held.set()
        assert await first == "stored"
        assert database.statements == [["a"], ["b"]]

    run(test)


def test_with_every_statement_busy_the_next_writes_wait_and_go_together() -> None:
    async def test() -> None:
        database = Database()
        group = group_of(database, at_once=2)
        holds = [asyncio.Event(), asyncio.Event()]
        database.hold = holds[0]
        first = asyncio.ensure_future(outcome(group.store("a")))
        await database.in_flight.wait()
        database.hold = holds[1]
        second = asyncio.ensure_future(outcome(group.store("b")))
        while database.statements != [["a"], ["b"]]:
            await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(outcome(group.store(write))) for write in ("c", "d")]
        await asyncio.sleep(0)
        assert group.waiting() == 2
        holds[0].set()
        assert await first == "stored"
        assert [await task for task in waiting] == ["stored", "stored"]
        holds[1].set()
        assert await second == "stored"
        assert database.statements == [["a"], ["b"], ["c", "d"]]

    run(test)


def test_a_write_that_waits_too_long_for_a_statement_is_given_up_and_never_stored() -> None:
    # Every statement stuck: the report gets the 503 that asks to send it again, as the pool's timeout gave.
    async def test() -> None:
        database = Database()
        group = group_of(database, wait_at_most=0.05)
        database.hold = asyncio.Event()
        held = database.hold
        first = asyncio.ensure_future(outcome(group.store("a")))
        await database.in_flight.wait()
        assert await outcome(group.store("b")) == "Overdue"
        assert group.waiting() == 0
        held.set()
        assert await first == "stored"  # the one in flight is not given up
        await group.drained(at_most=5)
        assert database.statements == [["a"]]
        assert database.stored == ["a"]

    run(test)


def test_a_sender_cancelled_before_it_ran_leaves_no_write_waiting_for_ever() -> None:
    async def test() -> None:
        database = Database()
        group = group_of(database, wait_at_most=0.05)
        caller = asyncio.ensure_future(outcome(group.store("a")))
        await asyncio.sleep(0)  # the caller has handed "a" over and started a sender, which has not run
        (sender,) = group._senders  # the loop's shutdown, played
        sender.cancel()
        assert await caller == "Overdue"  # nobody left to send it: given up in time, not waiting for ever
        assert await outcome(group.store("b")) == "stored"  # a new sender for the next write
        assert "b" in database.stored

    run(test)


def test_an_error_outside_the_statement_reaches_the_callers_and_the_group_goes_on() -> None:
    async def test() -> None:
        database = Database()
        database.refuse = {"c"}

        def broken(_error: Exception) -> bool:
            raise LookupError("a bug in the classification")

        group: GroupCommit[str] = GroupCommit(
            database.send, one_by_one=broken, most=32, at_once=1, wait_at_most=5, overdue=Overdue
        )
        _, following = await while_one_is_in_flight(database, group, "a", ["b", "c"])
        assert [await task for task in following] == ["LookupError", "LookupError"]
        assert await outcome(group.store("d")) == "stored"

    run(test)


def test_a_write_whose_caller_left_is_not_sent_again_one_by_one() -> None:
    async def test() -> None:
        database = Database()
        database.refuse = {"c"}
        group = group_of(database)
        holds = [asyncio.Event(), asyncio.Event()]
        database.hold = holds[0]
        first = asyncio.ensure_future(outcome(group.store("a")))
        await database.in_flight.wait()
        others = {write: asyncio.ensure_future(group.store(write)) for write in ("b", "c", "d")}
        await asyncio.sleep(0)
        database.hold = holds[1]
        holds[0].set()
        assert await first == "stored"
        while len(database.statements) < 2:
            await asyncio.sleep(0)
        others["d"].cancel()  # while its group is in flight
        holds[1].set()
        assert await outcome(others["b"]) == "stored"
        assert await outcome(others["c"]) == "Refused"
        with pytest.raises(asyncio.CancelledError):
            await others["d"]
        assert database.statements == [["a"], ["b", "c", "d"], ["b"], ["c"]]
        assert "d" not in database.stored

    run(test)


def test_each_caller_of_a_lost_group_gets_its_own_error() -> None:
    # Each report's look for itself raises and chains the error again: not one object shared by all.
    async def test() -> None:
        database = Database()
        group = group_of(database)
        raised: list[BaseException] = []

        async def keep(write: str) -> None:
            try:
                await group.store(write)
            except Lost as error:
                raised.append(error)

        database.lose = {"p"}
        database.hold = asyncio.Event()
        held = database.hold
        leading = asyncio.ensure_future(group.store("o"))
        await database.in_flight.wait()
        keepers = [asyncio.ensure_future(keep(write)) for write in ("p", "q")]
        await asyncio.sleep(0)
        held.set()
        await leading
        await asyncio.gather(*keepers)
        assert len(raised) == 2
        assert raised[0] is not raised[1]
        assert all(isinstance(error, Lost) for error in raised)

    run(test)


def test_drained_gives_up_on_a_statement_stuck_past_its_time() -> None:
    # A shutdown is not held up for ever by a statement that hangs: its sender is cancelled, and so is its
    # caller.
    async def test() -> None:
        database = Database()
        group = group_of(database)
        database.hold = asyncio.Event()
        stuck = asyncio.ensure_future(group.store("a"))
        await database.in_flight.wait()
        await group.drained(at_most=0.05)
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert not group._senders  # the loop's shutdown can go on

    run(test)


def test_each_caller_gets_a_copy_of_a_lost_connections_error_that_still_says_so() -> None:
    lost = sa_exc.OperationalError("INSERT", None, psycopg.OperationalError("the server closed"))
    lost.connection_invalidated = True
    copied = _own_copy(lost)
    assert copied is not lost
    assert isinstance(copied, sa_exc.OperationalError)
    assert copied.connection_invalidated
    assert copied.orig is lost.orig


def test_the_intake_sends_a_group_again_one_by_one_only_when_postgresql_refused_it() -> None:
    def error(orig: Exception, *, invalidated: bool = False) -> sa_exc.DBAPIError:
        made = sa_exc.DBAPIError.instance(
            "INSERT", None, orig, psycopg.Error, connection_invalidated=invalidated, dialect=psycopg_dialect()
        )
        assert isinstance(made, sa_exc.DBAPIError)
        return made

    one_by_one = on_loop._refused_for_its_rows  # the intake's rule
    # Refused as a whole, nothing stored: each report again on its own.
    assert one_by_one(error(psycopg.errors.NotNullViolation()))  # a grant's guard
    assert one_by_one(error(psycopg.errors.UniqueViolation()))
    assert one_by_one(error(psycopg.errors.StringDataRightTruncation()))
    assert one_by_one(error(psycopg.errors.DeadlockDetected()))
    assert one_by_one(error(psycopg.errors.SerializationFailure()))
    # Its fate unknown, or nothing sent at all: never again, each report looks for itself or gets the 503.
    assert not one_by_one(error(psycopg.OperationalError("the server closed"), invalidated=True))
    assert not one_by_one(error(psycopg.errors.DeadlockDetected(), invalidated=True))
    assert not one_by_one(error(psycopg.OperationalError("connection refused")))
    assert not one_by_one(sa_exc.TimeoutError("no connection"))


def psycopg_dialect() -> Dialect:
    return create_engine("postgresql+psycopg://").dialect
