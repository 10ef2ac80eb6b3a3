"""Every key holder, named (issue 15, "Hidden key holders").

Routing wraps the case key at intake to the targets AND to every escalation step (a stand-in that opens the
case only if nobody acknowledges in time). The receipt and /fall name every organisation with a grant, read
from the grant rows themselves, say when another one could be added, and follow an escalation or a transfer.
The demo policy has an escalation chain: each Land's counselling, the on-call rota after 24 hours; acute
reports add legal aid and the rota after 60 minutes. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.cases.escalation import CaseSchedule
from service.db import utcnow
from service.identity.models import CaseKeyGrant, MembershipRole, Organisation
from service.runtime import Runtime
from tests.support.forms import csrf_token, report_body, report_form_tokens
from tests.support.staff import MakeStaff

BAYERN = "Beratungsstelle Rückhalt Bayern (Demo)"
ROTA = "Rufbereitschaft Rückhalt bundesweit (Demo)"
LEGAL = "Rechtshilfe Rückhalt für schwere Fälle (Demo)"
ONLINE = "Online-Hass-Hilfe Rückhalt (Demo)"
LATER = "Eine weitere Stelle erhält den Schlüssel nur, wenn eine Beratungsstelle Ihren Fall weitergibt"


def receipt_from(html: str) -> str:
    match = re.search(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}", re.sub(r"<[^>]+>", "", html))
    assert match
    return match.group(0)


def file_form(client: TestClient, **fields: Any) -> str:
    data = {
        **report_form_tokens(client.get("/melden").text),
        "land": "09",
        "type_codes": ["A9"],
        "description": "Drohbrief im Briefkasten.",
        "channel": "letter",
        "urgency": "normal",
        "consent_counselling": "1",
        **fields,
    }
    answer = client.post("/melden", data=data)
    assert answer.status_code == 201, answer.text[:2000]
    return answer.text


def holders_listed(page: str) -> dict[str, str]:
    """Name -> state of every organisation the page lists as holding the key."""
    return dict(re.findall(r"<li><strong>([^<]+)</strong> – ([^<]+)</li>", page))


def granted_names(runtime: Runtime) -> set[str]:
    with runtime.sessions() as db:
        return set(
            db.scalars(
                select(Organisation.display_name).join(
                    CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id
                )
            )
        )


def sign_in(client: TestClient, receipt: str) -> str:
    client.post(
        "/fall/anmelden", data={"csrf_token": csrf_token(client.get("/fall").text), "receipt": receipt}
    )
    page = client.get("/fall")
    assert page.status_code == 200
    return page.text


def test_the_receipt_names_every_holder_of_the_key_with_what_it_can_do(
    client: TestClient, runtime: Runtime
) -> None:
    """Given the demo policy, when a Bavarian report is filed, then the receipt names the Land's counselling
    (reads it) and the on-call rota (holds the key from now on; opens the report only if it is not
    acknowledged within 24 hours): exactly the organisations with a grant row, nothing hidden."""
    page = file_form(client)
    listed = holders_listed(page)
    assert set(listed) == granted_names(runtime) == {BAYERN, ROTA}
    assert listed[BAYERN] == "liest Ihren Bericht"
    assert listed[ROTA] == (
        "Vertretung: hat den Schlüssel, öffnet Ihren Bericht aber nur, wenn der Eingang nicht innerhalb von "
        "24 Stunden bestätigt wird"
    )
    assert LATER in page


def test_an_acute_report_names_legal_aid_and_the_one_hour_stand_in(
    client: TestClient, runtime: Runtime
) -> None:
    page = file_form(client, urgency="acute")
    listed = holders_listed(page)
    assert set(listed) == granted_names(runtime) == {BAYERN, LEGAL, ROTA}
    assert "innerhalb von 60 Minuten" in listed[ROTA]
    api = client.post(
        "/api/v1/reports",
        json=report_body(type_codes=["A9"], description="x", channel="letter", urgency="acute"),
    ).json()
    assert {holder["name"]: holder["active"] for holder in api["key_holders"]} == {
        BAYERN: True,
        LEGAL: True,
        ROTA: False,
    }
    assert [h["escalation_after_minutes"] for h in api["key_holders"] if h["name"] == ROTA] == [60]


def test_the_form_says_who_receives_the_key(client: TestClient) -> None:
    form = client.get("/melden").text
    assert "nur an die zuständige Beratungsstelle" not in form
    assert (
        "eine Vertretung, die Ihren Bericht nur öffnet, wenn niemand rechtzeitig den Eingang bestätigt"
        in form
    )


def test_the_case_page_follows_an_escalation(client: TestClient, runtime: Runtime) -> None:
    receipt = receipt_from(file_form(client))
    before = holders_listed(sign_in(client, receipt))
    assert set(before) == {BAYERN, ROTA}
    assert before[ROTA].startswith("Vertretung: hat den Schlüssel")

    done = CaseSchedule(runtime.audit, reporter_waiting_hours=48).escalate(
        runtime.sessions, utcnow() + timedelta(hours=25)
    )
    assert len(done) == 1
    page = client.get("/fall").text
    after = holders_listed(page)
    assert after[ROTA] == "liest Ihren Bericht jetzt (zuerst als Vertretung vorgesehen)"
    assert LATER in page
    lookup = client.post("/api/v1/reports/lookup", json={"receipt": receipt}).json()
    assert {h["name"] for h in lookup["key_holders"]} == {BAYERN, ROTA}


def test_the_case_page_follows_a_transfer(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, login: Any
) -> None:
    """When the Land's counselling hands the case over, the receiving organisation is named as a holder,
    and the one that gave it away no longer is (its grant is gone)."""
    receipt = receipt_from(file_form(client))
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    case_id = counsellor.get("/api/v1/cases").json()[0]["id"]
    moved = counsellor.post(
        f"/api/v1/cases/{case_id}/referrals",
        json={"organisation": "online-hass", "transfer": True, "reporter_consent": True},
    )
    assert moved.status_code == 204, moved.text
    listed = holders_listed(sign_in(client, receipt))
    assert set(listed) == granted_names(runtime) == {ONLINE, ROTA}
    assert listed[ONLINE] == "liest Ihren Bericht, weil eine Beratungsstelle ihn weitergegeben hat"


def test_an_acknowledged_case_says_the_stand_in_will_not_open_it(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, login: Any
) -> None:
    receipt = receipt_from(file_form(client))
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    case_id = counsellor.get("/api/v1/cases").json()[0]["id"]
    assert counsellor.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True}).status_code == 204
    listed = holders_listed(sign_in(client, receipt))
    assert (
        listed[ROTA]
        == "Vertretung: hat den Schlüssel, öffnet Ihren Bericht aber nicht – der Eingang wurde bestätigt"
    )
