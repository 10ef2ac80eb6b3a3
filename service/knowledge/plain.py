"""The glossary of legal words and the pages in Leichte Sprache (easy-to-read German): shipped texts, not
edited in the browser, loaded once.

Leichte Sprache follows the rules of the Netzwerk Leichte Sprache (short sentences with one statement each,
long words split with a middle dot, no foreign words without an explanation); tests/knowledge/test_plain.py
holds sentence and word lengths. A check by readers of the target group is still due (README).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from service.errors import NotFound
from service.knowledge.render import render_markdown
from service.yaml_load import safe_load

HERE = Path(__file__).resolve().parent
GLOSSARY = HERE / "glossary.yaml"
EASY_DIR = HERE / "leichte_sprache"


@dataclass(frozen=True)
class Term:
    id: str
    term: dict[str, str]
    text: dict[str, str]
    source: str


@dataclass(frozen=True)
class EasyPage:
    slug: str
    title: str
    order: int
    body_md: str

    @property
    def html(self) -> str:
        return render_markdown(self.body_md)


@lru_cache(maxsize=1)
def glossary() -> tuple[str, tuple[Term, ...]]:
    """(the date the terms were checked, the terms in alphabetical order of their German name)."""
    data = safe_load(GLOSSARY.read_text(encoding="utf-8"))
    terms = tuple(
        Term(id=str(t["id"]), term=dict(t["term"]), text=dict(t["text"]), source=str(t.get("source") or ""))
        for t in data["terms"]
    )
    return str(data["checked"]), tuple(sorted(terms, key=lambda t: t.term["de"].casefold()))


def _parse(path: Path) -> EasyPage:
    text = path.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    meta = safe_load(front)
    return EasyPage(slug=path.stem, title=str(meta["title"]), order=int(meta["order"]), body_md=body.strip())


@lru_cache(maxsize=1)
def easy_pages(folder: Path = EASY_DIR) -> tuple[EasyPage, ...]:
    return tuple(sorted((_parse(path) for path in folder.glob("*.md")), key=lambda p: p.order))


def easy_page(slug: str) -> EasyPage:
    for page in easy_pages():
        if page.slug == slug:
            return page
    raise NotFound()
