"""The retention purge on both databases: what goes, what stays, and what a failure or a re-open leaves."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import AuditLog, verify
from service.audit.models import AuditEvent
from service.auth.subject import Subject
from service.cases.models import CaseStatus
from service.cases.schemas import CaseUpdate
from service.db import truncate_time
from service.outbox.models import OutboxMessage
from service.outbox.writer import enqueue
from service.retention import CaseResult, RetentionService
from service.retention.service import PURGED_ACTION
from service.runtime import Runtime
from tests.support.retention import (
    FileReport,
    WorkCase,
    blob_names,
    case_rows,
    extract_rows,
    files_on_disk,
    set_closure,
    table_census,
)

DAY = timedelta(days=1)
WORKED_CASE_ROWS = (
    "case_file",
    "incident.case_id",
    "case_key_grant.case_id",
    "routing_record.case_id",
    "case_message.case_id",
    "case_note.case_id",
    "attachment.case_id",
    "web_session",
)


def purge_events(runtime: Runtime) -> list[AuditEvent]:
    with runtime.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == PURGED_ACTION)))


def test_a_closed_case_past_its_period_is_crypto_shredded(
    runtime: Runtime, client: TestClient, file_report: FileReport, work_case: WorkCase, now: datetime
) -> None:
    """Given a worked case (two incidents, messages both ways, a note, a file, a signed-in reporter) closed
    366 days ago as "supported", when the purge runs, then no row of it is left in any table that refers to
    a case, its file is gone from disk, its reporter session ended and its receipt opens nothing; the
    statistics extract is unchanged, and the audit chain holds one intact `case.purged` event."""
    filed = file_report()
    reporter = work_case(filed)
    files = blob_names(runtime, filed.case_id)
    set_closure(runtime, filed.case_id, closed_at=now - 366 * DAY, outcome="supported")
    before = case_rows(runtime, filed.case_id)
    stats_before = extract_rows(runtime)
    # The tables a worked case fills; the census after the purge covers every table that refers to a case,
    # including any added later (which then go by their ON DELETE CASCADE).
    assert all(before[name] for name in WORKED_CASE_ROWS), before
    assert files
    assert all(runtime.blobs.exists(name) for name in files)

    with runtime.sessions() as db:
        report = runtime.retention.purge(db, now, dry_run=False)
        db.commit()  # the task's transaction

    assert [case.candidate.case_id for case in report.purged] == [filed.case_id]
    assert report.failed == ()
    assert report.not_due == ()
    assert set(case_rows(runtime, filed.case_id).values()) == {0}
    assert not any(runtime.blobs.exists(name) for name in files)
    assert extract_rows(runtime) == stats_before
    assert stats_before
    lookup = client.post("/api/v1/reports/lookup", json={"receipt": filed.receipt})
    assert lookup.status_code == 404
    assert 'name="receipt"' in reporter.get("/fall").text, "the reporter is signed out"

    (event,) = purge_events(runtime)
    assert event.actor_kind == "system"
    assert (event.object_type, event.object_id) == ("case", filed.case_id)
    assert event.details == {
        "outcome": "supported",
        "retention_days": 365,
        "policy_sha256": runtime.retention.policy.sha256,
        "attachments": before["attachment.case_id"],
        "messages": before["case_message.case_id"],
        "notes": before["case_note.case_id"],
        "routing_records": before["routing_record.case_id"],
        "key_grants": before["case_key_grant.case_id"],
        "incidents": before["incident.case_id"],
        "reporter_sessions": before["web_session"],
    }
    with runtime.sessions() as db:
        assert verify(db, runtime.secrets.audit_key).ok


def test_only_closed_cases_are_purged_whatever_their_closing_date(
    runtime: Runtime, file_report: FileReport, now: datetime
) -> None:
    """Given a case in every status that is not closed, each with an outcome and a closing date ten years
    ago (as a re-open past the service could leave it), and one closed case as old, then only the closed
    one is due and purged; the others keep every row."""
    open_ones = {}
    for status in CaseStatus:
        if status is CaseStatus.closed:
            continue
        filed = file_report()
        set_closure(runtime, filed.case_id, closed_at=now - 3650 * DAY, outcome="duplicate", status=status)
        open_ones[filed.case_id] = case_rows(runtime, filed.case_id)
    closed = file_report()
    set_closure(runtime, closed.case_id, closed_at=now - 3650 * DAY, outcome="duplicate")

    with runtime.sessions() as db:
        due = runtime.retention.due(db, now)
        report = runtime.retention.purge(db, now, dry_run=False)
        db.commit()  # the task's transaction

    assert [candidate.case_id for candidate in due] == [closed.case_id]
    assert [case.candidate.case_id for case in report.purged] == [closed.case_id]
    assert case_rows(runtime, closed.case_id)["case_file"] == 0
    for case_id, rows in open_ones.items():
        assert case_rows(runtime, case_id) == rows


def test_the_period_is_counted_from_closing_with_overrides_per_outcome(
    runtime: Runtime, file_report: FileReport, now: datetime
) -> None:
    """Given the shipped policy (default 365 days, duplicate 30, withdrawn 90), then a case is due exactly
    when its period has passed since closing — at the day itself, not the day before — and each candidate
    says since when."""
    closings = {
        ("supported", 364): False,
        ("supported", 365): True,
        ("no_contact", 400): True,
        ("duplicate", 29): False,
        ("duplicate", 30): True,
        ("withdrawn", 31): False,
        ("withdrawn", 90): True,
        (None, 365): True,  # closed past the service without an outcome: the default applies
    }
    cases = {}
    for (outcome, days), _due in closings.items():
        filed = file_report()
        set_closure(runtime, filed.case_id, closed_at=now - days * DAY, outcome=outcome)
        cases[filed.case_id] = (outcome, days)

    with runtime.sessions() as db:
        due = runtime.retention.due(db, now)

    expected = {case_id for case_id, key in cases.items() if closings[key]}
    assert {candidate.case_id for candidate in due} == expected
    periods = {"supported": 365, "no_contact": 365, "duplicate": 30, "withdrawn": 90, None: 365}
    for candidate in due:
        outcome, days = cases[candidate.case_id]
        assert candidate.outcome == outcome
        # Closing times are kept to the minute (docs/clear-columns.md).
        assert candidate.closed_at == truncate_time(now - days * DAY, 60)
        assert candidate.due_since == candidate.closed_at + periods[outcome] * DAY
    # Oldest closure first: the order an operator reads the list in.
    assert [candidate.closed_at for candidate in due] == sorted(candidate.closed_at for candidate in due)


def test_a_dry_run_changes_nothing_and_lists_exactly_what_the_purge_removes(
    runtime: Runtime, file_report: FileReport, work_case: WorkCase, now: datetime
) -> None:
    """Given two due cases (one with a file), one not yet due and an old delivered notification, when a dry
    run runs, then every table and the blob folder are as before; when the purge runs next, it purges
    exactly the cases and deletes exactly the count of outbox rows the dry run listed."""
    worked = file_report()
    work_case(worked)
    set_closure(runtime, worked.case_id, closed_at=now - 40 * DAY, outcome="duplicate")
    plain = file_report()
    set_closure(runtime, plain.case_id, closed_at=now - 500 * DAY, outcome="other")
    young = file_report()
    set_closure(runtime, young.case_id, closed_at=now - 40 * DAY, outcome="withdrawn")
    with runtime.sessions() as db:
        enqueue(db, "notifications.test", case_id=plain.case_id).completed_at = now - 31 * DAY
        db.commit()
    census, files = table_census(runtime), files_on_disk(runtime)

    with runtime.sessions() as db:
        dry = runtime.retention.purge(db, now, dry_run=True)

    assert table_census(runtime) == census
    assert files_on_disk(runtime) == files
    assert dry.dry_run
    assert dry.cases == ()
    assert [candidate.case_id for candidate in dry.candidates] == [plain.case_id, worked.case_id]
    assert dry.outbox_messages == 1

    with runtime.sessions() as db:
        real = runtime.retention.purge(db, now, dry_run=False)
        db.commit()  # the task's transaction

    assert [case.candidate for case in real.purged] == list(dry.candidates)
    assert real.outbox_messages == dry.outbox_messages
    assert case_rows(runtime, young.case_id)["case_file"] == 1


def test_a_case_reopened_after_it_was_listed_survives(
    runtime: Runtime, file_report: FileReport, counsellor: Subject, now: datetime
) -> None:
    """Given a due case listed by `due`, when a counsellor re-opens it before the purge reaches it, then the
    purge keeps it (re-checked under a lock in the purge's own transaction); the same when it was re-opened
    and closed again since, because the period starts again from the new closing."""
    filed = file_report()
    set_closure(runtime, filed.case_id, closed_at=now - 400 * DAY, outcome="supported")
    with runtime.sessions() as db:
        (candidate,) = runtime.retention.due(db, now)
    rows = case_rows(runtime, filed.case_id)

    with runtime.sessions() as db:
        runtime.cases.update(db, counsellor, filed.case_id, CaseUpdate(status="in_progress"))
        db.commit()  # the transaction the endpoint would have run
    with runtime.sessions() as db:
        reopened = runtime.retention.purge_case(db, candidate, now)
    with runtime.sessions() as db:
        runtime.cases.update(db, counsellor, filed.case_id, CaseUpdate(status="closed"))
        db.commit()  # the transaction the endpoint would have run
    with runtime.sessions() as db:
        reclosed = runtime.retention.purge_case(db, candidate, now + DAY)

    assert reopened.result is CaseResult.not_due
    assert reclosed.result is CaseResult.not_due
    assert case_rows(runtime, filed.case_id) == rows
    assert purge_events(runtime) == []


class InjectedFault(Exception):
    """Raised by the test double below; its class name is all a report may show of an error."""


class AuditLogFailingFor(AuditLog):
    """A fault, not a mock: the real audit log, except that appending the purge of one case fails."""

    def __init__(self, key: bytes, case_id: str) -> None:
        super().__init__(key)
        self.case_id = case_id

    def append(self, session: Session, **event: Any) -> AuditEvent:
        if event.get("action") == PURGED_ACTION and event.get("object_id") == self.case_id:
            raise InjectedFault("the description of the case would never be in here")
        return super().append(session, **event)


def test_a_failure_in_one_case_rolls_back_that_case_only(
    runtime: Runtime,
    file_report: FileReport,
    work_case: WorkCase,
    now: datetime,
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Given three due cases where the purge of the middle one fails at its last step, then that case keeps
    every row, its file and its reporter session, its receipt still opens it, and the report names it
    with the error's class name only; the cases before and after it are purged."""
    first, victim, last = file_report(), file_report(), file_report()
    work_case(victim)
    for days, filed in ((500, first), (450, victim), (400, last)):
        set_closure(runtime, filed.case_id, closed_at=now - days * DAY, outcome="supported")
    rows, files = case_rows(runtime, victim.case_id), blob_names(runtime, victim.case_id)
    retention = RetentionService(
        runtime.retention.policy,
        AuditLogFailingFor(runtime.secrets.audit_key, victim.case_id),
        runtime.blobs,
    )

    with runtime.sessions() as db:
        report = retention.purge(db, now, dry_run=False)
        db.commit()  # the task's transaction

    assert [case.candidate.case_id for case in report.cases] == [first.case_id, victim.case_id, last.case_id]
    assert [case.result for case in report.cases] == [CaseResult.purged, CaseResult.failed, CaseResult.purged]
    assert report.failed[0].error == "InjectedFault"
    assert "would never be in here" not in caplog.text
    assert case_rows(runtime, victim.case_id) == rows
    assert files
    assert all(runtime.blobs.exists(name) for name in files)
    assert client.post("/api/v1/reports/lookup", json={"receipt": victim.receipt}).status_code == 200
    assert case_rows(runtime, first.case_id)["case_file"] == 0
    assert case_rows(runtime, last.case_id)["case_file"] == 0
    assert {event.object_id for event in purge_events(runtime)} == {first.case_id, last.case_id}
    with runtime.sessions() as db:
        assert verify(db, runtime.secrets.audit_key).ok


def test_only_delivered_outbox_rows_past_their_period_are_deleted(runtime: Runtime, now: datetime) -> None:
    """Given outbox rows completed 31 and 29 days ago and one never completed from a year ago, then only
    the first is deleted (the shipped period is 30 days); a pending notification is never dropped."""
    with runtime.sessions() as db:
        old = enqueue(db, "notifications.test", case_id="a")
        recent = enqueue(db, "notifications.test", case_id="b")
        pending = enqueue(db, "notifications.test", case_id="c")
        old.completed_at = now - 31 * DAY
        recent.completed_at = now - 29 * DAY
        pending.created_at = pending.available_at = now - 365 * DAY
        db.commit()
        ids = {"old": old.id, "recent": recent.id, "pending": pending.id}

    with runtime.sessions() as db:
        report = runtime.retention.purge(db, now, dry_run=False)
        db.commit()  # the task's transaction

    assert report.outbox_messages == 1
    with runtime.sessions() as db:
        assert set(db.scalars(select(OutboxMessage.id))) >= {ids["recent"], ids["pending"]}
        assert db.get(OutboxMessage, ids["old"]) is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_now_must_carry_a_time_zone(runtime: Runtime) -> None:
    with runtime.sessions() as db, pytest.raises(ValueError, match="timezone-aware"):
        runtime.retention.due(db, datetime(2030, 1, 1))  # noqa: DTZ001 - the mistake under test
