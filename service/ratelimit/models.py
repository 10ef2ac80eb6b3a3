"""Rate-limit counters for deployments without Redis (the embedded default)."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base


class RateLimitCounter(Base):
    __tablename__ = "rate_limit_counter"

    # HMAC of (scope, client address) under a daily rotating key: no address is ever stored.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
