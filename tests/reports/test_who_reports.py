"""Who reports, and for whom (issue 18), and the optional KoMo questions of the form.

The form and the JSON intake ask whether the report is the affected person's own, someone else's for them,
or an administration's for its staff; routing may use it (the demo policy's rule "verwaltung" adds legal
aid), it is sealed with the case like the targets, and the counsellor sees it. The KoMo answers (motive,
bias, trigger, consequences) are sealed with the case too, and the statistics row of the report's first
incident keeps their top-level codes for the coordinators' catalogue.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.cases.models import Case, RoutingRecord
from service.extract.models import StatisticsExtract
from service.identity.models import CaseKeyGrant, MembershipRole, Organisation
from service.runtime import Runtime
from tests.support.evidence import assert_nothing_in_clear
from tests.support.forms import report_body, report_form_tokens
from tests.support.staff import MakeStaff, Staff

ADMINISTRATION_REPORT: dict[str, Any] = report_body(
    district_ags="09162",
    description="Ein Bürger hat unsere Sachbearbeiterin im Bürgerbüro wüst beschimpft.",
    channel="in_person.town_hall",
    reported_by="administration",
    targets=["staff"],
    office="municipal_employee",
    motives=["municipal_decision", "entitlement"],
    triggers=["budget_taxes"],
    consequences=["psychological.anxiety", "psychological.sleep", "considered_resigning"],
)


def holders(runtime: Runtime) -> set[str]:
    with runtime.sessions() as db:
        return set(
            db.scalars(
                select(Organisation.slug)
                .join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
                .where(CaseKeyGrant.active.is_(True))
            )
        )


def rules_matched(runtime: Runtime) -> list[list[str | None]]:
    with runtime.sessions() as db:
        records = db.scalars(select(RoutingRecord).order_by(RoutingRecord.created_at)).all()
        return [
            [reason["rule_id"] for reason in record.decision["reasons"] if reason["kind"] == "matched"]
            for record in records
        ]


def test_an_administration_report_is_routed_by_the_policy_and_the_person_affected_is_a_target(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, login: Any
) -> None:
    """Given a mayor's office reporting an insult to an employee (targets: staff, office of the employee)
    When it is filed
    Then the policy's rule for administrations adds legal aid beside the Land's counselling, the counsellor
    reads who reported and for whom, and a further incident is routed with the same sealed answer."""
    response = client.post("/api/v1/reports", json=ADMINISTRATION_REPORT)
    assert response.status_code == 201, response.text
    assert holders(runtime) == {"beratung-by", "rechtshilfe"}
    assert rules_matched(runtime) == [["verwaltung", "land-by"]]

    counsellor: Staff = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    api = login(counsellor)
    (summary,) = api.get("/api/v1/cases").json()
    case = api.get(f"/api/v1/cases/{summary['id']}").json()
    assert case["reported_by"] == "administration"
    assert case["targets"] == ["staff"]
    assert case["office"] == "municipal_employee"
    assert case["consequences"] == ADMINISTRATION_REPORT["consequences"]
    assert case["motives"] == ["municipal_decision", "entitlement"]

    further = {
        "receipt": response.json()["receipt"],
        "type_codes": ["A3b"],
        "description": "Heute kam er wieder und drohte ihr.",
        "channel": "in_person.town_hall",
    }
    assert client.post("/api/v1/reports/incidents", json=further).status_code == 201
    assert rules_matched(runtime)[-1] == ["verwaltung", "land-by"], "routed again from the sealed details"


def test_the_person_affected_reporting_the_same_goes_to_the_land_alone(
    client: TestClient, runtime: Runtime
) -> None:
    for reported_by in ("self", "someone_else"):
        report = {**ADMINISTRATION_REPORT, "reported_by": reported_by, "targets": ["self"]}
        assert client.post("/api/v1/reports", json=report).status_code == 201
    assert holders(runtime) == {"beratung-by"}
    assert rules_matched(runtime) == [["land-by"], ["land-by"]]


def test_who_reports_and_the_answers_are_sealed_and_the_statistics_row_keeps_top_level_codes(
    client: TestClient, runtime: Runtime
) -> None:
    """The case row has no column for who reports; its sealed details hold it with the answers as sent.
    The first incident's statistics row keeps the answers' top-level codes ([] where nothing was chosen), a
    further incident's row none (NULL: not asked)."""
    response = client.post("/api/v1/reports", json=ADMINISTRATION_REPORT)
    assert response.status_code == 201
    further = {
        "receipt": response.json()["receipt"],
        "type_codes": ["A1"],
        "description": "Wieder.",
        "channel": "phone",
    }
    assert client.post("/api/v1/reports/incidents", json=further).status_code == 201
    with runtime.sessions() as db:
        case = db.scalars(select(Case)).one()
        rows = db.scalars(select(StatisticsExtract)).all()
        assert not case.demo
        assert b"administration" not in case.details_ciphertext
        assert b"considered_resigning" not in case.details_ciphertext
        assert "reported_by" not in Case.__table__.columns
    first, second = sorted(rows, key=lambda row: row.motives is None)
    assert first.consequences == ["considered_resigning", "psychological"]
    assert first.motives == ["entitlement", "municipal_decision"]
    assert first.triggers == ["budget_taxes"]
    assert first.bias == []
    assert (second.motives, second.bias, second.triggers, second.consequences) == (None, None, None, None)


def test_unknown_codes_of_the_new_questions_are_refused(client: TestClient, runtime: Runtime) -> None:
    for field, value in (
        ("reported_by", "mayor"),
        ("consequences", ["considered_quitting"]),
        ("motives", ["A1"]),
        ("triggers", ["weather"]),
        ("bias", ["psychological"]),
    ):
        response = client.post("/api/v1/reports", json={**ADMINISTRATION_REPORT, field: value})
        assert response.status_code == 422, field
        assert response.json()["detail"][0]["loc"][0] == field
    with runtime.sessions() as db:
        assert db.scalars(select(Case)).first() is None


def test_the_form_asks_for_whom_and_offers_the_komo_questions_closed(client: TestClient) -> None:
    page = client.get("/melden").text
    assert '<input type="radio" name="reported_by" value="self" checked>' in page
    assert 'value="administration"' in page
    assert page.count('<details class="optional-questions">') == 2, "closed on a fresh form"
    assert 'name="consequences" value="considered_resigning"' in page
    assert "Rücktritt erwogen" in page
    assert 'name="motives" value="municipal_decision"' in page
    assert 'name="triggers" value="refugees_integration"' in page
    assert "<script" not in page


def test_the_form_files_for_someone_else_with_answers_and_the_counsellor_page_shows_them(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, login: Any
) -> None:
    form = client.get("/melden").text
    fields = {
        **report_form_tokens(form),
        "land": "09",
        "type_codes": ["A3a"],
        "description": "Mein Mann, Gemeinderat, bekam einen Drohbrief.",
        "channel": "letter",
        "urgency": "normal",
        "consent_counselling": "1",
        "reported_by": "someone_else",
        "targets": ["self", "partner"],
        "office": "council_member",
        "consequences": ["considered_resigning", "family_burden", "psychological.sleep"],
        "bias": [""],
    }
    response = client.post("/melden", data=fields)
    assert response.status_code == 201, response.text
    with runtime.sessions() as db:
        row = db.scalars(select(StatisticsExtract)).one()
    assert row.consequences == ["considered_resigning", "family_burden", "psychological"]
    assert row.motives == []
    # A thief of the dump: who reported (no rule routed on it) and the answer's detail are sealed only.
    assert_nothing_in_clear(runtime, ["someone_else", "psychological.sleep"])

    counsellor = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    api = login(counsellor)
    (summary,) = api.get("/api/v1/cases").json()
    page = api.get(f"/intern/faelle/{summary['id']}")
    assert page.status_code == 200
    text = page.text
    assert "Ich melde für eine andere Person (Angehörige, Kollegin oder Kollege)" in text
    assert "Folgen: Rücktritt erwogen, Belastung der Familie, Schlafprobleme" in text


def test_a_form_with_an_answer_comes_back_open_after_an_error(client: TestClient) -> None:
    form = client.get("/melden").text
    fields = {
        **report_form_tokens(form),
        "land": "09",
        "type_codes": [],
        "description": "x",
        "channel": "letter",
        "consequences": ["resigned"],
    }
    response = client.post("/melden", data=fields)
    assert response.status_code == 422
    assert '<details class="optional-questions" open>' in response.text
    assert 'value="resigned" checked' in response.text


def test_the_openapi_documents_the_new_fields(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ReportCreate"]["properties"]
    for name in ("reported_by", "motives", "bias", "triggers", "consequences"):
        assert name in schema
    assert json.dumps(schema["reported_by"]).count("administration") >= 1
