"""Knowledge-base articles (Handlungsempfehlungen), versioned: an edit adds a version, never overwrites."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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

    __table_args__ = (
        UniqueConstraint("slug", "lang", "version"),
        Index("ix_knowledge_article_current", "lang", "is_current"),
    )
