"""The statistics extract: one row per incident, written in the intake transaction (docs/statistics.md).

The boundary between casework and statistics: the intake (reports) writes the row, casework (cases) rewrites
its classification and event key, secret rotation re-keys its pseudonyms, and statistics only reads it. It
lives below all of them so that none of the writers imports the statistics engine.

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
    # Incidents that counsellors linked as one event share this: a keyed token (statistics key) of the event's
    # id, so the row still leads back to no case and no ``event_link`` row. The catalogue and the public
    # release count an event once where they count reports (service/statistics/dashboard/catalogue.py,
    # service/statistics/public/dp.py).
    event_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The report's optional KoMo answers as top-level codes (``service.extract.service.answers_of``), on the
    # row of its first incident only: NULL on a further incident's row (not asked), [] where nothing was
    # chosen.
    motives: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    bias: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    triggers: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    consequences: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
