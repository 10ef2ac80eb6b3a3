"""A public article's PDF is typeset once per text (service.knowledge.print_pages): the same version prints
the same pages without setting them again, and a change of anything printed sets them anew."""

from __future__ import annotations

import io
from dataclasses import replace

from pypdf import PdfReader

from service.knowledge.print_pages import _typeset, render
from service.knowledge.service import ArticleView

ARTICLE = ArticleView(
    slug="buergerdialog-checkliste",
    lang="de",
    version=3,
    title="Checkliste Bürgerdialog",
    summary="Was vor dem Abend zu klären ist.",
    codes=[],
    body_md="# Vorher\n\n- Hausrecht klären\n- Ablauf festlegen\n",
    updated_at="2026-11-30T10:00:00+00:00",
    stand="2026-11-30",
    reviewed_on="2026-12-01",
    awaiting_review=False,
    author_id=None,
)


def text_of(document: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages)


def test_the_same_version_is_typeset_once() -> None:
    _typeset.cache_clear()
    first = render(ARTICLE)
    again = render(replace(ARTICLE, updated_at="2026-12-05T08:00:00+00:00", author_id="x"))  # nothing printed
    assert again == first
    assert _typeset.cache_info().misses == 1
    assert _typeset.cache_info().hits == 1


def test_a_change_of_what_is_printed_sets_the_pages_anew() -> None:
    _typeset.cache_clear()
    before = text_of(render(ARTICLE))
    edited = text_of(render(replace(ARTICLE, body_md=ARTICLE.body_md + "- Presse einladen\n")))
    reviewed = text_of(render(replace(ARTICLE, reviewed_on="2026-12-06")))
    english = render(replace(ARTICLE, lang="en", title="Citizen dialogue checklist"))
    assert "Presse einladen" not in before
    assert "Presse einladen" in edited
    assert "06.12.2026" in reviewed or "2026-12-06" in reviewed
    assert "Citizen dialogue checklist" in text_of(english)
    assert _typeset.cache_info().misses == 4
