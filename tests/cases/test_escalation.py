"""Escalation and reminders, driven by an explicit clock: what the beat schedule does when time passes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.cases.deadlines import add_months, week_start
from service.cases.escalation import CaseSchedule
from service.cases.models import Case, Incident
from service.db import utcnow
from service.i18n import LOCAL_ZONE
from service.identity.models import CaseKeyGrant, MembershipRole, Organisation
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.staff import MakeStaff

REPORT = report_body(description="Beleidigung im Netz")


def today_here() -> date:
    return datetime.now(LOCAL_ZONE).date()


def active_holders(runtime: Runtime, case_id: str) -> set[str]:
    with runtime.sessions() as db:
        return set(
            db.scalars(
                select(CaseKeyGrant.organisation_id).where(
                    CaseKeyGrant.case_id == case_id, CaseKeyGrant.active.is_(True)
                )
            )
        )


@pytest.fixture
def schedule(runtime: Runtime) -> CaseSchedule:
    return CaseSchedule(runtime.audit, reporter_waiting_hours=48)


def topics(runtime: Runtime, topic: str) -> list[dict[str, Any]]:
    with runtime.sessions() as db:
        return [row.payload for row in db.scalars(select(OutboxMessage).where(OutboxMessage.topic == topic))]


def org_id(runtime: Runtime, slug: str) -> str:
    with runtime.sessions() as db:
        return db.scalars(select(Organisation.id).where(Organisation.slug == slug)).one()


def grant_state(runtime: Runtime, slug: str) -> CaseKeyGrant:
    with runtime.sessions() as db:
        grant = db.scalars(
            select(CaseKeyGrant).where(CaseKeyGrant.organisation_id == org_id(runtime, slug))
        ).one()
        db.expunge(grant)
        return grant


def case_ids(runtime: Runtime) -> set[str]:
    with runtime.sessions() as db:
        return set(db.scalars(select(Case.id)))


def file_case(client: TestClient, runtime: Runtime, **changes: Any) -> tuple[str, str]:
    # The new case is the one that was not there before: times are kept to the minute, so two cases filed
    # within a minute cannot be told apart by them.
    before = case_ids(runtime)
    response = client.post("/api/v1/reports", json={**REPORT, **changes})
    assert response.status_code == 201
    (case_id,) = case_ids(runtime) - before
    return str(response.json()["receipt"]), case_id


def test_an_unacknowledged_case_escalates_once_when_its_step_is_due(
    client: TestClient, runtime: Runtime, schedule: CaseSchedule, make_staff: MakeStaff, login: Any
) -> None:
    """Given a Bavarian case whose rule escalates to the rota after 24 hours, nothing happens at 23 hours;
    at 24 hours the rota's grant opens, it is told, the step is audited with its reason, and the rota's
    counsellor can read the case; a second run changes nothing."""
    _, case_id = file_case(client, runtime)
    step = grant_state(runtime, "rufbereitschaft")
    assert step.active is False
    minutes = step.escalation_after_minutes
    assert minutes is not None
    created = step.granted_at

    assert schedule.escalate(runtime.sessions, created + timedelta(minutes=minutes - 60)) == []
    rota = login(make_staff(memberships=[("rufbereitschaft", MembershipRole.counsellor)]))
    assert rota.get(f"/api/v1/cases/{case_id}").status_code == 404

    done = schedule.escalate(runtime.sessions, created + timedelta(minutes=minutes + 1))
    assert done == [(case_id, org_id(runtime, "rufbereitschaft"))]
    assert grant_state(runtime, "rufbereitschaft").active is True
    assert topics(runtime, "notifications.escalated") == [
        {"case_id": case_id, "organisation_id": org_id(runtime, "rufbereitschaft"), "urgency": "normal"}
    ]
    with runtime.sessions() as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "case.escalate")).one()
    assert event.actor_kind == "system"
    assert event.object_id == case_id
    assert event.details["reason"] == "not_acknowledged"
    assert event.details["after_minutes"] == minutes
    assert rota.get(f"/api/v1/cases/{case_id}").status_code == 200
    assert schedule.escalate(runtime.sessions, created + timedelta(minutes=minutes + 90)) == []
    assert len(topics(runtime, "notifications.escalated")) == 1


def test_an_acknowledged_case_does_not_escalate(
    client: TestClient, runtime: Runtime, schedule: CaseSchedule, make_staff: MakeStaff, login: Any
) -> None:
    _, case_id = file_case(client, runtime)
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    assert counsellor.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True}).status_code in (200, 204)
    assert schedule.escalate(runtime.sessions, utcnow() + timedelta(days=30)) == []
    assert grant_state(runtime, "rufbereitschaft").active is False


def test_overdue_acknowledgement_reminds_the_holders_once_and_alerts_when_every_step_is_open(
    client: TestClient, runtime: Runtime, schedule: CaseSchedule
) -> None:
    _, case_id = file_case(client, runtime)
    with runtime.sessions() as db:
        deadline = db.get(Case, case_id).ack_deadline_at  # type: ignore[union-attr]
    today = today_here()
    assert schedule.remind(runtime.sessions, deadline - timedelta(minutes=1), today) == []

    late = deadline + timedelta(minutes=1)
    sent = schedule.remind(runtime.sessions, late, today)
    assert (case_id, "ack_overdue", "") in sent
    told = [p["organisation_id"] for p in topics(runtime, "reminders.ack_overdue")]
    assert org_id(runtime, "beratung-by") in told
    assert sorted(told) == sorted(active_holders(runtime, case_id)), "every holder once"
    assert schedule.remind(runtime.sessions, late + timedelta(hours=1), today) == [], "each reminder once"
    assert topics(runtime, "alerts.escalation_exhausted") == [], "a step is still pending"

    schedule.escalate(runtime.sessions, late + timedelta(days=2))
    schedule.remind(runtime.sessions, late + timedelta(days=2), today)
    assert topics(runtime, "alerts.escalation_exhausted") == [{"case_id": case_id}]


def test_a_waiting_reporter_reminds_the_holders_until_someone_answers(
    client: TestClient, runtime: Runtime, schedule: CaseSchedule, make_staff: MakeStaff, login: Any
) -> None:
    receipt, case_id = file_case(client, runtime)
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    counsellor.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True})
    assert (
        client.post("/api/v1/reports/messages", json={"receipt": receipt, "body": "Hallo?"}).status_code
        == 201
    )
    today = today_here()

    assert schedule.remind(runtime.sessions, utcnow() + timedelta(hours=47), today) == []
    sent = schedule.remind(runtime.sessions, utcnow() + timedelta(hours=49), today)
    assert [kind for _, kind, _ in sent] == ["reporter_waiting"]
    assert schedule.remind(runtime.sessions, utcnow() + timedelta(hours=60), today) == []

    assert (
        counsellor.post(f"/api/v1/cases/{case_id}/messages", json={"body": "Wir sind da."}).status_code == 201
    )
    assert (
        client.post("/api/v1/reports/messages", json={"receipt": receipt, "body": "Danke"}).status_code == 201
    )
    again = schedule.remind(runtime.sessions, utcnow() + timedelta(hours=49), today)
    assert [kind for _, kind, _ in again] == ["reporter_waiting"], "a new unanswered message reminds again"
    # Two reminders (one per unanswered message), each to every holder of the case.
    assert len(topics(runtime, "reminders.reporter_waiting")) == 2 * len(active_holders(runtime, case_id))


def test_the_strafantrag_deadline_reminds_two_weeks_and_three_days_before(
    client: TestClient, runtime: Runtime, schedule: CaseSchedule, make_staff: MakeStaff, login: Any
) -> None:
    """Given an insult (prosecuted only on complaint) that happened on a known day, the holders and the
    reporter are reminded from the Monday of the week two weeks before the three months end, and again from
    the Friday before the deadline's week; a closed case is not. The outbox names the stage, not the days."""
    occurred = today_here() - timedelta(days=30)
    deadline = add_months(occurred, 3)
    _, case_id = file_case(client, runtime, occurred_on=occurred.isoformat())
    with runtime.sessions() as db:
        first_on = db.scalars(select(Incident.complaint_reminder_on)).one()
    assert first_on == week_start(deadline - timedelta(days=14))
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    counsellor.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True})
    now = utcnow()

    assert schedule.remind(runtime.sessions, now, first_on - timedelta(days=1)) == []
    first = schedule.remind(runtime.sessions, now, first_on)
    assert sorted(kind for _, kind, _ in first) == ["complaint_14", "complaint_14_reporter"]
    assert 14 <= (deadline - first_on).days <= 20
    for payload in topics(runtime, "reminders.complaint_deadline"):
        assert payload.keys() == {"case_id", "organisation_id", "last_call"}
        assert (payload["case_id"], payload["last_call"]) == (case_id, False)
    assert schedule.remind(runtime.sessions, now, first_on + timedelta(days=10)) == []
    last_call = first_on + timedelta(days=11)
    assert last_call.weekday() == 4, "the Friday before the deadline's week"
    assert 3 <= (deadline - last_call).days <= 9
    last = schedule.remind(runtime.sessions, now, last_call)
    assert sorted(kind for _, kind, _ in last) == ["complaint_3", "complaint_3_reporter"]
    assert topics(runtime, "reminders.reporter_complaint")[-1] == {"case_id": case_id, "last_call": True}
    assert schedule.remind(runtime.sessions, now, deadline + timedelta(days=7)) == [], "past the deadline"

    _, other = file_case(client, runtime, occurred_on=occurred.isoformat())
    with runtime.sessions() as db:
        case = db.get(Case, other)
        assert case is not None
        case.status, case.outcome, case.acknowledged_at = "closed", "supported", now
        db.commit()
    assert schedule.remind(runtime.sessions, now, last_call) == []


def test_every_weekday_of_a_deadline_is_reminded_in_the_right_weeks_once_each(
    client: TestClient, runtime: Runtime, schedule: CaseSchedule
) -> None:
    """Given seven deadlines, one on each weekday, and the beat running once a day: each gets the first
    reminder 14 to 20 days and the last call 3 to 9 days before its deadline (never later than the exact
    rule would, at most six days earlier), each exactly once, and nothing after its week."""
    base = today_here() - timedelta(days=30)
    deadlines: dict[str, date] = {}
    for shift in range(7):
        occurred = base + timedelta(days=shift)
        _, case_id = file_case(client, runtime, occurred_on=occurred.isoformat())
        deadlines[case_id] = add_months(occurred, 3)
    assert {deadline.weekday() for deadline in deadlines.values()} == set(range(7))

    sent: dict[tuple[str, str], list[date]] = {}
    day = min(deadlines.values()) - timedelta(days=25)
    while day <= max(deadlines.values()) + timedelta(days=10):
        for case_id, kind, _ in schedule.remind(runtime.sessions, utcnow(), day):
            sent.setdefault((case_id, kind), []).append(day)
        day += timedelta(days=1)

    for case_id, deadline in deadlines.items():
        (first,) = sent.pop((case_id, "complaint_14"))
        (last,) = sent.pop((case_id, "complaint_3"))
        assert 14 <= (deadline - first).days <= 20, (deadline, first)
        assert 3 <= (deadline - last).days <= 9, (deadline, last)
        assert sent.pop((case_id, "complaint_14_reporter")) == [first]
        assert sent.pop((case_id, "complaint_3_reporter")) == [last]
    assert [kind for _, kind in sent] == [], "nothing else was sent"
