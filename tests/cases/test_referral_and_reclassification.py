"""Referral, transfer and reclassification: who holds the key afterwards, and the statistics row follows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.cases.deadlines import add_months, week_start
from service.extract.models import StatisticsExtract
from service.i18n import LOCAL_ZONE
from service.identity.models import CaseKeyGrant, MembershipRole, Organisation
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.staff import MakeStaff, Staff

REPORT = report_body(description="Beleidigung per Brief.", channel="letter", occurred_on="2026-10-01")

Login = Callable[[Staff], TestClient]  # the `login` fixture of tests/conftest.py


@pytest.fixture
def staff(make_staff: MakeStaff) -> dict[str, Staff]:
    return {
        "by": make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]),
        "legal": make_staff(memberships=[("rechtshilfe", MembershipRole.counsellor)]),
        "police": make_staff(memberships=[("polizei-kontakt", MembershipRole.counsellor)]),
    }


def file(client: TestClient, **changes: object) -> None:
    assert client.post("/api/v1/reports", json={**REPORT, **changes}).status_code == 201


def case_id_of(client: TestClient) -> str:
    return str(client.get("/api/v1/cases").json()[0]["id"])


def test_referral_adds_a_holder_and_keeps_ours(
    client: TestClient, staff: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    file(client)
    by, legal = login(staff["by"]), login(staff["legal"])
    case_id = case_id_of(by)
    assert legal.get("/api/v1/cases").json() == []

    response = by.post(
        f"/api/v1/cases/{case_id}/referrals", json={"organisation": "rechtshilfe", "reporter_consent": True}
    )

    assert response.status_code == 204
    assert (
        legal.get(f"/api/v1/cases/{case_id}").json()["incidents"][0]["description"] == REPORT["description"]
    )
    assert by.get(f"/api/v1/cases/{case_id}").status_code == 200
    assert by.get("/api/v1/cases").json()[0]["status"] == "referred"


def test_transfer_ends_our_access(
    client: TestClient, staff: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    file(client)
    by, legal = login(staff["by"]), login(staff["legal"])
    case_id = case_id_of(by)

    response = by.post(
        f"/api/v1/cases/{case_id}/referrals",
        json={"organisation": "rechtshilfe", "transfer": True, "reporter_consent": True},
    )

    assert response.status_code == 204
    assert by.get(f"/api/v1/cases/{case_id}").status_code == 404
    assert legal.get(f"/api/v1/cases/{case_id}").status_code == 200
    with runtime.sessions() as db:
        org = db.scalars(select(Organisation).where(Organisation.slug == "beratung-by")).one()
        assert db.scalars(select(CaseKeyGrant).where(CaseKeyGrant.organisation_id == org.id)).all() == []
        actions = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.object_id == case_id))]
        # security.md: a transfer away starts a new key epoch of the organisation that let the case go.
        assert org.current_epoch == 2
        rotation = db.scalars(
            select(AuditEvent).where(
                AuditEvent.object_id == org.id, AuditEvent.action == "organisation.key_rotated"
            )
        ).one()
        assert rotation.details == {"epoch": 2, "reason": "transfer_away"}
    assert "case.transfer" in actions
    # The lead of beratung-by still works with both epochs: a new case arrives and opens.
    file(client)
    assert by.get(f"/api/v1/cases/{case_id_of(by)}").status_code == 200


def test_referral_without_consent_or_to_police_without_consent_is_refused(
    client: TestClient, staff: dict[str, Staff], login: Login
) -> None:
    file(client, consent_police=False)
    by, police = login(staff["by"]), login(staff["police"])
    case_id = case_id_of(by)

    no_consent = by.post(
        f"/api/v1/cases/{case_id}/referrals", json={"organisation": "rechtshilfe", "reporter_consent": False}
    )
    police_without = by.post(
        f"/api/v1/cases/{case_id}/referrals",
        json={"organisation": "polizei-kontakt", "reporter_consent": True},
    )
    unknown = by.post(
        f"/api/v1/cases/{case_id}/referrals", json={"organisation": "gibts-nicht", "reporter_consent": True}
    )

    assert no_consent.status_code == 422
    assert police_without.status_code == 422
    assert police_without.json()["detail"][0]["type"] == "consent_police"
    assert unknown.status_code == 422
    assert police.get("/api/v1/cases").json() == []
    assert by.get("/api/v1/cases").json()[0]["status"] == "new"


def test_reclassification_updates_the_incident_and_its_statistics_row(
    client: TestClient, staff: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    occurred = datetime.now(LOCAL_ZONE).date() - timedelta(days=20)
    deadline = add_months(occurred, 3)
    file(client, occurred_on=occurred.isoformat())
    by = login(staff["by"])
    case_id = case_id_of(by)
    # The list shows the deadline's week (it decrypts nothing); the case, the exact day.
    assert by.get("/api/v1/cases").json()[0]["complaint_deadline_week"] == week_start(deadline).isoformat()
    assert by.get(f"/api/v1/cases/{case_id}").json()["incidents"][0]["complaint_deadline_on"] == (
        deadline.isoformat()
    )

    response = by.post(
        f"/api/v1/cases/{case_id}/incidents/1/classification", json={"type_codes": ["A3a", "A1"]}
    )

    assert response.status_code == 204
    summary = by.get("/api/v1/cases").json()[0]
    assert summary["type_codes"] == ["A1", "A3a"]
    assert summary["severity"] == 4
    assert summary["complaint_deadline_week"] == week_start(deadline).isoformat()
    with runtime.sessions() as db:
        extract = db.scalars(select(StatisticsExtract)).one()
        actions = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.object_id == case_id))]
    assert extract.type_codes == ["A1", "A3a"]
    assert extract.primary_type == "A3a"
    assert extract.severity_group == 4
    assert "case.reclassify" in actions
    # Without a complaint-only offence no deadline runs: the reminder date goes, computed from the sealed day.
    assert (
        by.post(
            f"/api/v1/cases/{case_id}/incidents/1/classification", json={"type_codes": ["A3a"]}
        ).status_code
        == 204
    )
    assert by.get("/api/v1/cases").json()[0]["complaint_deadline_week"] is None
    assert by.get(f"/api/v1/cases/{case_id}").json()["incidents"][0]["complaint_deadline_on"] is None


def test_reclassification_with_unknown_codes_changes_nothing(
    client: TestClient, staff: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    file(client)
    by = login(staff["by"])
    case_id = case_id_of(by)
    response = by.post(f"/api/v1/cases/{case_id}/incidents/1/classification", json={"type_codes": ["Q9"]})
    assert response.status_code == 422
    assert by.get("/api/v1/cases").json()[0]["type_codes"] == ["A1"]
    with runtime.sessions() as db:
        assert db.scalars(select(StatisticsExtract)).one().type_codes == ["A1"]
    missing = by.post(f"/api/v1/cases/{case_id}/incidents/9/classification", json={"type_codes": ["A1"]})
    assert missing.status_code == 404
