"""The knowledge base: current articles, search, articles for incident codes, and versioned edits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth.subject import Subject
from service.db import utcnow
from service.errors import ErrorDetail, NotFound, ValidationFailed
from service.knowledge.models import KnowledgeArticle
from service.knowledge.render import plain_text, render_markdown
from service.outbox.writer import enqueue
from service.taxonomy import Taxonomy, type_code_matches
from service.validation import public_error

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Addresses under /wissen that are pages of their own.
RESERVED_SLUGS = frozenset({"neu", "unterstuetzung"})


@dataclass(frozen=True)
class ArticleView:
    slug: str
    lang: str
    version: int
    title: str
    summary: str
    codes: list[str]
    body_md: str
    updated_at: str
    # "Stand" and "geprüft am" as ISO dates; reviewed_on is None only for an article nobody checked yet.
    stand: str
    reviewed_on: str | None
    awaiting_review: bool
    author_id: str | None

    @property
    def html(self) -> str:
        """Rendered when a page shows the article, not for every list, search hit or link."""
        return render_markdown(self.body_md)


# The citizen-dialogue guides: their slugs start so, and each links the others and the article on disrupted
# meetings (a coordinator's new article with such a slug joins the section).
DIALOGUE_PREFIX = "buergerdialog-"
DISRUPTED_MEETINGS = "gestoerte-sitzungen-hausrecht"

# An article not checked for this long is brought to the coordinators' attention (the beat, daily).
REVIEW_INTERVAL = timedelta(days=365)


def _current(session: Session, lang: str, *, pending: bool = False) -> list[KnowledgeArticle]:
    """The current versions in list order: the published ones, or (pending=True) those awaiting review."""
    return list(
        session.scalars(
            select(KnowledgeArticle)
            .where(
                KnowledgeArticle.lang == lang,
                KnowledgeArticle.is_current.is_(True),
                KnowledgeArticle.awaiting_review.is_(pending),
            )
            .order_by(KnowledgeArticle.sort_order, KnowledgeArticle.title)
        )
    )


def _view(article: KnowledgeArticle) -> ArticleView:
    return ArticleView(
        slug=article.slug,
        lang=article.lang,
        version=article.version,
        title=article.title,
        summary=article.summary,
        codes=list(article.codes),
        body_md=article.body_md,
        updated_at=article.created_at.isoformat(),
        stand=(article.stand or article.created_at.date()).isoformat(),
        reviewed_on=article.reviewed_at.date().isoformat() if article.reviewed_at else None,
        awaiting_review=article.awaiting_review,
        author_id=article.author_id,
    )


class KnowledgeService:
    def __init__(self, taxonomy: Taxonomy, audit: AuditLog) -> None:
        self._taxonomy = taxonomy
        self._audit = audit

    def articles(self, session: Session, lang: str, query: str = "") -> list[ArticleView]:
        """Current articles in list order; with a query, those containing every word of it."""
        found = _current(session, lang)
        words = [word.casefold() for word in query.split()][:10]
        if words:
            found = [
                a
                for a in found
                if all(w in f"{a.title} {a.summary} {plain_text(a.body_md)}".casefold() for w in words)
            ]
        return [_view(article) for article in found]

    def pending(self, session: Session, lang: str) -> list[ArticleView]:
        """New articles waiting for a second coordinator (shown to coordinators only)."""
        return [_view(article) for article in _current(session, lang, pending=True)]

    def article(
        self, session: Session, slug: str, lang: str, *, include_pending: bool = False
    ) -> ArticleView:
        """The current version; one awaiting review only for coordinators (include_pending), else 404."""
        found = session.scalar(
            select(KnowledgeArticle).where(
                KnowledgeArticle.slug == slug,
                KnowledgeArticle.lang == lang,
                KnowledgeArticle.is_current.is_(True),
            )
        )
        if found is None or (found.awaiting_review and not include_pending):
            raise NotFound()
        return _view(found)

    def review(self, session: Session, subject: Subject, slug: str, lang: str) -> bool:
        """A coordinator confirms the article's facts ("geprüft am" becomes today). For a new article this is
        the second coordinator's review that publishes it; its author cannot review it. Audited. Returns
        whether the review published the article."""
        current = session.scalar(
            select(KnowledgeArticle)
            .where(
                KnowledgeArticle.slug == slug,
                KnowledgeArticle.lang == lang,
                KnowledgeArticle.is_current.is_(True),
            )
            .with_for_update()
        )
        if current is None:
            raise NotFound()
        published = current.awaiting_review
        if published and current.author_id == subject.user_id:
            raise ValidationFailed(
                [public_error(["review"], "own_article", "a second coordinator must review a new article")]
            )
        current.awaiting_review = False
        current.reviewed_at = utcnow()
        current.reviewed_by_id = subject.user_id
        self._audit.append(
            session,
            actor_kind="staff",
            actor_id=subject.user_id,
            action="knowledge.publish" if published else "knowledge.review",
            object_type="knowledge_article",
            object_id=f"{slug}.{lang}",
            details={"version": current.version},
        )
        return published

    def due_for_review(self, session: Session, now: datetime) -> list[str]:
        """Published articles ("slug.lang") whose facts nobody checked within REVIEW_INTERVAL."""
        cutoff = now - REVIEW_INTERVAL
        rows = session.execute(
            select(KnowledgeArticle.slug, KnowledgeArticle.lang, KnowledgeArticle.reviewed_at)
            .where(KnowledgeArticle.is_current.is_(True), KnowledgeArticle.awaiting_review.is_(False))
            .order_by(KnowledgeArticle.slug, KnowledgeArticle.lang)
        )
        return [f"{slug}.{lang}" for slug, lang, reviewed in rows if reviewed is None or reviewed < cutoff]

    def remind_review(self, session: Session, now: datetime, entries: Sequence[str] = ()) -> list[str]:
        """The beat's weekly reminder: one mail to the coordinators naming every article due for review, and
        the support directory's entries due (``SupportDirectory.due_for_review``, as "name (Land)")."""
        due = self.due_for_review(session, now)
        if due or entries:
            enqueue(
                session,
                "notifications.knowledge_review_due",
                articles=",".join(due),
                count=len(due),
                entries="\n".join(entries),
                entry_count=len(entries),
            )
            session.flush()
        return [*due, *entries]

    def dialogue_links(self, session: Session, lang: str) -> list[dict[str, str]]:
        """Title and address of each published dialogue guide, then of the article on disrupted meetings."""
        suffix = "?lang=en" if lang == "en" else ""
        chosen = [a for a in _current(session, lang) if a.slug.startswith(DIALOGUE_PREFIX)]
        chosen += [a for a in _current(session, lang) if a.slug == DISRUPTED_MEETINGS]
        return [{"slug": a.slug, "title": a.title, "url": f"/wissen/{a.slug}{suffix}"} for a in chosen]

    def for_codes(self, session: Session, codes: list[str], lang: str) -> list[ArticleView]:
        """Articles that help with any of these incident codes (a group letter covers the group), in the
        editors' order (which puts first what a frightened person needs first)."""
        matching = [
            a
            for a in _current(session, lang)
            if a.codes and any(type_code_matches(code, listed) for code in codes for listed in a.codes)
        ]
        return [_view(article) for article in matching]

    def links_for(self, session: Session, codes: list[str], lang: str, limit: int) -> list[dict[str, str]]:
        """Title and address of the articles for these codes: what the receipt and the case page link."""
        suffix = "?lang=en" if lang == "en" else ""
        return [
            {"title": a.title, "url": f"/wissen/{a.slug}{suffix}"}
            for a in self.for_codes(session, codes, lang)[:limit]
        ]

    def create(
        self,
        session: Session,
        subject: Subject,
        slug: str,
        lang: str,
        *,
        title: str,
        summary: str,
        body: str,
        codes: list[str],
    ) -> None:
        """A coordinator publishes a new article (version 1) in one language. Audited."""
        errors = self._check(title, summary, body, codes)
        if not _SLUG.match(slug) or slug in RESERVED_SLUGS:
            errors.append(public_error(["slug"], "invalid", "lower-case letters, digits and hyphens"))
        elif session.scalar(select(KnowledgeArticle.id).where(KnowledgeArticle.slug == slug).limit(1)):
            errors.append(public_error(["slug"], "duplicate_slug", "this address is taken"))
        if errors:
            raise ValidationFailed(errors)
        order = session.scalar(select(func.max(KnowledgeArticle.sort_order))) or 0
        self._add_version(
            session,
            subject,
            "knowledge.create",
            slug,
            lang,
            1,
            order + 10,
            title,
            summary,
            body,
            codes,
            awaiting_review=True,
        )

    def _check(self, title: str, summary: str, body: str, codes: list[str]) -> list[ErrorDetail]:
        errors = []
        if not title.strip() or len(title) > 200:
            errors.append(public_error(["title"], "invalid", "1 to 200 characters"))
        if not summary.strip() or len(summary) > 600:
            errors.append(public_error(["summary"], "invalid", "1 to 600 characters"))
        if not body.strip() or len(body) > 60_000:
            errors.append(public_error(["body"], "invalid", "1 to 60,000 characters"))
        # Reportable codes, and the group headings (A ... X): an article may help with a whole group.
        valid = self._taxonomy.valid_codes("incident_types") | {
            item.code for item in self._taxonomy.items("incident_types")
        }
        for index, code in enumerate(codes):
            if code not in valid:
                errors.append(public_error(["codes", index], "invalid_code", "unknown incident type code"))
        return errors

    def edit(
        self,
        session: Session,
        subject: Subject,
        slug: str,
        lang: str,
        *,
        title: str,
        summary: str,
        body: str,
        codes: list[str],
    ) -> int:
        """A coordinator's revision becomes the current version; the earlier ones stay. Audited."""
        current = session.scalar(
            select(KnowledgeArticle)
            .where(
                KnowledgeArticle.slug == slug,
                KnowledgeArticle.lang == lang,
                KnowledgeArticle.is_current.is_(True),
            )
            .with_for_update()
        )
        if current is None:
            raise NotFound()
        errors = self._check(title, summary, body, codes)
        if errors:
            raise ValidationFailed(errors)
        version = (
            session.scalar(
                select(func.max(KnowledgeArticle.version)).where(
                    KnowledgeArticle.slug == slug, KnowledgeArticle.lang == lang
                )
            )
            or 0
        ) + 1
        current.is_current = False
        self._add_version(
            session,
            subject,
            "knowledge.edit",
            slug,
            lang,
            version,
            current.sort_order,
            title,
            summary,
            body,
            codes,
            awaiting_review=current.awaiting_review,
        )
        return version

    def _add_version(
        self,
        session: Session,
        subject: Subject,
        action: str,
        slug: str,
        lang: str,
        version: int,
        sort_order: int,
        title: str,
        summary: str,
        body: str,
        codes: list[str],
        *,
        awaiting_review: bool,
    ) -> None:
        """Write one version as the current one and audit it, in the caller's transaction (creation and edits
        alike). The author checked what they wrote: the version's "Stand" and "geprüft am" are today."""
        now = utcnow()
        session.add(
            KnowledgeArticle(
                slug=slug,
                lang=lang,
                version=version,
                is_current=True,
                title=title.strip(),
                summary=summary.strip(),
                codes=sorted(set(codes)),
                sort_order=sort_order,
                body_md=body.replace("\r\n", "\n"),
                author_id=subject.user_id,
                created_at=now,
                stand=now.date(),
                reviewed_at=now,
                reviewed_by_id=subject.user_id,
                awaiting_review=awaiting_review,
            )
        )
        self._audit.append(
            session,
            actor_kind="staff",
            actor_id=subject.user_id,
            action=action,
            object_type="knowledge_article",
            object_id=f"{slug}.{lang}",
            details={"version": version},
        )
