"""The statistics extract: one row per incident, written in the intake transaction (docs/statistics.md).

Deliberately no case id, no district, no municipality, no exact time: the row must not lead back to a case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, Base, UTCDateTime, new_id, utcnow


class StatisticsExtract(Base):
    __tablename__ = "statistics_extract"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    # HMAC(statistics key, case id): counts distinct reporters without naming the case.
    reporter_pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    receipt_month: Mapped[str] = mapped_column(String(7), index=True)
    incident_month: Mapped[str | None] = mapped_column(String(7), nullable=True)
    land: Mapped[str] = mapped_column(String(2))
    primary_type: Mapped[str] = mapped_column(String(16))
    type_codes: Mapped[list[str]] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(32))
    office: Mapped[str | None] = mapped_column(String(64), nullable=True)
    severity_group: Mapped[int] = mapped_column(Integer)
    # Incidents that counsellors linked as one event share this: a keyed token (statistics key) of the
    # event's id, so the row still leads back to no case and no ``event_link`` row. The catalogue and the
    # public release count an event once where they count reports (service/statistics/catalogue.py, dp.py).
    event_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The report's optional KoMo answers as top-level codes (``extract.answers_of``), on the row of its first
    # incident only: NULL on a further incident's row (not asked), [] where nothing was chosen.
    motives: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    bias: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    triggers: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    consequences: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


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
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
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


class StatisticsSnapshot(Base):
    """A monthly coordinator snapshot: only what was (or would have been) shown, never a hidden value.

    Kept forever: later snapshots are checked against every earlier released one (diffing is an attack).
    A snapshot whose release gate failed is kept with ``released`` false and is never shown.
    """

    __tablename__ = "statistics_snapshot"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    as_of: Mapped[str] = mapped_column(String(7), index=True)
    released: Mapped[bool] = mapped_column(Boolean)
    revision: Mapped[bool] = mapped_column(Boolean)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
