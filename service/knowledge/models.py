"""Knowledge-base articles (Handlungsempfehlungen), versioned: an edit adds a version, never overwrites."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, Base, UTCDateTime, new_id, utcnow


class KnowledgeArticle(Base):
    __tablename__ = "knowledge_article"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(80))
    lang: Mapped[str] = mapped_column(String(2))
    version: Mapped[int] = mapped_column(Integer)
    # Only the newest version of a (slug, lang) is current; earlier ones stay for review and roll-back.
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(600))
    # Incident-type codes the article helps with; a group letter covers its whole group.
    codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    sort_order: Mapped[int] = mapped_column(Integer, default=100)
    body_md: Mapped[str] = mapped_column(Text)
    # None for the shipped seed; the coordinator who wrote this version otherwise.
    author_id: Mapped[str | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "Stand": the day the text of this version describes (the seed's front matter; an edit's own day).
    stand: Mapped[date | None] = mapped_column(Date, nullable=True)
    # "geprüft am": when a coordinator last checked the facts (an edit, a review, or the seed's date).
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reviewed_by_id: Mapped[str | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL"), nullable=True
    )
    # A coordinator's new article is not public until a second coordinator has reviewed it: one taken-over
    # account must not be able to publish advice that frightened people act on.
    awaiting_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        UniqueConstraint("slug", "lang", "version"),
        Index("ix_knowledge_article_current", "lang", "is_current"),
    )


class SupportEntry(Base):
    """One entry of the support directory (/wissen/unterstuetzung): an office, network or offer that decision
    makers can turn to, by Land or nationwide. Kept by coordinators; each carries its source and the day it
    was last checked, and a new entry is public only after a second coordinator's review, as articles are.
    An entry is edited in place (the audit log keeps who changed what and when) and retired, never deleted."""

    __tablename__ = "support_entry"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    # The shipped seed's own key (service/knowledge/support.yaml); None for a coordinator's entry. A seeded
    # entry that was edited or retired is never brought back by a later release.
    seed_key: Mapped[str | None] = mapped_column(String(80), nullable=True, unique=True)
    # "01" .. "16" (the first two digits of the AGS), or "bund" for an offer open to the whole country.
    land: Mapped[str] = mapped_column(String(4))
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    description_de: Mapped[str] = mapped_column(String(1000))
    description_en: Mapped[str] = mapped_column(String(1000))
    # The offer's own address (optional, https only).
    url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Where its existence and description were checked: institution and title (always), address (optional).
    source: Mapped[str] = mapped_column(String(500))
    source_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    author_id: Mapped[str | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "geprüft am": when a coordinator last checked the entry against its source (an edit, a review, or the
    # seed's date); due for review after the articles' interval.
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewed_by_id: Mapped[str | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL"), nullable=True
    )
    awaiting_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_support_entry_land", "land"),)


class SavedSelfcheck(Base):
    """A municipality's self-check, kept only because it chose to, under a code of its own.

    Three columns and nothing else: the row is found by a keyed hash of the code (the lookup pepper is not in
    the database), and every answer, the note and the month of each take are sealed under a key derived from
    the code (docs/crypto-formats.md, "Self-check code"). No time, no name, no client address: the row says
    that some municipality keeps a self-check, not which, not when, not what (docs/clear-columns.md).
    """

    __tablename__ = "selfcheck_saved"

    lookup_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class SelfcheckTally(Base):
    """How many saved self-checks give an answer to a question in their latest take: the coordinators'
    aggregate. Counted up when a municipality saves and down when it saves again or deletes, in the same
    transaction, and never linked to a saved row (no row id, no time): docs/clear-columns.md."""

    __tablename__ = "selfcheck_tally"

    question_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    answer: Mapped[str] = mapped_column(String(8), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
