"""Issue 15, "A new threat in a closed case is lost": a further incident reopens a closed case.

Given a case closed 80 days ago as withdrawn (90 days' retention), when the reporter adds a death threat, the
case is new again (out of the closed view, into the inbox), routed and notified with the incident's urgency
like a new report (acknowledgement deadline and escalation timers from now), the reopening is audited
without content, and the retention purge, run with its own function and a clock, does not destroy it on the
old schedule: the period counts from the next closing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.auth.subject import Subject
from service.cases.escalation import CaseSchedule
from service.cases.models import Case, CaseStatus
from service.cases.repository import CaseFilters
from service.cases.schemas import CaseUpdate
from service.db import utcnow
from service.identity.models import CaseKeyGrant, MembershipRole, Organisation
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.staff import MakeStaff

REPORT = report_body(district_ags="09162", description="Beleidigung per E-Mail.")
THREAT = {
    "type_codes": ["A3a"],
    "description": "Ich bringe dich um.",
    "channel": "letter",
    "urgency": "acute",
}


@pytest.fixture
def counsellor(make_staff: MakeStaff, subject_of: Any) -> Subject:
    subject: Subject = subject_of(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    return subject


def org_id(runtime: Runtime, slug: str) -> str:
    with runtime.sessions() as db:
        return db.scalars(select(Organisation.id).where(Organisation.slug == slug)).one()


def case_of(runtime: Runtime, case_id: str) -> Case | None:
    with runtime.sessions() as db:
        case = db.get(Case, case_id)
        if case is not None:
            db.expunge(case)
        return case


def outbox(runtime: Runtime, topic: str) -> list[dict[str, Any]]:
    with runtime.sessions() as db:
        return [row.payload for row in db.scalars(select(OutboxMessage).where(OutboxMessage.topic == topic))]


def file_and_close(
    client: TestClient, runtime: Runtime, counsellor: Subject, days_ago: int
) -> tuple[str, str]:
    """A report, acknowledged and closed as withdrawn by the counsellor; the closing moved back in time."""
    response = client.post("/api/v1/reports", json=REPORT)
    assert response.status_code == 201, response.text
    receipt = str(response.json()["receipt"])
    with runtime.sessions() as db:
        case_id = runtime.intake.open_case(db, receipt).case.id
    with runtime.sessions() as db:
        runtime.cases.update(db, counsellor, case_id, CaseUpdate(status="closed", outcome="withdrawn"))
        db.commit()  # the transaction the endpoint would have run
    with runtime.sessions() as db:
        case = db.get(Case, case_id)
        assert case is not None
        assert case.closed_at is not None
        case.closed_at = case.closed_at - timedelta(days=days_ago)
        db.commit()
    return receipt, case_id


def add_threat(client: TestClient, receipt: str) -> None:
    added = client.post("/api/v1/reports/incidents", json={**THREAT, "receipt": receipt})
    assert added.status_code == 201, added.text


def purged(runtime: Runtime, when: Any) -> list[str]:
    with runtime.sessions() as db:
        report = runtime.retention.purge(db, when, dry_run=False)
        db.commit()  # the task's transaction
    return [item.candidate.case_id for item in report.purged]


def test_a_threat_added_80_days_after_closing_survives_the_old_retention_date(
    client: TestClient, runtime: Runtime, counsellor: Subject
) -> None:
    receipt, case_id = file_and_close(client, runtime, counsellor, days_ago=80)

    add_threat(client, receipt)

    # The old schedule (closed 80 days ago, withdrawn: 90 days) would purge it in ten days.
    assert purged(runtime, utcnow() + timedelta(days=11)) == []
    assert purged(runtime, utcnow() + timedelta(days=400)) == []
    assert case_of(runtime, case_id) is not None
    # Closed again, its period counts from the new closing.
    with runtime.sessions() as db:
        runtime.cases.update(db, counsellor, case_id, CaseUpdate(status="closed", outcome="withdrawn"))
        db.commit()  # the transaction the endpoint would have run
    assert purged(runtime, utcnow() + timedelta(days=89)) == []
    assert purged(runtime, utcnow() + timedelta(days=91)) == [case_id]


def test_the_reopened_case_is_new_urgent_and_in_the_inbox(
    client: TestClient, runtime: Runtime, counsellor: Subject
) -> None:
    receipt, case_id = file_and_close(client, runtime, counsellor, days_ago=80)
    with runtime.sessions() as db:
        assert case_id not in {
            row.id for row in runtime.cases.inbox(db, counsellor, CaseFilters(status="new"))
        }
    before = utcnow()

    add_threat(client, receipt)

    case = case_of(runtime, case_id)
    assert case is not None
    assert case.status == CaseStatus.new.value
    assert (case.closed_at, case.outcome, case.acknowledged_at) == (None, None, None)
    assert case.urgency == "acute"
    assert case.reopened_at is not None
    assert case.reopened_at >= before - timedelta(minutes=1)
    # The acute rule's 60 minutes, counted from now, as for a new report.
    assert before + timedelta(minutes=58) <= case.ack_deadline_at <= utcnow() + timedelta(minutes=60)
    with runtime.sessions() as db:
        listed = runtime.cases.inbox(db, counsellor, CaseFilters(status="new"))
    # Listed, and marked: the inbox says why a case the team closed is back.
    assert {row.id: row.reopened for row in listed}[case_id] is True


def test_the_reopening_is_notified_by_urgency_and_audited_without_content(
    client: TestClient, runtime: Runtime, counsellor: Subject
) -> None:
    receipt, case_id = file_and_close(client, runtime, counsellor, days_ago=80)
    with runtime.sessions() as db:
        holders = set(
            db.scalars(
                select(CaseKeyGrant.organisation_id).where(
                    CaseKeyGrant.case_id == case_id, CaseKeyGrant.active.is_(True)
                )
            )
        )
    # The Land's counselling and, for insults by e-mail, the online-hate organisation.
    assert org_id(runtime, "beratung-by") in holders

    add_threat(client, receipt)

    told = outbox(runtime, "notifications.case_reopened")
    assert sorted(told, key=str) == sorted(
        ({"case_id": case_id, "organisation_id": holder, "urgency": "acute"} for holder in holders), key=str
    )
    # The acute rule adds legal aid: a new holder, told like any new case.
    assert {
        "case_id": case_id,
        "organisation_id": org_id(runtime, "rechtshilfe"),
        "urgency": "acute",
    } in outbox(runtime, "notifications.new_case")
    with runtime.sessions() as db:
        (event,) = db.scalars(select(AuditEvent).where(AuditEvent.action == "case.reopen")).all()
    assert (event.actor_kind, event.actor_id, event.object_id) == ("reporter", None, case_id)
    assert event.details == {"reason": "further_incident", "seq": 2, "urgency": "acute"}
    assert "umbringe" not in str(event.details)


def test_the_escalation_timers_of_a_reopened_case_start_at_the_reopening(
    client: TestClient, runtime: Runtime, counsellor: Subject
) -> None:
    """The rota's step, never opened because the case was acknowledged in time, now counts the acute
    rule's 60 minutes from the reopening, not from a filing months ago."""
    receipt, case_id = file_and_close(client, runtime, counsellor, days_ago=80)
    schedule = CaseSchedule(runtime.audit, reporter_waiting_hours=48)
    assert schedule.escalate(runtime.sessions, utcnow()) == []

    add_threat(client, receipt)
    reopened = case_of(runtime, case_id)
    assert reopened is not None
    assert reopened.reopened_at is not None

    assert schedule.escalate(runtime.sessions, reopened.reopened_at + timedelta(minutes=30)) == []
    done = schedule.escalate(runtime.sessions, reopened.reopened_at + timedelta(minutes=61))
    assert done == [(case_id, org_id(runtime, "rufbereitschaft"))]
    with runtime.sessions() as db:
        grant = db.scalars(
            select(CaseKeyGrant).where(
                CaseKeyGrant.case_id == case_id,
                CaseKeyGrant.organisation_id == org_id(runtime, "rufbereitschaft"),
            )
        ).one()
    assert grant.active is True
    assert outbox(runtime, "notifications.escalated")[0]["urgency"] == "acute"


def test_a_further_incident_in_an_open_case_raises_its_urgency_and_does_not_reopen(
    client: TestClient, runtime: Runtime
) -> None:
    response = client.post("/api/v1/reports", json=REPORT)
    receipt = str(response.json()["receipt"])
    add_threat(client, receipt)
    with runtime.sessions() as db:
        case = runtime.intake.open_case(db, receipt).case
        assert (case.status, case.urgency, case.reopened_at) == ("new", "acute", None)
        assert db.scalars(select(AuditEvent).where(AuditEvent.action == "case.reopen")).all() == []
    told = outbox(runtime, "notifications.new_incident")
    assert told
    assert {payload["urgency"] for payload in told} == {"acute"}
