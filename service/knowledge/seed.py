"""Import the shipped articles (service/knowledge/articles/*.md) as version 1 of each article.

Only (slug, language) pairs that do not exist yet are added: an article edited in the browser is never
overwritten by a later release's file, and a new shipped article appears on the next start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.knowledge.models import KnowledgeArticle
from service.yaml_load import safe_load

ARTICLES_DIR = Path(__file__).resolve().parent / "articles"
LANGS = ("de", "en")


@dataclass(frozen=True)
class SeedArticle:
    slug: str
    lang: str
    title: str
    summary: str
    codes: list[str]
    order: int
    body: str
    # "Stand" and "geprüft am" of the shipped text (front matter ``stand`` and ``geprueft``, ISO dates).
    stand: date
    checked: date


def parse(path: Path) -> SeedArticle:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise ValueError(f"{path.name}: front matter missing")
    _, front, body = text.split("---\n", 2)
    meta = safe_load(front)
    slug, lang = path.name.removesuffix(".md").rsplit(".", 1)
    if meta.get("slug") != slug or meta.get("lang") != lang or lang not in LANGS:
        raise ValueError(f"{path.name}: slug and lang must match the file name")
    if not isinstance(meta.get("stand"), date) or not isinstance(meta.get("geprueft"), date):
        raise ValueError(f"{path.name}: front matter needs the dates stand and geprueft (YYYY-MM-DD)")
    return SeedArticle(
        slug=slug,
        lang=lang,
        title=str(meta["title"]),
        summary=str(meta["summary"]),
        codes=[str(code) for code in meta.get("codes") or []],
        order=int(meta.get("order", 100)),
        body=body.strip() + "\n",
        stand=meta["stand"],
        checked=meta["geprueft"],
    )


def shipped(folder: Path = ARTICLES_DIR) -> list[SeedArticle]:
    return [parse(path) for path in sorted(folder.glob("*.*.md"))]


def seed_articles(session: Session, folder: Path = ARTICLES_DIR) -> int:
    existing = {
        (row[0], row[1]) for row in session.execute(select(KnowledgeArticle.slug, KnowledgeArticle.lang))
    }
    added = 0
    for article in shipped(folder):
        if (article.slug, article.lang) in existing:
            continue
        session.add(
            KnowledgeArticle(
                slug=article.slug,
                lang=article.lang,
                version=1,
                is_current=True,
                title=article.title,
                summary=article.summary,
                codes=article.codes,
                sort_order=article.order,
                body_md=article.body,
                author_id=None,
                stand=article.stand,
                reviewed_at=datetime.combine(article.checked, time(12), tzinfo=UTC),
                awaiting_review=False,
            )
        )
        added += 1
    session.commit()
    return added
