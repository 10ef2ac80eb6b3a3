"""Counsellor pages (inbox, case page, its forms) and the reporter's side of the conversation on /fall.

Every person gets a browser-like client of their own, signed in through the HTML sign-in form, so that
cookies (session, CSRF) are never shared between them.
"""

from __future__ import annotations

import html
import io
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, inspect, select

from service.app import create_app
from service.audit.models import AuditEvent
from service.cases import repository
from service.cases.deadlines import add_months, week_start
from service.cases.endpoints import API_CASES_LIMIT
from service.cases.models import Case, CaseMessage, CaseNote, Incident
from service.cases.pages import INBOX_CASES_PER_STATUS
from service.cases.repository import CaseFilters
from service.db import new_id, utcnow
from service.evidence.models import Attachment
from service.extract.models import StatisticsExtract
from service.i18n import LOCAL_ZONE
from service.identity.models import CaseKeyGrant, MembershipRole, Organisation
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from service.taxonomy import type_code_matches
from tests.support.forms import csrf_token, report_body, submission_token
from tests.support.staff import MakeStaff, Staff

DESCRIPTION = "Brief im Rathaus:\n<script>alert(1)</script>\n  „Wir wissen, wo du wohnst.“"
REPORT = report_body(
    district_ags="09162",
    type_codes=["A3a"],
    description=DESCRIPTION,
    channel="letter",
    urgency="high",
    contact_email="buergermeisterin@example.org",
)
NOBODY = "00000000-0000-4000-8000-000000000000"

Browser = Callable[[Staff | None], TestClient]


@pytest.fixture
def browser(runtime: Runtime, code: Callable[[Staff], str]) -> Iterator[Browser]:
    """A fresh client per person; staff are signed in through POST /anmelden with the form's token."""
    with ExitStack() as stack:

        def open_browser(staff: Staff | None) -> TestClient:
            client = stack.enter_context(TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1"))
            if staff is not None:
                form = {
                    "csrf_token": csrf_token(client.get("/anmelden").text),
                    "email": staff.email,
                    "password": staff.password,
                    "code": code(staff),
                }
                signed_in = client.post("/anmelden", data=form, follow_redirects=False)
                assert signed_in.status_code == 303, signed_in.text
            return client

        yield open_browser


@pytest.fixture
def receipt(client: TestClient) -> str:
    response = client.post("/api/v1/reports", json=REPORT)
    assert response.status_code == 201
    return str(response.json()["receipt"])


@pytest.fixture
def people(make_staff: MakeStaff) -> dict[str, Staff]:
    return {
        "counsellor": make_staff(
            name="Anna Berger", memberships=[("beratung-by", MembershipRole.counsellor)]
        ),
        "colleague": make_staff(name="Lena Huber", memberships=[("beratung-by", MembershipRole.lead)]),
        "other_org": make_staff(memberships=[("beratung-sn", MembershipRole.counsellor)]),
        "admin": make_staff(admin=True),
        "coordinator": make_staff(coordinator=True),
    }


@pytest.fixture
def counsellor(browser: Browser, people: dict[str, Staff]) -> TestClient:
    return browser(people["counsellor"])


@pytest.fixture
def case_id(receipt: str, runtime: Runtime) -> str:
    with runtime.sessions() as db:
        return str(db.scalars(select(Case.id)).one())


def stored(runtime: Runtime, case_id: str) -> dict[str, Any]:
    with runtime.sessions() as db:
        case = db.get(Case, case_id)
        assert case is not None
        return {
            "status": case.status,
            "outcome": case.outcome,
            "acknowledged": case.acknowledged_at is not None,
            "assignee_id": case.assignee_id,
            "labels": list(case.labels),
            "messages": db.scalar(select(func.count()).select_from(CaseMessage)),
            "notes": db.scalar(select(func.count()).select_from(CaseNote)),
        }


def post_form(client: TestClient, url: str, data: dict[str, Any], *, token: str | None = "") -> Any:
    """Post a form of the case page; token "" means the page's own token, None means no token at all."""
    fields = dict(data)
    if token == "":
        page_url = url.rsplit("/", 1)[0]
        fields["csrf_token"] = csrf_token(client.get(page_url).text)
    elif token is not None:
        fields["csrf_token"] = token
    return client.post(url, data=fields, follow_redirects=False)


# -- the inbox ----------------------------------------------------------------------------------------------


def test_the_inbox_lists_the_case_for_the_routed_counsellor(counsellor: TestClient, case_id: str) -> None:
    page = counsellor.get("/intern/faelle")

    assert page.status_code == 200
    text = page.text
    assert f'href="/intern/faelle/{case_id}"' in text
    assert f"Fall {case_id[:8]}" in text
    assert "Dringend" in text
    assert "Neu eingegangen" in text
    assert "Bayern" in text
    assert "Todesdrohung" in text
    assert "A3a" in text
    assert "niemand" in text
    assert 'aria-current="page">Fälle' in text
    # The list decrypts nothing: neither the description nor the contact appear, nor is an opening audited.
    assert "Wir wissen" not in text
    assert "buergermeisterin@" not in text
    assert 'class="cases"' in text
    assert "data-label=" in text


def test_the_start_page_and_the_navigation_lead_to_the_inbox(counsellor: TestClient) -> None:
    home = counsellor.get("/intern").text
    assert 'href="/intern/faelle"' in home
    assert "Zum Posteingang" in home


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        ("", True),
        ("?land=09", True),
        ("?land=14", False),
        ("?urgency=high", True),
        ("?urgency=normal", False),
        ("?type=A3", True),
        ("?type=A", True),
        ("?type=A1", False),
        ("?status=new", True),
        ("?status=closed", False),
        ("?status=all", True),
        ("?assignee=me", False),
        # Values that are not on the lists mean "no filter", never an error page.
        ("?status=vanished&land=99&type=%3Cb%3E", True),
    ],
)
def test_inbox_filters(counsellor: TestClient, case_id: str, query: str, listed: bool) -> None:
    page = counsellor.get(f"/intern/faelle{query}")
    assert page.status_code == 200
    assert (f"/intern/faelle/{case_id}" in page.text) is listed
    if not listed:
        assert "Keine Fälle passen zu diesen Filtern." in page.text
        assert "Filter zurücksetzen" in page.text


def test_deadlines_are_marked_overdue_and_soon(
    client: TestClient, counsellor: TestClient, runtime: Runtime
) -> None:
    """The inbox shows the week of a Strafantrag deadline (it decrypts nothing and the server keeps no exact
    day in clear); the holding counsellor's case page shows the exact day, computed from the sealed date."""
    # An insult (A1) is prosecuted only on a request (Strafantrag), due three months after the incident.
    occurred = date.today() - timedelta(days=80)  # noqa: DTZ011 - the form takes a calendar day
    insult = {**REPORT, "type_codes": ["A1"], "occurred_on": occurred.isoformat()}
    assert client.post("/api/v1/reports", json=insult).status_code == 201
    with runtime.sessions() as db:
        case = db.scalars(select(Case)).one()
        case.ack_deadline_at = utcnow() - timedelta(hours=3, minutes=5)
        db.commit()
        case_id = case.id
    deadline = add_months(occurred, 3)
    # Days are counted in German time, as the page does (near midnight UTC that is already tomorrow).
    days = (deadline - datetime.now(LOCAL_ZONE).date()).days
    monday = week_start(deadline)

    inbox = counsellor.get("/intern/faelle").text
    assert '<span class="badge badge--overdue">überfällig</span>' in inbox
    assert "seit 3 Std. überfällig" in inbox
    assert "Frist beachten" in inbox
    assert f"{monday:%d.%m.%Y} – {monday + timedelta(days=6):%d.%m.%Y}" in inbox
    assert "genauer Tag im Fall" in inbox
    assert deadline.strftime("%d.%m.%Y") not in inbox or deadline.weekday() in (0, 6)
    page = counsellor.get(f"/intern/faelle/{case_id}").text
    assert "überfällig" in page
    assert f"noch {days} Tage" in page
    assert deadline.strftime("%d.%m.%Y") in page
    english = counsellor.get("/intern/faelle?lang=en").text
    assert "overdue by 3 h" in english
    assert "exact day in the case" in english
    assert f"{days} days left" in counsellor.get(f"/intern/faelle/{case_id}?lang=en").text


def test_the_type_filter_follows_the_code_structure(client: TestClient, counsellor: TestClient) -> None:
    campaign = {**REPORT, "type_codes": ["A10"], "urgency": "normal"}
    assert client.post("/api/v1/reports", json=campaign).status_code == 201
    assert counsellor.get("/intern/faelle").text.count('class="cases__link"') == 1
    # A10 (campaign) is not a kind of A1 (insult), although its code starts with "A1".
    assert "Keine Fälle passen" in counsellor.get("/intern/faelle?type=A1").text
    assert counsellor.get("/intern/faelle?type=A10").text.count('class="cases__link"') == 1


def test_the_inbox_is_empty_and_says_so(counsellor: TestClient) -> None:
    page = counsellor.get("/intern/faelle")
    assert "Zurzeit liegen keine offenen Fälle vor." in page.text


def test_the_inbox_in_english(counsellor: TestClient, case_id: str) -> None:
    page = counsellor.get("/intern/faelle?lang=en").text
    assert "<h1>Cases</h1>" in page
    assert "Urgent" in page
    assert "Bavaria" in page


def clone_cases(runtime: Runtime, template_id: str, type_codes: list[list[str]]) -> list[str]:
    """Copies of a filed case, one per entry of ``type_codes`` (its one incident's codes), each due to be
    acknowledged a minute before the one before: rows for the list only (their keys and ciphertext are the
    template's, valid for no id but its own), written in one bulk insert per table."""
    with runtime.sessions() as db:
        case = db.get(Case, template_id)
        assert case is not None
        incident = case.incidents[0]
        grants = db.scalars(select(CaseKeyGrant).where(CaseKeyGrant.case_id == template_id)).all()

        def columns(row: Any) -> dict[str, Any]:
            return {attr.key: getattr(row, attr.key) for attr in inspect(type(row)).column_attrs}

        ids = [new_id() for _ in type_codes]
        cases, incidents, keys = [], [], []
        for n, (clone_id, codes) in enumerate(zip(ids, type_codes, strict=True)):
            due = case.ack_deadline_at - timedelta(minutes=n + 1)
            lookup = secrets.token_bytes(32)
            cases.append({**columns(case), "id": clone_id, "lookup_hash": lookup, "ack_deadline_at": due})
            incidents.append({**columns(incident), "id": new_id(), "case_id": clone_id, "type_codes": codes})
            keys += [{**columns(grant), "id": new_id(), "case_id": clone_id} for grant in grants]
        db.execute(insert(Case), cases)
        db.execute(insert(Incident), incidents)
        db.execute(insert(CaseKeyGrant), keys)
        db.commit()
    return ids


LISTED = 'class="cases__link"'
CUT = "Es werden nicht alle Fälle angezeigt."


def test_a_filtered_inbox_over_the_limit_lists_every_match_and_a_cut_list_says_so(
    counsellor: TestClient, case_id: str, runtime: Runtime
) -> None:
    """Given the filed case (A3a) behind more cases with older deadlines (A1) than the inbox shows, the type
    filter still finds it (the filter runs before the limit), and only a list that was cut says so."""
    clone_cases(runtime, case_id, [["A1"]] * (INBOX_CASES_PER_STATUS - 1))
    full = counsellor.get("/intern/faelle").text
    assert full.count(LISTED) == INBOX_CASES_PER_STATUS
    assert CUT not in full, "exactly a page of cases: nothing was cut"

    clone_cases(runtime, case_id, [["A1"]] * 50)
    cut = counsellor.get("/intern/faelle").text
    assert cut.count(LISTED) == INBOX_CASES_PER_STATUS
    assert CUT in cut
    assert f"/intern/faelle/{case_id}" not in cut, "the latest deadline is the one left out"

    threats = counsellor.get("/intern/faelle?type=A3").text
    assert threats.count(LISTED) == 1
    assert f"/intern/faelle/{case_id}" in threats
    assert CUT not in threats
    insults = counsellor.get("/intern/faelle?type=A1").text
    assert insults.count(LISTED) == INBOX_CASES_PER_STATUS
    assert CUT in insults
    only = counsellor.get("/api/v1/cases?type=A3a")
    assert [row["id"] for row in only.json()] == [case_id]
    assert only.headers["x-rueckhalt-truncated"] == "false"
    # The JSON list is cut at its limit too, and says so: a tool must not take it for every case.
    everything = counsellor.get("/api/v1/cases")
    assert len(everything.json()) == API_CASES_LIMIT
    assert everything.headers["x-rueckhalt-truncated"] == "true"


def test_the_type_filter_in_sql_follows_the_taxonomy_rule_for_every_code(
    case_id: str, runtime: Runtime
) -> None:
    """Each code of the taxonomy as a selector finds exactly the cases whose code the taxonomy's rule
    (``type_code_matches``) puts under it, on both databases; a case with two codes is found by either."""
    codes = [code for code in runtime.taxonomy.all_type_codes() if code not in runtime.taxonomy.group_codes()]
    clones = dict(zip(clone_cases(runtime, case_id, [[code] for code in codes]), codes, strict=True))
    [pair] = clone_cases(runtime, case_id, [["A1", "C2"]])
    with runtime.sessions() as db:
        organisations = set(db.scalars(select(CaseKeyGrant.organisation_id)))
        for selector in (*runtime.taxonomy.all_type_codes(), "A99", "a1", "<b>"):
            found = repository.visible_cases(db, organisations, CaseFilters(type_code=selector, limit=1000))
            expected = {clone for clone, code in clones.items() if type_code_matches(code, selector)}
            if type_code_matches("A3a", selector):
                expected.add(case_id)
            if type_code_matches("A1", selector) or type_code_matches("C2", selector):
                expected.add(pair)
            assert {case.id for case in found} == expected, selector


def test_the_inbox_needs_a_session(client: TestClient) -> None:
    response = client.get("/intern/faelle", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/anmelden"


@pytest.mark.parametrize("who", ["other_org", "admin", "coordinator"])
def test_nobody_else_sees_or_changes_the_case(
    who: str, browser: Browser, people: dict[str, Staff], case_id: str, runtime: Runtime
) -> None:
    outsider = browser(people[who])
    inbox = outsider.get("/intern/faelle")
    assert inbox.status_code == 200
    assert case_id not in inbox.text

    page = outsider.get(f"/intern/faelle/{case_id}")
    missing = outsider.get(f"/intern/faelle/{NOBODY}")
    assert page.status_code == missing.status_code == 404
    # The same page as for a case that does not exist: nothing tells that this one does.
    assert page.text.replace(case_id, NOBODY) == missing.text
    assert outsider.get("/intern/faelle/not-a-case").status_code == 404

    token = csrf_token(inbox.text)
    for action, data in [
        ("bestaetigen", {}),
        ("status", {"status": "closed", "outcome": "supported"}),
        ("zuweisen", {"action": "me"}),
        ("labels", {"labels": "legal"}),
        ("nachricht", {"message": "Hallo"}),
        ("notiz", {"note": "Notiz"}),
    ]:
        response = outsider.post(f"/intern/faelle/{case_id}/{action}", data={**data, "csrf_token": token})
        assert response.status_code == 404, action
    assert stored(runtime, case_id) == {
        "status": "new",
        "outcome": None,
        "acknowledged": False,
        "assignee_id": None,
        "labels": [],
        "messages": 0,
        "notes": 0,
    }
    with runtime.sessions() as db:
        assert db.scalars(select(AuditEvent).where(AuditEvent.object_id == case_id)).all() == []


# -- the case page ------------------------------------------------------------------------------------------


def test_counsellors_see_that_the_complaint_period_has_not_begun_while_the_perpetrator_is_unknown(
    client: TestClient, counsellor: TestClient, runtime: Runtime
) -> None:
    """§ 77b Abs. 2 StGB: the three months start when the reporter learns who it was. With an unknown
    perpetrator the case page names no day and never says "abgelaufen"; counted only from the incident day,
    a passed day is "possibly" passed."""
    unknown = {
        **REPORT,
        "type_codes": ["A1"],  # an insult: prosecuted only on a Strafantrag
        "occurred_on": "2020-01-10",
        "perpetrator_familiarity": "unknown",
    }
    from_incident = {**unknown, "perpetrator_familiarity": None}
    for body in (unknown, from_incident):
        assert client.post("/api/v1/reports", json=body).status_code == 201
    with runtime.sessions() as db:
        first, second = db.scalars(select(Case.id).order_by(Case.created_at)).all()
    page = " ".join(counsellor.get(f"/intern/faelle/{first}").text.split())
    assert "läuft noch nicht: Die Tatperson ist nicht bekannt." in page
    assert "abgelaufen" not in page
    page = " ".join(counsellor.get(f"/intern/faelle/{second}").text.split())
    assert "möglicherweise abgelaufen" in page


def test_the_case_page_shows_the_case_as_filed_and_escaped(
    counsellor: TestClient, case_id: str, runtime: Runtime
) -> None:
    page = counsellor.get(f"/intern/faelle/{case_id}")

    assert page.status_code == 200
    text = page.text
    assert "<script>alert(1)</script>" not in text
    # Exactly as filed, line breaks included (CSS keeps them), and escaped.
    # Isolated (issue 15): text a person wrote cannot reorder the page around it.
    isolated = f'<bdi class="user-text" dir="auto">{html.escape(DESCRIPTION, quote=False)}</bdi>'
    assert f'<p class="textblock">{isolated}</p>' in text
    assert "buergermeisterin@example.org" in text
    assert "Beratungsstelle Rückhalt Bayern (Demo)" in text
    assert "Regel trifft zu" in text
    assert "Eingang bestätigen" in text
    assert "Strafantragsfrist" in text
    assert "intern – für die meldende Person nicht sichtbar" in text
    assert "München" in text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    with runtime.sessions() as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.object_id == case_id))]
    assert actions == ["case.decrypt"]


def test_attachments_are_linked_to_the_api_download(
    client: TestClient, counsellor: TestClient, runtime: Runtime
) -> None:
    form = client.get("/melden").text
    evidence = b"Screenshot-Text: Wir kommen wieder.\n"
    fields = {k: v for k, v in REPORT.items() if k != "contact_email"}
    filed = client.post(
        "/melden",
        data={**fields, "csrf_token": csrf_token(form), "submission_token": submission_token(form)},
        files=[("attachments", ("<b>Drohung</b>.txt", evidence, "text/plain"))],
    )
    assert filed.status_code == 201
    with runtime.sessions() as db:
        case_id = db.scalars(select(Case.id)).one()
    page = counsellor.get(f"/intern/faelle/{case_id}").text

    assert "&lt;b&gt;Drohung&lt;/b&gt;.txt" in page
    link = re.search(rf'href="(/api/v1/cases/{case_id}/attachments/[0-9a-f-]+)"', page)
    assert link
    download = counsellor.get(link.group(1))
    assert download.status_code == 200
    assert download.content == evidence


def test_acknowledge(counsellor: TestClient, case_id: str, runtime: Runtime) -> None:
    url = f"/intern/faelle/{case_id}/bestaetigen"
    response = post_form(counsellor, url, {})

    assert response.status_code == 303
    assert response.headers["location"] == f"/intern/faelle/{case_id}?notice=acknowledged"
    page = counsellor.get(response.headers["location"]).text
    assert "Der Eingang ist bestätigt." in page
    assert "Eingang bestätigen</button>" not in page
    assert stored(runtime, case_id)["status"] == "acknowledged"
    assert "Eingang bestätigt" in counsellor.get("/intern/faelle").text


FORMS = [
    ("bestaetigen", {}),
    ("status", {"status": "closed", "outcome": "supported"}),
    ("zuweisen", {"action": "me"}),
    ("labels", {"labels": ["legal"]}),
    ("nachricht", {"message": "Guten Tag, wir melden uns."}),
    ("notiz", {"note": "Rückruf vereinbart."}),
    ("weitergeben", {"organisation": "rechtshilfe", "mode": "refer", "consent": "yes"}),
    ("vorfaelle/1/einordnung", {"type_codes": ["A1"]}),
]


@pytest.mark.parametrize(("action", "data"), FORMS)
@pytest.mark.parametrize("token", [None, "0" * 64, "abc"])
def test_every_form_refuses_a_missing_or_forged_token(
    counsellor: TestClient,
    case_id: str,
    runtime: Runtime,
    action: str,
    data: dict[str, Any],
    token: str | None,
) -> None:
    before = stored(runtime, case_id)
    response = post_form(counsellor, f"/intern/faelle/{case_id}/{action}", data, token=token)

    assert response.status_code == 403
    assert "Formular abgelaufen" in response.text
    assert stored(runtime, case_id) == before
    for text in ("Guten Tag, wir melden uns.", "Rückruf vereinbart."):
        if text in str(data.values()):
            assert f">{text}</textarea>" in response.text, "the typed text is still there"


def test_closing_needs_an_outcome_and_keeps_everything(
    counsellor: TestClient, case_id: str, runtime: Runtime
) -> None:
    url = f"/intern/faelle/{case_id}/status"
    refused = post_form(counsellor, url, {"status": "closed", "outcome": ""})

    assert refused.status_code == 422
    assert "Bitte wählen Sie ein Ergebnis, um den Fall abzuschließen." in refused.text
    assert 'href="#field-outcome"' in refused.text
    assert '<option value="closed" selected>' in refused.text
    assert 'aria-invalid="true"' in refused.text
    assert stored(runtime, case_id)["status"] == "new"

    closed = post_form(counsellor, url, {"status": "closed", "outcome": "supported"})
    assert closed.status_code == 303
    assert closed.headers["location"] == f"/intern/faelle/{case_id}?notice=status_saved#work"
    page = counsellor.get(closed.headers["location"]).text
    assert "Der Stand wurde gespeichert." in page
    assert "Ergebnis: Beraten und unterstützt" in page
    assert stored(runtime, case_id)["status"] == "closed"
    # Closed cases leave the default (open) inbox and stay findable.
    assert case_id not in counsellor.get("/intern/faelle").text
    assert case_id in counsellor.get("/intern/faelle?status=closed").text


def test_an_unknown_status_is_refused(counsellor: TestClient, case_id: str, runtime: Runtime) -> None:
    response = post_form(counsellor, f"/intern/faelle/{case_id}/status", {"status": "x" * 40, "outcome": ""})
    assert response.status_code == 422
    assert 'href="#field-status"' in response.text
    assert stored(runtime, case_id)["status"] == "new"


def test_assign_to_me_and_unassign(
    counsellor: TestClient, browser: Browser, people: dict[str, Staff], case_id: str, runtime: Runtime
) -> None:
    url = f"/intern/faelle/{case_id}/zuweisen"
    assigned = post_form(counsellor, url, {"action": "me"})
    assert assigned.status_code == 303
    assert stored(runtime, case_id)["assignee_id"] == people["counsellor"].user_id
    assert "mir zugewiesen" in counsellor.get("/intern/faelle").text
    assert case_id in counsellor.get("/intern/faelle?assignee=me").text

    colleague = browser(people["colleague"])
    assert "Anna Berger" in colleague.get("/intern/faelle").text
    assert "Zugewiesen an Anna Berger." in colleague.get(f"/intern/faelle/{case_id}").text

    unassigned = post_form(counsellor, url, {"action": "none"})
    assert unassigned.headers["location"].endswith("?notice=unassigned#work")
    assert stored(runtime, case_id)["assignee_id"] is None
    assert post_form(counsellor, url, {"action": "someone"}).status_code == 422


def test_labels_are_set_and_cleared(counsellor: TestClient, case_id: str, runtime: Runtime) -> None:
    url = f"/intern/faelle/{case_id}/labels"
    saved = post_form(counsellor, url, {"labels": ["police", "legal"]})
    assert saved.status_code == 303
    assert stored(runtime, case_id)["labels"] == ["legal", "police"]
    page = counsellor.get(f"/intern/faelle/{case_id}").text
    assert 'value="legal" checked' in page
    assert '<span class="tag">Polizei</span>' in counsellor.get("/intern/faelle").text

    refused = post_form(counsellor, url, {"labels": ["legal", "nonsense"]})
    assert refused.status_code == 422
    assert 'href="#field-labels"' in refused.text
    assert stored(runtime, case_id)["labels"] == ["legal", "police"]

    cleared = post_form(counsellor, url, {})
    assert cleared.status_code == 303
    assert stored(runtime, case_id)["labels"] == []


@pytest.mark.parametrize(
    ("action", "field", "text", "problem"),
    [
        ("nachricht", "message", "   \n ", "Bitte ausfüllen."),
        ("notiz", "note", "x" * 10_001, "Der Text ist zu lang."),
        ("nachricht", "message", "Hallo\x00Welt", "technisches Steuerzeichen"),
    ],
)
def test_a_refused_message_or_note_keeps_the_text(
    counsellor: TestClient, case_id: str, runtime: Runtime, action: str, field: str, text: str, problem: str
) -> None:
    response = post_form(counsellor, f"/intern/faelle/{case_id}/{action}", {field: text})

    assert response.status_code == 422
    assert problem in response.text
    assert f'href="#field-{field}"' in response.text
    if "\x00" not in text:
        assert f">{html.escape(text)}</textarea>" in response.text
    assert stored(runtime, case_id)["messages"] == stored(runtime, case_id)["notes"] == 0


# -- the conversation, both ways -------------------------------------------------------------------------


def reporter_signed_in(browser: Browser, receipt: str) -> TestClient:
    reporter = browser(None)
    form = reporter.get("/fall").text
    signed_in = reporter.post("/fall/anmelden", data={"csrf_token": csrf_token(form), "receipt": receipt})
    assert signed_in.status_code == 200
    return reporter


def test_messages_and_notes_round_trip_with_the_reporter(
    counsellor: TestClient, browser: Browser, receipt: str, case_id: str, runtime: Runtime
) -> None:
    url = f"/intern/faelle/{case_id}"
    message = "Guten Tag,\nwir sind für Sie da. <b>Rufen</b> Sie uns an."
    sent = post_form(counsellor, f"{url}/nachricht", {"message": message})
    assert sent.status_code == 303
    assert sent.headers["location"] == f"{url}?notice=message_sent#conversation"
    noted = post_form(counsellor, f"{url}/notiz", {"note": "Polizei noch nicht informiert."})
    assert noted.headers["location"] == f"{url}?notice=note_added#notes"

    reporter = reporter_signed_in(browser, receipt)
    own = reporter.get("/fall").text
    assert html.escape(message, quote=False) in own
    assert "<b>Rufen</b>" not in own
    assert "Beratungsstelle Rückhalt Bayern (Demo)" in own
    assert "Anna Berger" not in own, "the reporter sees the organisation, not the counsellor"
    assert "Polizei noch nicht informiert." not in own

    reply = reporter.post(
        "/fall/nachricht",
        data={"csrf_token": csrf_token(own), "message": "Danke!\nIch rufe morgen an."},
        follow_redirects=False,
    )
    assert reply.status_code == 303
    assert reply.headers["location"] == "/fall?notice=message_sent#messages"
    after = reporter.get(reply.headers["location"]).text
    assert "Ihre Nachricht wurde verschlüsselt gesendet." in after
    assert "Danke!\nIch rufe morgen an." in after

    page = counsellor.get(url).text
    assert "Danke!\nIch rufe morgen an." in page
    assert "Meldende Person" in page
    assert "Polizei noch nicht informiert." in page
    assert "Anna Berger, Beratungsstelle Rückhalt Bayern (Demo)" in page
    assert stored(runtime, case_id)["status"] == "in_progress"


def test_a_refused_reply_keeps_the_text(browser: Browser, receipt: str, runtime: Runtime) -> None:
    reporter = reporter_signed_in(browser, receipt)
    text = "Bitte rufen Sie mich an."
    forged = reporter.post("/fall/nachricht", data={"csrf_token": "0" * 64, "message": text})
    assert forged.status_code == 403
    assert f">{text}</textarea>" in forged.text
    assert 'href="#field-message"' in forged.text

    token = csrf_token(reporter.get("/fall").text)
    empty = reporter.post("/fall/nachricht", data={"csrf_token": token, "message": "  "})
    assert empty.status_code == 422
    assert "Nachricht: Bitte ausfüllen." in empty.text
    too_long = reporter.post("/fall/nachricht", data={"csrf_token": token, "message": "y" * 10_001})
    assert too_long.status_code == 422
    assert "y" * 10_001 in too_long.text
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(CaseMessage)) == 0


def message_token(page: str) -> str:
    found = re.search(r'name="message_token" value="([^"]+)"', page)
    assert found, "the message form carries a token of its view"
    return found.group(1)


def test_a_second_tap_on_send_sends_the_message_once(
    browser: Browser, receipt: str, runtime: Runtime
) -> None:
    """The message form's view carries a token of its own: the same view sent twice (a second tap on a slow
    connection) stores one message and says so; the next view sends the next message. A client that sends
    no token (the JSON API, an older page) is never refused for it."""
    reporter = reporter_signed_in(browser, receipt)
    page = reporter.get("/fall").text
    view = {
        "csrf_token": csrf_token(page),
        "message_token": message_token(page),
        "message": "Heute kam noch ein Brief.",
    }
    first = reporter.post("/fall/nachricht", data=view, follow_redirects=False)
    again = reporter.post("/fall/nachricht", data=view, follow_redirects=False)

    assert first.headers["location"] == "/fall?notice=message_sent#messages"
    assert again.status_code == 303
    assert again.headers["location"] == "/fall?notice=message_already_sent#messages"
    assert "Sie wurde kein zweites Mal gesendet." in reporter.get(again.headers["location"]).text
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(CaseMessage)) == 1
    # Back restores the page with its token, and a new text is written into it: that is sent.
    rewritten = reporter.post(
        "/fall/nachricht", data={**view, "message": "Und noch etwas."}, follow_redirects=False
    )
    assert rewritten.headers["location"] == "/fall?notice=message_sent#messages"

    assert message_token(reporter.get("/fall").text) != view["message_token"]
    untokened = {"csrf_token": view["csrf_token"], "message": "Und ohne Formular-Token."}
    expired = {**untokened, "message_token": view["message_token"][:-4] + "AAAA"}
    for data in (untokened, expired, untokened):
        assert reporter.post("/fall/nachricht", data=data, follow_redirects=False).status_code == 303
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(CaseMessage)) == 5


def view_token(page: str, form: str) -> str:
    """The single-use token of one view of the case page's message or note form."""
    action = "nachricht" if form == "message" else "notiz"
    section = page[page.index(f'/{action}" method="post"') :]
    found = re.search(r'name="view_token" value="([^"]+)"', section)
    assert found, f"the {form} form carries a token of its view"
    return found.group(1)


@pytest.mark.parametrize(
    ("form", "action", "field", "model", "notice", "said"),
    [
        (
            "message",
            "nachricht",
            "message",
            CaseMessage,
            "message_already_sent#conversation",
            "kein zweites Mal gesendet",
        ),
        ("note", "notiz", "note", CaseNote, "note_already_added#notes", "kein zweites Mal gespeichert"),
    ],
)
def test_a_second_tap_on_the_case_page_stores_the_text_once(
    counsellor: TestClient,
    case_id: str,
    runtime: Runtime,
    form: str,
    action: str,
    field: str,
    model: type[CaseMessage] | type[CaseNote],
    notice: str,
    said: str,
) -> None:
    """A counsellor taps "send" twice on a slow connection (or goes Back and sends again): the reporter gets
    the message once, the case file has the note once, and the page says why nothing more was stored. The
    next view of the form sends the next text; a form without its token (a page left open for a day, whose
    token has expired, or a client that sends none) is never refused for it."""
    url = f"/intern/faelle/{case_id}"
    page = counsellor.get(url).text
    view = {
        "csrf_token": csrf_token(page),
        "view_token": view_token(page, form),
        field: "Rückruf morgen 9 Uhr.",
    }

    first = counsellor.post(f"{url}/{action}", data=view, follow_redirects=False)
    again = counsellor.post(f"{url}/{action}", data=view, follow_redirects=False)

    assert first.status_code == again.status_code == 303
    assert again.headers["location"] == f"{url}?notice={notice}"
    assert said in counsellor.get(again.headers["location"]).text
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(model)) == 1
        reporter_told = db.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.topic == "notifications.reporter_message")
        )
    assert reporter_told == (1 if form == "message" else 0), "the reporter is told once"

    # Back restores the page with its token, and a new text is written into it: that is stored.
    rewritten = counsellor.post(
        f"{url}/{action}", data={**view, field: "Nach Zurück neu geschrieben."}, follow_redirects=False
    )
    assert rewritten.headers["location"] == f"{url}?notice={notice.replace('_already', '')}"

    fresh = view_token(counsellor.get(url).text, form)
    assert fresh != view["view_token"]
    other_form = view_token(counsellor.get(url).text, "note" if form == "message" else "message")
    untokened = {"csrf_token": view["csrf_token"], field: "Ohne Token."}
    for data in (
        {**untokened, "view_token": fresh},
        untokened,
        {**untokened, "view_token": view["view_token"][:-4] + "AAAA"},  # forged or expired
        {**untokened, "view_token": other_form},  # the other form's: made for something else
    ):
        assert counsellor.post(f"{url}/{action}", data=data, follow_redirects=False).status_code == 303
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(model)) == 6


def test_a_second_tap_with_files_leaves_no_blob_and_a_stranger_still_gets_404(
    counsellor: TestClient, case_id: str, runtime: Runtime, browser: Browser, people: dict[str, Staff]
) -> None:
    """The files of the second submission were encrypted while the form streamed in: they are deleted with
    nothing stored. Whoever may not see the case gets the 404 with the used token too, never the notice."""
    url = f"/intern/faelle/{case_id}"
    page = counsellor.get(url).text
    view = {"csrf_token": csrf_token(page), "view_token": view_token(page, "message"), "message": "Anbei."}
    files = [("message_files", ("Merkblatt.pdf", PDF, "application/pdf"))]
    assert (
        counsellor.post(f"{url}/nachricht", data=view, files=files, follow_redirects=False).status_code == 303
    )
    kept = blobs_on_disk(runtime)
    assert len(kept) == 1

    again = counsellor.post(f"{url}/nachricht", data=view, files=files, follow_redirects=False)

    assert again.headers["location"].endswith("notice=message_already_sent#conversation")
    assert blobs_on_disk(runtime) == kept
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Attachment)) == 1
    stranger = browser(people["other_org"])
    own_form = csrf_token(stranger.get("/intern/faelle").text)
    refused = stranger.post(
        f"{url}/nachricht", data={**view, "csrf_token": own_form}, files=files, follow_redirects=False
    )
    assert refused.status_code == 404
    assert blobs_on_disk(runtime) == kept


def test_a_reply_without_a_reporter_session_goes_to_sign_in(client: TestClient, receipt: str) -> None:
    token = csrf_token(client.get("/fall").text)
    response = client.post(
        "/fall/nachricht", data={"csrf_token": token, "message": "x"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/fall"


# -- files with messages, both ways ----------------------------------------------------------------------

PDF = b"%PDF-1.4\n% Merkblatt Strafantrag\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def jpeg_with_gps() -> bytes:
    from PIL import Image

    image = Image.new("RGB", (32, 24), (20, 90, 200))
    exif = Image.Exif()
    exif[0x010F] = "CanaryCam"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def send_with_files(client: TestClient, url: str, page_url: str, text: str, files: list[Any]) -> Any:
    token = csrf_token(client.get(page_url).text)
    return client.post(url, data={"csrf_token": token, "message": text}, files=files, follow_redirects=False)


def links(page: str, prefix: str) -> list[str]:
    return re.findall(rf'<a href="({re.escape(prefix)}[^"]+)" download>', page)


def blobs_on_disk(runtime: Runtime) -> list[Any]:
    root = runtime.settings.blob_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_files_travel_with_messages_both_ways(
    counsellor: TestClient, browser: Browser, client: TestClient, receipt: str, case_id: str, runtime: Runtime
) -> None:
    url = f"/intern/faelle/{case_id}"
    sent = send_with_files(
        counsellor,
        f"{url}/nachricht",
        url,
        "Anbei unser Merkblatt.",
        [("message_files", ("Merkblatt Strafantrag.pdf", PDF, "application/pdf"))],
    )
    assert sent.status_code == 303, sent.text

    # The reporter sees the file beside the message and downloads it decrypted, as sent.
    reporter = reporter_signed_in(browser, receipt)
    own = reporter.get("/fall").text
    assert "Merkblatt Strafantrag.pdf" in own
    (href,) = links(own, "/fall/anhang/")
    download = reporter.get(href)
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-disposition"].startswith("attachment;")

    # The JSON API shows the same file and streams it for the receipt.
    looked_up = client.post("/api/v1/reports/lookup", json={"receipt": receipt}).json()
    (listed,) = looked_up["messages"][0]["attachments"]
    assert listed["filename"] == "Merkblatt Strafantrag.pdf"
    assert listed["size_bytes"] == len(PDF)
    by_api = client.post(f"/api/v1/reports/attachments/{listed['id']}", json={"receipt": receipt})
    assert by_api.status_code == 200
    assert by_api.content == PDF

    # The reporter answers with a photo; its GPS position is gone before it is encrypted.
    reply = send_with_files(
        reporter,
        "/fall/nachricht",
        "/fall",
        "Hier das Foto vom Zettel.",
        [("message_files", ("IMG_0001.jpg", jpeg_with_gps(), "image/jpeg"))],
    )
    assert reply.status_code == 303, reply.text
    page = counsellor.get(url).text
    photo_links = [link for link in links(page, f"/api/v1/cases/{case_id}/attachments/") if link != href]
    assert "IMG_0001.jpg" in page
    photos = [counsellor.get(link) for link in photo_links]
    photo = next(item for item in photos if item.headers["content-type"] == "image/jpeg")
    assert b"CanaryCam" not in photo.content
    with runtime.sessions() as db:
        downloads = db.scalars(select(AuditEvent).where(AuditEvent.action == "attachment.download")).all()
        kinds = db.scalars(select(Attachment.uploaded_by).order_by(Attachment.created_at)).all()
    by_staff = [event for event in downloads if event.actor_kind == "staff"]
    assert len(by_staff) == len(photos), "every staff download is audited"
    # The reporter's two downloads (page and API) are audited as well, as the reporter's.
    assert len([event for event in downloads if event.actor_kind == "reporter"]) == 2
    assert sorted(kinds) == ["reporter", "staff"]


@pytest.mark.parametrize("who", ["counsellor", "reporter"])
def test_a_refused_file_sends_nothing_and_leaves_no_blob(
    counsellor: TestClient, browser: Browser, receipt: str, case_id: str, runtime: Runtime, who: str
) -> None:
    sender = counsellor if who == "counsellor" else reporter_signed_in(browser, receipt)
    page_url = f"/intern/faelle/{case_id}" if who == "counsellor" else "/fall"
    url = f"{page_url}/nachricht" if who == "counsellor" else "/fall/nachricht"
    good = ("message_files", ("ok.pdf", PDF, "application/pdf"))
    bad = ("message_files", ("programm.exe", b"MZ\x90\x00\x03\x00\x00\x00" * 8, "application/pdf"))

    refused = send_with_files(sender, url, page_url, "Mit Datei", [good, bad])
    assert refused.status_code == 422
    assert "Datei 2: Diesen Dateityp nehmen wir nicht an." in refused.text
    assert 'href="#field-message_files"' in refused.text
    assert ">Mit Datei</textarea>" in refused.text

    forged = sender.post(
        url, data={"csrf_token": "0" * 64, "message": "Mit Datei"}, files=[good], follow_redirects=False
    )
    assert forged.status_code == 403
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(CaseMessage)) == 0
        assert db.scalar(select(func.count()).select_from(Attachment)) == 0
    assert blobs_on_disk(runtime) == []


def test_files_of_a_case_stay_with_that_case(
    counsellor: TestClient,
    browser: Browser,
    client: TestClient,
    receipt: str,
    case_id: str,
    people: dict[str, Staff],
) -> None:
    url = f"/intern/faelle/{case_id}"
    files = [("message_files", ("Merkblatt.pdf", PDF, "application/pdf"))]
    assert send_with_files(counsellor, f"{url}/nachricht", url, "Merkblatt", files).status_code == 303
    (href,) = links(counsellor.get(url).text, f"/api/v1/cases/{case_id}/attachments/")
    attachment_id = href.rsplit("/", 1)[1]

    # Another reporter with a case of their own cannot fetch it, by page or by API.
    other = client.post("/api/v1/reports", json={**REPORT, "description": "Ein anderer Fall."})
    other_receipt = other.json()["receipt"]
    stranger = reporter_signed_in(browser, other_receipt)
    assert stranger.get(f"/fall/anhang/{attachment_id}").status_code == 404
    by_api = client.post(f"/api/v1/reports/attachments/{attachment_id}", json={"receipt": other_receipt})
    assert by_api.status_code == 404
    # Nor can staff of another organisation; without a session the page leads to sign-in.
    assert browser(people["other_org"]).get(href).status_code == 404
    assert client.get(f"/fall/anhang/{attachment_id}", follow_redirects=False).status_code == 303


# -- referral, transfer, reclassification, assigning a colleague -----------------------------------------


def page_form(client: TestClient, case_id: str, url: str, data: dict[str, Any]) -> Any:
    """Post a form of the case page with the token of the case page itself."""
    token = csrf_token(client.get(f"/intern/faelle/{case_id}").text)
    return client.post(url, data={**data, "csrf_token": token}, follow_redirects=False)


def grants(runtime: Runtime, case_id: str) -> dict[str, bool]:
    with runtime.sessions() as db:
        rows = db.execute(
            select(Organisation.slug, CaseKeyGrant.active)
            .join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
            .where(CaseKeyGrant.case_id == case_id)
        ).all()
    return {str(slug): bool(active) for slug, active in rows}


def test_refer_and_transfer_from_the_case_page(
    counsellor: TestClient,
    browser: Browser,
    make_staff: MakeStaff,
    people: dict[str, Staff],
    case_id: str,
    runtime: Runtime,
) -> None:
    url = f"/intern/faelle/{case_id}/weitergeben"
    page = counsellor.get(f"/intern/faelle/{case_id}").text
    assert '<option value="rechtshilfe">' in page
    assert '<option value="beratung-by">' not in page, "the own organisation is not offered"
    before = grants(runtime, case_id)

    # Without the reporter's consent, or to the police without their consent in the report: refused.
    no_consent = page_form(counsellor, case_id, url, {"organisation": "rechtshilfe", "mode": "refer"})
    assert no_consent.status_code == 422
    assert "Bitte bestätigen Sie, dass die meldende Person einverstanden ist." in no_consent.text
    assert 'href="#field-reporter_consent"' in no_consent.text
    assert '<option value="rechtshilfe" selected>' in no_consent.text, "the choice is kept"
    police = page_form(
        counsellor, case_id, url, {"organisation": "polizei-kontakt", "mode": "refer", "consent": "yes"}
    )
    assert police.status_code == 422
    assert "einer Weitergabe an die Polizei nicht zugestimmt" in police.text
    assert grants(runtime, case_id) == before

    # A referral shares the case: the legal aid organisation can open it, we still can.
    referred = page_form(
        counsellor, case_id, url, {"organisation": "rechtshilfe", "mode": "refer", "consent": "yes"}
    )
    assert referred.status_code == 303
    assert referred.headers["location"].endswith("?notice=referred#holders")
    assert grants(runtime, case_id)["rechtshilfe"] is True
    lawyer = browser(make_staff(memberships=[("rechtshilfe", MembershipRole.counsellor)]))
    assert lawyer.get(f"/intern/faelle/{case_id}").status_code == 200
    assert counsellor.get(f"/intern/faelle/{case_id}").status_code == 200

    # A transfer hands it over: our access ends at once and the inbox says so.
    transferred = page_form(
        counsellor, case_id, url, {"organisation": "beratung-sn", "mode": "transfer", "consent": "yes"}
    )
    assert transferred.status_code == 303
    assert transferred.headers["location"] == "/intern/faelle?notice=transferred"
    inbox = counsellor.get(transferred.headers["location"]).text
    assert "Der Fall wurde abgegeben." in inbox
    assert case_id not in inbox
    assert counsellor.get(f"/intern/faelle/{case_id}").status_code == 404
    assert browser(people["other_org"]).get(f"/intern/faelle/{case_id}").status_code == 200
    assert "beratung-by" not in grants(runtime, case_id)
    with runtime.sessions() as db:
        actions = db.scalars(select(AuditEvent.action).where(AuditEvent.action.like("case.%"))).all()
    assert {"case.refer", "case.transfer"} <= set(actions)


def test_reclassify_an_incident_from_the_case_page(
    counsellor: TestClient, case_id: str, runtime: Runtime
) -> None:
    url = f"/intern/faelle/{case_id}/vorfaelle/1/einordnung"
    page = counsellor.get(f"/intern/faelle/{case_id}").text
    assert 'id="field-types-1-A3a" name="type_codes" value="A3a" checked' in page

    for refused in ([], ["A3a", "Z9"]):
        response = page_form(counsellor, case_id, url, {"type_codes": refused})
        assert response.status_code == 422
        assert 'href="#field-types-1"' in response.text
        assert '<details class="reclassify" open>' in response.text
    with runtime.sessions() as db:
        assert db.scalars(select(Incident.type_codes)).one() == ["A3a"]

    corrected = page_form(counsellor, case_id, url, {"type_codes": ["A1", "A3a"]})
    assert corrected.status_code == 303
    assert corrected.headers["location"].endswith("?notice=reclassified#incidents")
    assert "Die Einordnung wurde korrigiert." in counsellor.get(corrected.headers["location"]).text
    with runtime.sessions() as db:
        assert sorted(db.scalars(select(Incident.type_codes)).one()) == ["A1", "A3a"]
        assert sorted(db.scalars(select(StatisticsExtract.type_codes)).one()) == ["A1", "A3a"]
        audited = db.scalars(select(AuditEvent).where(AuditEvent.action == "case.reclassify")).one()
    assert audited.details["codes_to"] == "A1,A3a"
    missing = page_form(counsellor, case_id, f"/intern/faelle/{case_id}/vorfaelle/9/einordnung", {})
    assert missing.status_code == 404


def test_assign_a_colleague_from_the_case_page(
    counsellor: TestClient, people: dict[str, Staff], case_id: str, runtime: Runtime
) -> None:
    url = f"/intern/faelle/{case_id}/zuweisen"
    page = counsellor.get(f"/intern/faelle/{case_id}").text
    assert f'<option value="{people["colleague"].user_id}">Lena Huber</option>' in page
    assert people["other_org"].user_id not in page

    for refused in (people["other_org"].user_id, people["admin"].user_id, "", "kein-konto"):
        response = page_form(counsellor, case_id, url, {"action": "other", "assignee_id": refused})
        assert response.status_code == 422, refused
        assert 'href="#field-assign"' in response.text
    assert stored(runtime, case_id)["assignee_id"] is None

    assigned = page_form(
        counsellor, case_id, url, {"action": "other", "assignee_id": people["colleague"].user_id}
    )
    assert assigned.status_code == 303
    assert assigned.headers["location"].endswith("?notice=assigned_other#work")
    assert stored(runtime, case_id)["assignee_id"] == people["colleague"].user_id
    assert "Zugewiesen an Lena Huber." in counsellor.get(f"/intern/faelle/{case_id}").text


OWN_EPOCH = select(Organisation.current_epoch).where(Organisation.slug == "beratung-by").scalar_subquery()


def test_a_transfer_that_fails_midway_leaves_the_case_as_it_was(
    counsellor: TestClient, case_id: str, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form is the unit of work: the new holder's grant, the end of our own, the key rotation (audited
    on its own) are written before the notification is queued; that step fails, and none of it stays."""
    url = f"/intern/faelle/{case_id}/weitergeben"
    token = csrf_token(counsellor.get(f"/intern/faelle/{case_id}").text)
    before = grants(runtime, case_id)
    with runtime.sessions() as db:
        audited = db.scalar(select(func.count()).select_from(AuditEvent))
        epoch = db.scalar(select(OWN_EPOCH))
        queued = db.scalar(select(func.count()).select_from(OutboxMessage))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected failure after the grants and the key rotation were written")

    monkeypatch.setattr("service.cases.service.enqueue", broken)
    form = {"organisation": "beratung-sn", "mode": "transfer", "consent": "yes", "csrf_token": token}
    with pytest.raises(RuntimeError):
        counsellor.post(url, data=form, follow_redirects=False)

    assert grants(runtime, case_id) == before
    assert stored(runtime, case_id)["status"] == "new"
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(AuditEvent)) == audited, "no audit row stays"
        assert db.scalar(select(OWN_EPOCH)) == epoch, "the rotation is undone too"
        assert db.scalar(select(func.count()).select_from(OutboxMessage)) == queued
    monkeypatch.undo()
    assert counsellor.get(f"/intern/faelle/{case_id}").status_code == 200, "still ours"
