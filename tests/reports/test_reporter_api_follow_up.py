"""The reporter's follow-up over the JSON API, as on /fall: identifiers for the matching (with the consent,
and withdrawn again), since when the perpetrator is known, and the proceedings. The receipt is in the body,
never in a URL; a wrong receipt is one 404 for every call, and a refusal (422) stores nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.cases.models import Incident
from service.matching.models import PerpetratorToken
from service.runtime import Runtime
from tests.support.forms import report_body

HANDLE = [{"kind": "handle", "value": "@Folge_Probe", "platform": "instagram"}]


def test_identifiers_proceedings_and_the_perpetrator_known_over_the_api(
    client: TestClient, runtime: Runtime
) -> None:
    filed = client.post(
        "/api/v1/reports", json=report_body(type_codes=["A1"], description="Beleidigt.", channel="letter")
    )
    assert filed.status_code == 201
    receipt = filed.json()["receipt"]

    def post(path: str, **body: Any) -> Any:
        return client.post(f"/api/v1/reports/{path}", json={"receipt": receipt, **body})

    def tokens() -> int:
        with runtime.sessions() as db:
            return len(db.scalars(select(PerpetratorToken)).all())

    assert post("identifiers", perpetrator_identifiers=HANDLE).status_code == 422, "no consent, nothing kept"
    assert tokens() == 0
    saved = post("identifiers", perpetrator_identifiers=HANDLE, consent_matching=True)
    assert saved.status_code == 200, saved.text
    assert saved.json() == {"registered": True}
    assert tokens() == 1
    assert post("identifiers/withdraw").status_code == 204
    assert tokens() == 0

    assert post("perpetrator-known", seq=1, perpetrator_known_on="2999-01-01").status_code == 422
    assert post("perpetrator-known", seq=1, perpetrator_known_on="2026-11-02").status_code == 204
    assert post("proceedings", seq=2, file_number="1 Js 1/26").status_code == 404, "no second incident"
    assert post("proceedings", seq=1, file_number="1 Js 1/26", outcome="running").status_code == 204
    with runtime.sessions() as db:
        (seen,) = runtime.intake.reporter_view(db, runtime.intake.open_case(db, receipt)).incidents
        assert seen.perpetrator_known_on == "2026-11-02"
        assert seen.proceedings is not None
        assert seen.proceedings.file_number == "1 Js 1/26"
        incident = db.scalars(select(Incident)).one()
        assert incident.proceedings is not None, "sealed with the case"
        assert b"1 Js 1/26" not in incident.proceedings

    stranger = {"receipt": "ABCD-EFGH-JKMN-PQRS-TVWX"}
    for path, body in (
        ("identifiers", {"perpetrator_identifiers": HANDLE, "consent_matching": True}),
        ("identifiers/withdraw", {}),
        ("perpetrator-known", {"seq": 1, "perpetrator_known_on": "2026-11-02"}),
        ("proceedings", {"seq": 1, "file_number": "2 Js 2/26"}),
    ):
        assert client.post(f"/api/v1/reports/{path}", json={**stranger, **body}).status_code == 404
