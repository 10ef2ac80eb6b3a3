"""Several appenders at once, each in its own session and thread: the chain must neither fork nor gap.

A short sleep between reading the head and writing the row widens the race window, so that without the
chain lock the appenders would collide almost every time; the control test shows they do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.audit import AuditLog, repository, verify
from service.audit.models import AuditEvent

THREADS = 8
APPENDS_PER_THREAD = 5


def _slow_head(delay_seconds: float) -> Callable[[Session], tuple[int, str] | None]:
    real = repository.head

    def slow(session: Session) -> tuple[int, str] | None:
        current = real(session)
        time.sleep(delay_seconds)
        return current

    return slow


def _run_appenders(sessions: sessionmaker[Session], log: AuditLog, appends: int) -> list[BaseException]:
    """Start every thread at the same instant; return what they raised."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        start.wait()
        for number in range(appends):
            try:
                with sessions() as session:
                    log.append(
                        session,
                        actor_kind="staff",
                        actor_id=f"worker-{worker}",
                        action="case.decrypt",
                        details={"worker": worker, "number": number},
                    )
                    session.commit()
            except Exception as exc:  # collected and asserted on by the caller
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def test_concurrent_appenders_neither_fork_nor_leave_gaps(
    sessions: sessionmaker[Session], log: AuditLog, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given eight threads appending five events each at once, then every append succeeds, seq runs 1..40
    without gap, no two rows name the same predecessor (no fork), every event is there exactly once, and
    the chain verifies."""
    monkeypatch.setattr(repository, "head", _slow_head(0.005))

    errors = _run_appenders(sessions, log, APPENDS_PER_THREAD)

    assert errors == []
    total = THREADS * APPENDS_PER_THREAD
    with sessions() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [row.seq for row in rows] == list(range(1, total + 1))
    assert len({row.prev_mac for row in rows}) == total
    assert all(rows[i].prev_mac == rows[i - 1].mac for i in range(1, total))
    assert sorted((row.details["worker"], row.details["number"]) for row in rows) == [
        (worker, number) for worker in range(THREADS) for number in range(APPENDS_PER_THREAD)
    ]
    with sessions() as session:
        result = verify(session, key)
    assert result.ok
    assert result.checked == total


def test_without_the_chain_lock_the_same_race_makes_appends_fail(
    sessions: sessionmaker[Session], log: AuditLog, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: given the same race with the lock switched off, then appenders read the same head and
    collide (the primary key on seq refuses the duplicate; SQLite may refuse the stale writer first), so
    the test above passes because of the lock, not because the race never happens."""
    monkeypatch.setattr(repository, "head", _slow_head(0.02))
    monkeypatch.setattr(repository, "lock_chain_postgresql", lambda session: None)
    monkeypatch.setattr(repository, "claim_write_lock_sqlite", lambda session: None)

    errors = _run_appenders(sessions, log, appends=1)

    assert errors
    assert all(isinstance(error, IntegrityError | OperationalError) for error in errors)
    # Even then the chain did not fork: what was committed still verifies.
    with sessions() as session:
        assert verify(session, key).ok
