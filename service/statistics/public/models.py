"""The public release's tables: the year's privacy budget, the append-only ledger of what each release spent,
and the release store the public pages read (docs/statistics.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, Base, UTCDateTime, new_id, utcnow
from service.statistics.public.dp import PublicReleaseJson


class PrivacyBudget(Base):
    """The year's privacy budget and what has been spent of it, in millionths of epsilon (exact sums).

    Spending locks this row: two releases of one year cannot both pass the check against the same balance.
    """

    __tablename__ = "privacy_budget"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    total_micro_epsilon: Mapped[int] = mapped_column(Integer)
    spent_micro_epsilon: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PublicReleaseRecord(Base):
    """The release store: noisy figures as published, kept forever and never drawn again.

    The public pages and downloads read only this table. One release per year and parameter set: asking
    again returns the stored numbers (re-noising would spend the budget twice and let averages creep in).
    """

    __tablename__ = "public_release"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    year: Mapped[int] = mapped_column(Integer, index=True)
    params_sha256: Mapped[str] = mapped_column(String(64))
    micro_epsilon: Mapped[int] = mapped_column(Integer)
    payload: Mapped[PublicReleaseJson] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (UniqueConstraint("year", "params_sha256"),)


class BudgetSpend(Base):
    """Append-only ledger: what each release spent per table."""

    __tablename__ = "privacy_budget_spend"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    year: Mapped[int] = mapped_column(Integer, index=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("public_release.id"))
    table_id: Mapped[str] = mapped_column(String(16))
    micro_epsilon: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
