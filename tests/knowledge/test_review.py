"""Review of the knowledge base: every article shows "Stand" and "geprüft am"; a coordinator's new article is
public only after a second coordinator's review; the beat reminds the coordinators of articles nobody
checked for a year."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.audit.models import AuditEvent
from service.db import utcnow
from service.knowledge.models import KnowledgeArticle
from service.knowledge.seed import shipped
from service.notifications.recipients import Directory, Member, recipients
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from tests.support.forms import csrf_token
from tests.support.staff import MakeStaff, Staff

Browser = Callable[[Staff | None], TestClient]


def test_every_shipped_article_carries_stand_and_checked_and_shows_them(browser: Browser) -> None:
    for article in shipped():
        assert article.checked >= article.stand, article.slug
    page = browser(None).get("/wissen/auskunftssperre").text
    assert "Stand: 2026-12-06" in page
    assert "geprüft am: 2026-12-06" in page
    assert "checked on: 2026-12-06" in browser(None).get("/wissen/auskunftssperre?lang=en").text


def test_a_new_article_is_public_only_after_a_second_coordinators_review(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff
) -> None:
    author = browser(make_staff(coordinator=True))
    data = {
        "csrf_token": csrf_token(author.get("/wissen/neu").text),
        "slug": "wahlkampf",
        "title": "Drohungen im Wahlkampf",
        "summary": "Was vor einer Wahl besonders gilt.",
        "body": "## Plakate\n\nBeschädigte Plakate fotografieren.\n",
        "codes": "C",
    }
    assert author.post("/wissen/neu", data=data, follow_redirects=False).status_code == 303
    visitor = browser(None)
    assert visitor.get("/wissen/wahlkampf").status_code == 404
    assert "Drohungen im Wahlkampf" not in visitor.get("/wissen?q=Wahlkampf").text
    own = author.get("/wissen/wahlkampf")
    assert own.status_code == 200
    assert "wartet auf die Prüfung" in own.text
    assert 'action="/wissen/wahlkampf/pruefen"' not in own.text

    # The author cannot review their own article, even by posting the form.
    forged = {"csrf_token": csrf_token(author.get("/wissen/neu").text)}
    refused = author.post("/wissen/wahlkampf/pruefen", data=forged, follow_redirects=False)
    assert refused.headers["location"] == "/wissen/wahlkampf?own=1"
    assert visitor.get("/wissen/wahlkampf").status_code == 404

    second = browser(make_staff(coordinator=True))
    page = second.get("/wissen/wahlkampf").text
    assert 'action="/wissen/wahlkampf/pruefen"' in page
    done = second.post(
        "/wissen/wahlkampf/pruefen", data={"csrf_token": csrf_token(page)}, follow_redirects=False
    )
    assert done.status_code == 303
    assert visitor.get("/wissen/wahlkampf").status_code == 200
    assert "Drohungen im Wahlkampf" in visitor.get("/wissen").text
    with seeded.sessions() as db:
        actions = db.scalars(select(AuditEvent.action).where(AuditEvent.action.like("knowledge.%"))).all()
        assert list(actions) == ["knowledge.create", "knowledge.publish"]


def test_the_beat_reminds_the_coordinators_of_articles_not_checked_for_a_year(
    browser: Browser, seeded: Runtime, make_staff: MakeStaff
) -> None:
    now = utcnow()
    with seeded.sessions() as db:
        assert seeded.knowledge.remind_review(db, now) == []
        db.execute(
            update(KnowledgeArticle)
            .where(KnowledgeArticle.slug == "auskunftssperre")
            .values(reviewed_at=now - timedelta(days=366))
        )
        db.commit()
        assert seeded.knowledge.remind_review(db, now) == ["auskunftssperre.de", "auskunftssperre.en"]
        row = db.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == "notifications.knowledge_review_due")
        ).one()
        chosen = recipients(
            row.topic,
            row.payload,
            Directory(coordinators=(Member("c1", "k@example.org"),), rota=(Member("r1", "r@example.org"),)),
        )
        assert [(r.address, r.template) for r in chosen] == [("k@example.org", "knowledge_review_due")]
        assert chosen[0].context["articles"] == ["auskunftssperre.de", "auskunftssperre.en"]

    # A coordinator checks it: "geprüft am" is today and the reminder stops.
    coordinator = browser(make_staff(coordinator=True))
    page = coordinator.get("/wissen/auskunftssperre").text
    assert (
        coordinator.post(
            "/wissen/auskunftssperre/pruefen", data={"csrf_token": csrf_token(page)}, follow_redirects=False
        ).headers["location"]
        == "/wissen/auskunftssperre?reviewed=1"
    )
    with seeded.sessions() as db:
        assert seeded.knowledge.remind_review(db, utcnow()) == ["auskunftssperre.en"]
