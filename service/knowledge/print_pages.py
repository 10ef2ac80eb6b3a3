"""An article as a PDF to print or pass on (the citizen-dialogue checklist links it): the text of the current
published version, its "Stand" and "geprüft am", and its sources, set by the project's fpdf2 helper."""

from __future__ import annotations

import functools
import re

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from service.deps import runtime_of
from service.i18n import Translator
from service.knowledge.service import ArticleView
from service.pdf.output import chunks, render_letter
from service.web import StrictRoute, download, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)

_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_EMPHASIS = re.compile(r"\*\*([^*]+)\*\*|\*([^*]+)\*")
# A box to tick, as on the printed page (DejaVu Sans draws it).
BOX = "\u2610"


def plain_lines(article: ArticleView) -> str:
    """The article as plain text lines: headings as lines of their own, list items of a checklist with a box
    before them (its sources, after the heading "Quellen"/"Sources", keep their dash), links as their text."""
    checklist = article.slug.endswith("-checkliste")
    in_sources = False
    lines: list[str] = []
    for raw in article.body_md.splitlines():
        line = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), _LINK.sub(r"\1", raw)).rstrip()
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            in_sources = heading in ("Quellen", "Sources")
            lines += ["", heading]
        elif line.startswith(("- ", "* ")):
            mark = BOX if checklist and not in_sources else "–"
            lines.append(f"{mark} {line[2:].strip()}")
        elif line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                lines.append(" · ".join(cells))
        else:
            lines.append(line)
    return "\n".join(lines).strip("\n") + "\n"


def render(article: ArticleView) -> bytes:
    t = Translator(article.lang)
    checked = t("knowledge.reviewed_on", date=article.reviewed_on) if article.reviewed_on else ""
    dates = " · ".join(part for part in (t("knowledge.stand", date=article.stand), checked) if part)
    text = f"{article.title}\n\n{article.summary}\n\n{dates}\n\n{plain_lines(article)}"
    return _typeset(text, article.title, f"Rückhalt · {dates}")


@functools.lru_cache(maxsize=64)
def _typeset(text: str, title: str, footer: str) -> bytes:
    """A public article's PDF, set once per text: typesetting parses and subsets the embedded fonts (tens of
    milliseconds of CPU), and every visitor who prints the same version of a checklist gets the same pages.
    Keyed by everything printed, so an edited or newly reviewed article is set anew."""
    return render_letter(text, title, footer)


@router.get("/wissen/{slug}/pdf")
async def article_pdf(slug: str, request: Request) -> Response:
    """Everyone: a published article as a PDF download (an unpublished or unknown one is a 404)."""
    runtime = runtime_of(request)
    lang = request_lang(request)

    def build() -> tuple[str, bytes]:
        with runtime.sessions() as db:
            article = runtime.knowledge.article(db, slug[:80], lang)
        return article.slug, render(article)

    name, document = await run_in_threadpool(build)
    return download(f"{name}.{lang}.pdf", "application/pdf", len(document), chunks(document))
