"""Response-time figures per organisation for coordinators (7-day and 3-month marks), 404 for others."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.cases.models import Case, CaseMessage
from service.db import utcnow
from service.identity.models import CaseKeyGrant, MembershipRole, Organisation
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.staff import MakeStaff

REPORT = report_body(type_codes=["A3a"], description="Drohbrief", channel="letter")


def test_coordinators_see_response_times_per_organisation(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, login: Any
) -> None:
    """Given two Bavarian cases opened 10 and 8 days ago, one acknowledged after 2 hours and answered after
    5, the other untouched: half were acknowledged within 7 days, the median is 2 hours, one answer."""
    for _ in range(2):
        assert client.post("/api/v1/reports", json=REPORT).status_code == 201
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    first, second = (row["id"] for row in counsellor.get("/api/v1/cases").json())
    counsellor.patch(f"/api/v1/cases/{first}", json={"acknowledge": True})
    counsellor.post(f"/api/v1/cases/{first}/messages", json={"body": "Wir sind da."})
    now = utcnow()
    with runtime.sessions() as db:
        bavaria = db.scalars(select(Organisation.id).where(Organisation.slug == "beratung-by")).one()
        for case_id, days in ((first, 10), (second, 8)):
            grant = db.scalars(
                select(CaseKeyGrant).where(
                    CaseKeyGrant.case_id == case_id, CaseKeyGrant.organisation_id == bavaria
                )
            ).one()
            grant.opened_at = now - timedelta(days=days)
        case = db.get(Case, first)
        assert case is not None
        case.acknowledged_at = now - timedelta(days=10) + timedelta(hours=2)
        message = db.scalars(select(CaseMessage).where(CaseMessage.case_id == first)).one()
        message.created_at = now - timedelta(days=10) + timedelta(hours=5)
        db.commit()

    coordinator = login(make_staff(coordinator=True))
    response = coordinator.get("/api/v1/dashboard/response-times")

    assert response.status_code == 200
    (bavarian,) = [row for row in response.json() if row["slug"] == "beratung-by"]
    assert bavarian["cases"] == 2
    assert bavarian["acknowledged"] == 1
    assert bavarian["median_hours_to_acknowledge"] == 2.0
    assert bavarian["acknowledged_within_7_days"] == 0.5
    assert bavarian["answered"] == 1
    assert bavarian["median_hours_to_first_answer"] == 5.0
    assert bavarian["answered_within_3_months"] == 1.0, "the other case's 3 months have not passed"
    assert set(bavarian) >= {"organisation", "slug"}
    with runtime.sessions() as db:
        assert db.scalars(select(AuditEvent.action).where(AuditEvent.action == "dashboard.view")).all()


def test_counsellors_administrators_and_strangers_get_404(
    client: TestClient, make_staff: MakeStaff, login: Any
) -> None:
    assert client.get("/api/v1/dashboard/response-times").status_code == 401
    for staff in (
        make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]),
        make_staff(admin=True),
    ):
        assert login(staff).get("/api/v1/dashboard/response-times").status_code == 404
