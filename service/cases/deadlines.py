"""Deadlines that counsellors must not miss."""

from __future__ import annotations

import calendar
from datetime import date

# StGB § 77b: a complaint (Strafantrag) must be filed within three months.
COMPLAINT_MONTHS = 3


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def complaint_deadline(occurred_on: date | None, complaint_only: bool) -> date | None:
    """The last day for a Strafantrag, counted from the incident (the earliest the clock can start);
    None when no complaint is needed or the date is unknown."""
    if not complaint_only or occurred_on is None:
        return None
    return add_months(occurred_on, COMPLAINT_MONTHS)
