"""Citizen dialogues: every guide, in German and English, carries its sources and the day they were checked,
and shows them; the guides link each other and the article on disrupted meetings; the checklist prints."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from service.app import create_app
from service.knowledge.models import KnowledgeArticle
from service.knowledge.print_pages import BOX, plain_lines
from service.knowledge.seed import seed_articles, shipped
from service.knowledge.service import DIALOGUE_PREFIX, DISRUPTED_MEETINGS, ArticleView
from service.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
GUIDES = sorted({a.slug for a in shipped() if a.slug.startswith(DIALOGUE_PREFIX)})
SOURCES = {"de": "## Quellen", "en": "## Sources"}
CHECKED = {"de": "Geprüft am ", "en": "Checked on "}


@pytest.fixture
def visitor(runtime: Runtime) -> TestClient:
    with runtime.sessions() as db:
        seed_articles(db)
    return TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1")


def test_the_guides_cover_format_moderation_security_and_a_checklist() -> None:
    assert GUIDES == [
        "buergerdialog-checkliste",
        "buergerdialog-moderieren",
        "buergerdialog-planen",
        "buergerdialog-sicherheit",
    ]
    texts = {(a.slug, a.lang): a.body for a in shipped() if a.slug in GUIDES}
    assert len(texts) == 2 * len(GUIDES), "every guide in German and English"
    security = texts["buergerdialog-sicherheit", "de"]
    # Hausrecht is sourced in the municipal codes and case law, disruption in the StGB.
    for cited in ("dejure.org/gesetze/GemO/36", "gesetz/go-nrw/51", "15_A_272_19", "stgb/__123"):
        assert cited in security, cited
    assert "„Gestörte Sitzungen und Hausrecht“" in security
    assert '"Disrupted meetings and house rules"' in texts["buergerdialog-sicherheit", "en"]


@pytest.mark.parametrize(
    "article", [a for a in shipped() if a.slug in GUIDES], ids=lambda a: f"{a.slug}.{a.lang}"
)
def test_every_guide_ends_with_its_dated_sources(article: object) -> None:
    slug, lang, body = article.slug, article.lang, article.body  # type: ignore[attr-defined]
    assert article.checked >= article.stand  # type: ignore[attr-defined]
    heading = SOURCES[lang]
    assert heading in body, slug
    sources = body.split(heading, 1)[1]
    assert "\n## " not in sources, "the sources are the last section"
    assert CHECKED[lang] in sources
    items = [line for line in sources.splitlines() if line.startswith("- ")]
    assert items, "at least one source"
    # Every address is one that was checked: https, and only in the sources section.
    assert all("http://" not in item for item in items)
    assert "https://" not in body.split(heading, 1)[0], "no outside address in the text itself"


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_guide_shows_stand_checked_and_sources_and_links_the_others(
    visitor: TestClient, runtime: Runtime, lang: str
) -> None:
    suffix = "?lang=en" if lang == "en" else ""
    with runtime.sessions() as db:
        stored = db.scalars(
            select(KnowledgeArticle).where(
                KnowledgeArticle.slug.startswith(DIALOGUE_PREFIX),
                KnowledgeArticle.lang == lang,
                KnowledgeArticle.is_current.is_(True),
            )
        ).all()
    assert sorted(a.slug for a in stored) == GUIDES
    for article in stored:
        assert article.stand is not None
        assert article.reviewed_at is not None
        page = visitor.get(f"/wissen/{article.slug}{suffix}")
        assert page.status_code == 200
        text = page.text
        assert re.search(r"Stand: 20\d\d-\d\d-\d\d" if lang == "de" else r"As of: 20\d\d-\d\d-\d\d", text)
        assert re.search(r"(geprüft am|checked on): 20\d\d-\d\d-\d\d", text)
        assert f"<h2>{SOURCES[lang][3:]}</h2>" in text
        assert f'href="/wissen/{DISRUPTED_MEETINGS}{suffix}"' in text
        for other in GUIDES:
            if other != article.slug:
                assert f'href="/wissen/{other}{suffix}"' in text
    listing = visitor.get(f"/wissen{suffix}").text
    assert 'id="buergerdialog"' in listing
    assert "/wissen/unterstuetzung" in listing


def test_the_checklist_prints_without_menus(visitor: TestClient) -> None:
    page = visitor.get("/wissen/buergerdialog-checkliste").text
    assert 'class="article article--checklist"' in page
    assert "Druckfunktion Ihres Browsers" in page
    css = (ROOT / "service" / "static" / "app.css").read_text(encoding="utf-8")
    printed = css.split("@media print {", 1)[1]
    assert ".site-nav" in printed
    assert ".article--checklist li" in printed
    assert ".article--checklist ul li::before" in css, "a box to tick on paper"


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_checklist_as_pdf_has_its_boxes_dates_and_sources(visitor: TestClient, lang: str) -> None:
    page = visitor.get(f"/wissen/buergerdialog-checkliste?lang={lang}").text
    assert f'href="/wissen/buergerdialog-checkliste/pdf{"?lang=en" if lang == "en" else ""}"' in page
    answer = visitor.get(f"/wissen/buergerdialog-checkliste/pdf?lang={lang}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"].startswith("attachment;")
    text = " ".join(sheet.extract_text() for sheet in PdfReader(io.BytesIO(answer.content)).pages)
    text = " ".join(text.split())
    first_item = "Ziel geklärt" if lang == "de" else "Aim clarified"
    assert first_item in text
    assert ("Quellen" if lang == "de" else "Sources") in text
    assert "saena-werkzeugkasten.de" in text
    assert re.search(r"(geprüft am|checked on): 20\d\d-\d\d-\d\d", text)
    with_boxes = plain_lines(
        next(a for a in _views(visitor) if a.slug == "buergerdialog-checkliste" and a.lang == lang)
    )
    assert f"{BOX} {first_item}" in with_boxes
    sources = with_boxes.split("Quellen" if lang == "de" else "Sources")[1]
    assert f"{BOX} " not in sources, "the sources keep their dashes"
    assert visitor.get("/wissen/gibt-es-nicht/pdf").status_code == 404


def _views(visitor: TestClient) -> list[ArticleView]:
    runtime = visitor.app.state.runtime  # type: ignore[attr-defined]
    with runtime.sessions() as db:
        return [runtime.knowledge.article(db, slug, lang) for slug in GUIDES for lang in ("de", "en")]
