"""The coordinators' monthly snapshots, stored as shown (docs/statistics.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, Base, UTCDateTime, new_id, utcnow
from service.statistics.dashboard.snapshot import SnapshotJson


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
    payload: Mapped[SnapshotJson] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
