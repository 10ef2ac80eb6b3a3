"""The authorisation matrix of case work, generated from the route table.

Every route under /api/v1/cases is tried by every kind of subject on a case routed to Bayern's counselling
organisation. Only members of an organisation holding the case get through; everyone else gets the same 404
as for a case that does not exist (or an empty list), and the anonymous get 401. A new case route without an
entry in REQUESTS fails the test, so nobody can add an endpoint and forget to think about who may call it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from staff_helpers import MakeStaff, Staff

from service.app import create_app
from service.organisations.models import MembershipRole
from service.runtime import Runtime

# (method, path) -> (body, expected status for a holder)
REQUESTS: dict[tuple[str, str], tuple[dict[str, Any] | None, int]] = {
    ("GET", "/api/v1/cases"): (None, 200),
    ("GET", "/api/v1/cases/{case_id}"): (None, 200),
    ("PATCH", "/api/v1/cases/{case_id}"): ({"acknowledge": True}, 204),
    ("POST", "/api/v1/cases/{case_id}/messages"): ({"body": "Wir melden uns morgen."}, 201),
    ("POST", "/api/v1/cases/{case_id}/notes"): ({"body": "Rückruf vereinbart."}, 201),
    ("GET", "/api/v1/cases/{case_id}/attachments/{attachment_id}"): (None, 200),
    ("POST", "/api/v1/cases/{case_id}/incidents/{seq}/classification"): ({"type_codes": ["A3b"]}, 204),
    ("POST", "/api/v1/cases/{case_id}/referrals"): (
        {"organisation": "rechtshilfe", "reporter_consent": True},
        204,
    ),
}

ROLES = {
    "counsellor": [("beratung-by", MembershipRole.counsellor)],
    "lead": [("beratung-by", MembershipRole.lead)],
    "other_organisation": [("beratung-nw", MembershipRole.counsellor)],
    "escalation_step_only": [("rufbereitschaft", MembershipRole.counsellor)],
    "admin": None,
    "coordinator": None,
    "anonymous": None,
}
HOLDERS = {"counsellor", "lead"}


def test_every_case_route_has_a_matrix_entry(client: TestClient) -> None:
    # The OpenAPI document is built from the route table (routers included at any depth).
    paths = client.get("/openapi.json").json()["paths"]
    routes = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/v1/cases")
        for method in operations
    }
    assert routes == set(REQUESTS), "add new case routes to REQUESTS with the status a holder gets"


@pytest.fixture
def case(client: TestClient) -> None:
    page = client.get("/melden").text
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page)
    assert token
    response = client.post(
        "/melden",
        data={
            "csrf_token": token.group(1),
            "land": "09",
            "type_codes": ["A3a"],
            "description": "Drohung.",
            "channel": "letter",
        },
        files=[("attachments", ("beweis.txt", b"Beweis", "text/plain"))],
    )
    assert response.status_code == 201


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize(("method", "path"), sorted(REQUESTS))
def test_matrix(
    role: str,
    method: str,
    path: str,
    case: None,
    runtime: Runtime,
    make_staff: MakeStaff,
    code: Callable[[Staff], str],
) -> None:
    # The case's identifiers, found by a holder (the subject under test may not be able to list them).
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as holder:
        insider = make_staff(memberships=ROLES["counsellor"])
        login = {"email": insider.email, "password": insider.password, "totp": code(insider)}
        holder.post("/api/v1/session", json=login)
        case_id = holder.get("/api/v1/cases").json()[0]["id"]
        attachment_id = holder.get(f"/api/v1/cases/{case_id}").json()["attachments"][0]["id"]
    url = path.format(case_id=case_id, attachment_id=attachment_id, seq=1)
    body, holder_status = REQUESTS[(method, path)]

    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
        if role != "anonymous":
            subject = make_staff(
                admin=role == "admin", coordinator=role == "coordinator", memberships=ROLES[role] or []
            )
            signed_in = client.post(
                "/api/v1/session",
                json={"email": subject.email, "password": subject.password, "totp": code(subject)},
            )
            assert signed_in.status_code == 200
            client.headers["X-CSRF-Token"] = signed_in.json()["csrf_token"]
        response = client.request(method, url, json=body)

    if role == "anonymous":
        assert response.status_code == 401
    elif role in HOLDERS:
        assert response.status_code == holder_status, response.text
    elif path == "/api/v1/cases":
        assert response.status_code == 200
        assert response.json() == []
    else:
        assert response.status_code == 404, response.text
        assert response.json() == {"detail": "Not found."}
