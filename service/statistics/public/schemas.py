"""What the public statistics API answers (``endpoints.py``): the stored release documents
(``dp.PublicReleaseJson``) as they are kept, named so the OpenAPI document describes them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Read(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublicCellRead(_Read):
    """One cell: ``value`` is the noisy count with negatives shown as 0, ``raw`` the count as drawn (possibly
    negative), and value ± half_width holds the true count with the release's interval confidence."""

    key: str
    value: int
    raw: int
    half_width: int


class PublicTableRead(_Read):
    id: str
    measure: str
    by: str
    sensitivity: int
    epsilon: float
    scale: float
    cells: list[PublicCellRead]


class PublicReleaseRead(_Read):
    """A published release as stored: its numbers were drawn once and are never recomputed."""

    id: str
    published_at: str | None
    version: Literal[1]
    year: int
    privacy_unit: str
    epsilon_spent: float
    epsilon_by_table: dict[str, float]
    interval_confidence: float
    tables: list[PublicTableRead]
