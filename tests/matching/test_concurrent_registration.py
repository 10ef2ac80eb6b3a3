"""Two reports naming the same handle, filed at the same moment in two sessions, see each other (PostgreSQL).

Under read committed, each filing's look-up would miss the other's uncommitted token, and two reporters of
the same person would never be matched. ``MatchingService._lock`` takes a transaction-level advisory lock per
token, so the second filing waits for the first one's commit and then finds its token. The two filings are
held at a barrier right before the registration and the first keeps its transaction open a moment longer, so
that they really overlap; a control run without the lock shows that the test would see the difference.
Bounded waits only (barrier and joins time out); the database is the test cluster on loopback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select, text

from service.audit.models import AuditEvent
from service.cases.models import Case
from service.db import utcnow
from service.matching.models import PerpetratorToken
from service.matching.normalise import Identifier
from service.matching.service import MATCH_TOPIC, Budget, MatchingService, Registered
from service.outbox.models import OutboxMessage
from service.reports.filing import CaseDraft
from service.reports.schemas import ReportCreate
from service.runtime import Runtime
from tests.support.forms import report_body

# Long enough that the other filing reaches its look-up while this one's transaction is still open.
HOLD_SECONDS = 0.5
TIMEOUT_SECONDS = 30.0
REPORTS = (
    {"land": "09", "handle": "@Max_M"},  # Bayern's counselling
    {"land": "14", "handle": "max_m"},  # Sachsen's counselling
)


def body(land: str, *handles: str) -> ReportCreate:
    return ReportCreate.model_validate(
        report_body(
            land=land,
            description="Drohnachricht nach der Ratssitzung.",
            channel="letter",
            perpetrator_identifiers=[
                {"kind": "handle", "value": handle, "platform": "instagram"} for handle in handles
            ],
            consent_matching=True,
        )
    )


def file_at_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, reports: Sequence[dict[str, str]] = REPORTS
) -> list[Registered]:
    """File both reports from two threads (two sessions, two connections); both reach the registration
    together, and each keeps its transaction open for ``HOLD_SECONDS`` after it."""
    barrier = threading.Barrier(len(reports), timeout=TIMEOUT_SECONDS)
    results: list[Registered] = []
    errors: list[BaseException] = []
    original = MatchingService.register

    def register(
        self: MatchingService, session: Any, case_id: str, identifiers: Sequence[Identifier], budget: Budget
    ) -> Registered:
        barrier.wait()
        result = original(self, session, case_id, identifiers, budget)
        results.append(result)
        time.sleep(HOLD_SECONDS)
        return result

    monkeypatch.setattr(MatchingService, "register", register)

    def file(item: dict[str, str]) -> None:
        try:
            with runtime.sessions() as db:
                runtime.intake.file_report(db, body(item["land"], item["handle"]), CaseDraft.new(), [])
                db.commit()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=file, args=(item,), daemon=True) for item in reports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a filing hung"
    assert errors == []
    monkeypatch.setattr(MatchingService, "register", original)
    return results


def match_details(runtime: Runtime) -> list[Any]:
    with runtime.sessions() as db:
        return [
            event.details
            for event in db.scalars(select(AuditEvent).where(AuditEvent.action == "matching.match"))
        ]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_reports_filed_at_the_same_moment_both_register_and_match(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runtime.settings.is_sqlite is False
    results = file_at_once(runtime, monkeypatch)
    # Both stored their token; the second, having waited for the first one's commit, found it.
    assert sorted(result.matched_cases for result in results) == [0, 1]
    assert all(result.done for result in results)
    with runtime.sessions() as db:
        case_ids = set(db.scalars(select(Case.id)))
        rows = list(db.scalars(select(PerpetratorToken)))
        told = {
            row.payload["case_id"]
            for row in db.scalars(select(OutboxMessage).where(OutboxMessage.topic == MATCH_TOPIC))
        }
    assert len(case_ids) == 2
    assert len(rows) == 2
    assert len({row.token for row in rows}) == 1
    assert told == case_ids
    assert match_details(runtime) == [{"cases": 2, "organisations": 2}]
    with runtime.sessions() as db:
        views = [runtime.matching.shared_with(db, case_id) for case_id in case_ids]
    assert [view.cases if view is not None else 0 for view in views] == [1, 1]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_without_the_lock_the_two_would_miss_each_other(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the same race with the advisory lock taken out stores both tokens and matches nothing,
    so the test above fails if the lock stops working."""
    monkeypatch.setattr(MatchingService, "_lock", staticmethod(lambda session, tokens: None))
    results = file_at_once(runtime, monkeypatch)
    assert [result.matched_cases for result in results] == [0, 0]
    assert match_details(runtime) == []


# One case names two accounts of the same person; two later reports name one account each, at the same moment.
EARLIER_LAND, EARLIER_HANDLES = "09", ("@erster_account", "@zweiter_account")
LATER = ({"land": "14", "handle": "@erster_account"}, {"land": "14", "handle": "@zweiter_account"})


def notices_of(runtime: Runtime, case_id: str) -> list[tuple[str, bool]]:
    """The match notices for a case's holders: (organisation, due now)."""
    now = utcnow()
    with runtime.sessions() as db:
        rows = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == MATCH_TOPIC))
        return sorted(
            (str(row.payload["organisation_id"]), row.available_at <= now)
            for row in rows
            if row.payload["case_id"] == case_id
        )


@contextmanager
def waits_seen(runtime: Runtime) -> Iterator[list[bool]]:
    """Watch pg_locks from a third connection while the block runs: the list holds True once a session was
    seen waiting for a two-key advisory lock (the notice locks; the token locks are one-key)."""
    seen: list[bool] = []
    done = threading.Event()
    waiting = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND NOT granted"
    )

    def watch() -> None:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        with runtime.engine.connect() as connection:
            while not done.is_set() and time.monotonic() < deadline and not seen:
                if connection.execute(waiting).scalar_one():
                    seen.append(True)
                connection.rollback()
                time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join(TIMEOUT_SECONDS)


def file_earlier(runtime: Runtime) -> str:
    with runtime.sessions() as db:
        filed = runtime.intake.file_report(db, body(EARLIER_LAND, *EARLIER_HANDLES), CaseDraft.new(), [])
        db.commit()
    return filed.case_id


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_matches_of_one_case_at_the_same_moment_tell_its_holders_once_now(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile reporter sending two reports at once, each naming another of the accounts of a case, must
    not get its holders told twice at once: the second waits for the first's notice and schedules its own
    for the end of the day (``MatchingService._lock_notices``)."""
    earlier = file_earlier(runtime)
    with waits_seen(runtime) as waits:
        results = file_at_once(runtime, monkeypatch, LATER)

    assert waits == [True]  # the second filing did wait on a notice lock (two-key advisory) for the first
    assert [result.matched_cases for result in results] == [1, 1]
    notices = notices_of(runtime, earlier)
    holders = {organisation for organisation, _ in notices}
    assert holders  # the earlier case's holders were told
    assert notices == sorted([(organisation, due) for organisation in holders for due in (False, True)])


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_without_the_notice_lock_the_holders_would_be_told_twice_at_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the same race without the lock per case sends two notices at once."""
    monkeypatch.setattr(MatchingService, "_lock_notices", staticmethod(lambda session, case_ids: None))
    earlier = file_earlier(runtime)
    # Both read the outbox before either commits, however slow the machine: nothing else holds them apart.
    both_read = threading.Barrier(len(LATER), timeout=TIMEOUT_SECONDS)
    last_notices = MatchingService._last_notices

    def read_together(session: Any, now: Any) -> Any:
        found = last_notices(session, now)
        both_read.wait()
        return found

    monkeypatch.setattr(MatchingService, "_last_notices", staticmethod(read_together))
    file_at_once(runtime, monkeypatch, LATER)

    notices = notices_of(runtime, earlier)
    holders = {organisation for organisation, _ in notices}
    assert holders
    assert notices == sorted([(organisation, True) for organisation in holders for _ in range(2)])
