"""The knowledge base: seeded articles, /wissen with search, safe rendering, versioned coordinator edits,
and the links from the receipt page and the case page."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.identity.models import MembershipRole
from service.knowledge.models import KnowledgeArticle
from service.knowledge.seed import seed_articles, shipped
from service.runtime import Runtime
from tests.support.forms import csrf_token, report_body, submission_token
from tests.support.staff import MakeStaff, Staff

Browser = Callable[[Staff | None], TestClient]


def test_the_seed_brings_every_shipped_article_once(runtime: Runtime) -> None:
    files = shipped()
    assert len(files) == 28
    assert {a.lang for a in files} == {"de", "en"}
    with runtime.sessions() as db:
        assert seed_articles(db) == 28
        assert seed_articles(db) == 0, "a second start adds nothing"
        assert len(db.scalars(select(KnowledgeArticle)).all()) == 28


def test_the_list_search_and_an_article(browser: Browser) -> None:
    visitor = browser(None)
    listing = visitor.get("/wissen").text
    assert "Beweise sichern" in listing
    assert "Strafanzeige" in listing
    found = visitor.get("/wissen?q=Strafantrag").text
    assert "/wissen/strafanzeige-stellen" in found
    assert "Keine Empfehlungen gefunden." in visitor.get("/wissen?q=Zwiebelkuchenrezept").text
    page = visitor.get("/wissen/beweise-sichern")
    assert page.status_code == 200
    assert "<h2>" in page.text
    assert "<strong>110</strong>" in page.text
    assert visitor.get("/wissen/gibt-es-nicht").status_code == 404
    english = browser(None).get("/wissen?lang=en").text
    assert "evidence" in english.lower()
    assert "Beweise sichern" not in english


def test_a_coordinator_edits_an_article_as_a_new_version(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff
) -> None:
    coordinator = browser(make_staff(coordinator=True))
    form = coordinator.get("/wissen/beweise-sichern/bearbeiten")
    assert form.status_code == 200
    body = "## Neu\n\nErst sichern. <script>alert(1)</script> [Link](javascript:alert(2)) <img src=x>\n"
    data = {
        "csrf_token": csrf_token(form.text),
        "title": "Beweise sichern (neu)",
        "summary": "Kurz und klar.",
        "body": body,
        "codes": "A B1",
    }
    saved = coordinator.post("/wissen/beweise-sichern/bearbeiten", data=data, follow_redirects=False)
    assert saved.status_code == 303
    page = coordinator.get("/wissen/beweise-sichern").text
    assert "Beweise sichern (neu)" in page
    assert "<script>" not in page
    assert 'href="javascript' not in page
    assert "<img" not in page
    with seeded.sessions() as db:
        versions = db.scalars(
            select(KnowledgeArticle.version, KnowledgeArticle.is_current).where(
                KnowledgeArticle.slug == "beweise-sichern", KnowledgeArticle.lang == "de"
            )
        ).all()
        assert sorted(versions) == [1, 2]
        current = db.scalars(
            select(KnowledgeArticle).where(
                KnowledgeArticle.slug == "beweise-sichern",
                KnowledgeArticle.is_current.is_(True),
                KnowledgeArticle.lang == "de",
            )
        ).one()
        assert current.version == 2
        assert current.codes == ["A", "B1"]
        assert db.scalars(select(AuditEvent.action).where(AuditEvent.action == "knowledge.edit")).one()
        assert seed_articles(db) == 0, "the seed never overwrites an edited article"

    bad = coordinator.post(
        "/wissen/beweise-sichern/bearbeiten",
        data={**data, "csrf_token": csrf_token(form.text), "codes": "Z9"},
    )
    assert bad.status_code == 422
    assert 'href="#field-codes"' in bad.text
    forged = coordinator.post("/wissen/beweise-sichern/bearbeiten", data={**data, "csrf_token": "0" * 64})
    assert forged.status_code == 403


def test_only_coordinators_may_edit(browser: Browser, make_staff: MakeStaff) -> None:
    assert browser(None).get("/wissen/beweise-sichern/bearbeiten", follow_redirects=False).status_code in (
        303,
        401,
    )
    for staff in (
        make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]),
        make_staff(admin=True),
    ):
        assert browser(staff).get("/wissen/beweise-sichern/bearbeiten").status_code == 404


def test_the_receipt_and_the_case_page_link_the_relevant_articles(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff
) -> None:
    reporter = browser(None)
    form = reporter.get("/melden").text
    filed = reporter.post(
        "/melden",
        data=report_body(
            csrf_token=csrf_token(form),
            submission_token=submission_token(form),
            type_codes=["A3a"],
            description="Morddrohung per Brief",
            channel="letter",
        ),
    )
    assert filed.status_code == 201
    assert "/wissen/strafanzeige-stellen" in filed.text
    counsellor = browser(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    case_link = re.search(r'href="(/intern/faelle/[0-9a-f-]{36})"', counsellor.get("/intern/faelle").text)
    assert case_link
    assert "/wissen/strafanzeige-stellen" in counsellor.get(case_link.group(1)).text


def test_the_self_check_recommends_for_each_no_and_stores_nothing(browser: Browser, seeded: Runtime) -> None:
    visitor = browser(None)
    with seeded.sessions() as db:
        before = len(db.scalars(select(AuditEvent)).all())
    form = visitor.get("/wissen/selbstcheck/fragen")
    assert form.status_code == 200
    ids = re.findall(r'name="a\.([a-z0-9-]+)" value="yes"', form.text)
    assert len(ids) >= 15
    # The answers go in the body of a POST, never in an address (history, logs, Referer).
    answers = {ids[0]: "no", ids[1]: "yes", ids[2]: "no", "not-a-question": "no", ids[3]: "vielleicht"}
    result = visitor.post("/wissen/selbstcheck/auswertung", data={f"a.{k}": v for k, v in answers.items()})
    assert "Ergebnis: 3 von" in result.text
    assert "Bei 2 Fragen gibt es etwas zu tun" in result.text
    assert result.text.count("Mehr dazu: „") == 2
    assert f'<input type="hidden" name="a.{ids[0]}" value="no">' in result.text
    assert "vielleicht" not in result.text
    assert "not-a-question" not in result.text
    with seeded.sessions() as db:
        assert len(db.scalars(select(AuditEvent)).all()) == before, "nothing is recorded"
    assert "/wissen/selbstcheck/fragen" in visitor.get("/wissen/selbstcheck").text


def test_a_coordinator_publishes_a_new_article(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff
) -> None:
    coordinator = browser(make_staff(coordinator=True))
    form = coordinator.get("/wissen/neu")
    assert form.status_code == 200
    data = {
        "csrf_token": csrf_token(form.text),
        "slug": "drohungen-im-wahlkampf",
        "title": "Drohungen im Wahlkampf",
        "summary": "Was vor einer Wahl besonders gilt.",
        "body": "## Plakate\n\nBeschädigte Plakate fotografieren.\n",
        "codes": "C",
    }
    taken = coordinator.post("/wissen/neu", data={**data, "slug": "beweise-sichern"})
    assert taken.status_code == 422
    assert "Diese Adresse ist schon vergeben." in taken.text
    assert coordinator.post("/wissen/neu", data={**data, "slug": "Keine Adresse!"}).status_code == 422
    published = coordinator.post("/wissen/neu", data=data, follow_redirects=False)
    assert published.status_code == 303
    assert published.headers["location"] == "/wissen/drohungen-im-wahlkampf?created=1"
    # Not public until a second coordinator has reviewed it (test_review.py).
    assert "Drohungen im Wahlkampf" not in browser(None).get("/wissen").text
    assert "Drohungen im Wahlkampf" in coordinator.get("/wissen").text
    with seeded.sessions() as db:
        assert db.scalars(
            select(AuditEvent.object_id).where(AuditEvent.action == "knowledge.create")
        ).one() == ("drohungen-im-wahlkampf.de")
    counsellor = browser(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    assert counsellor.get("/wissen/neu").status_code == 404
