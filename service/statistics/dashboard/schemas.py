"""What the coordinator dashboard's JSON API answers (``endpoints.py``): named so the OpenAPI document
describes each answer, field by field, in the order it is sent."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Read(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseTimesRead(_Read):
    """One organisation's time to acknowledge and to the first answer: medians in hours, and the share of
    cases within the 7-day and the 3-month mark (null while there is nothing to measure)."""

    organisation: str
    slug: str
    cases: int
    acknowledged: int
    median_hours_to_acknowledge: float | None
    acknowledged_within_7_days: float | None
    answered: int
    median_hours_to_first_answer: float | None
    answered_within_3_months: float | None


class SnapshotListed(_Read):
    """A released snapshot: the last month it covers (YYYY-MM) and whether past months were recomputed."""

    as_of: str
    revision: bool


class SnapshotCellRead(_Read):
    key: list[str]
    # As the dashboard prints them: the number, "< 5" or "–" for what is hidden.
    persons: str
    reports: str


class SnapshotTableRead(_Read):
    id: str
    dimensions: list[str]
    cells: list[SnapshotCellRead]


class SnapshotRead(_Read):
    """One released snapshot: every catalogue table as coordinators see it."""

    as_of: str
    revision: bool
    tables: list[SnapshotTableRead]
