"""The statistics extract: one row per incident, written in the intake transaction (statistics.md).

Deliberately no case id, no district, no municipality, no exact time: the row must not lead back to a case.
"""

from __future__ import annotations

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, Base, new_id


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
