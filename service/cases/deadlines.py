"""Deadlines that counsellors must not miss, and the one coarse date the server keeps in clear for them.

The exact incident date, and with it the Strafantrag deadline, identifies a person together with the district
and the office (a press report names the day a mayor was threatened). So the date lives only in the sealed
incident payload, and the deadline is computed from it whenever a holder opens the case. What the beat
schedule needs to remind without any key is kept in clear at the precision of a week: the Monday of the week
in which the first reminder is due (``incident.complaint_reminder_on``, docs/clear-columns.md).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from enum import IntEnum

# StGB § 77b: a complaint (Strafantrag) must be filed within three months.
COMPLAINT_MONTHS = 3
# The first reminder comes two weeks before the deadline (time to decide), the last call three days before.
FIRST_REMINDER_DAYS = 14
LAST_CALL_DAYS = 3
# The first reminder is sent on the Monday of its week; the last call on the Friday before the deadline's week
# (the latest day that is at least three days before every deadline of that week).
_LAST_CALL_AFTER_FIRST_DAYS = FIRST_REMINDER_DAYS - LAST_CALL_DAYS
_WEEK_DAYS = 7


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


def week_start(day: date) -> date:
    """The Monday of ``day``'s week (ISO weeks)."""
    return day - timedelta(days=day.weekday())


def reminder_week(deadline: date | None, today: date) -> date | None:
    """The clear reminder date for a deadline: the Monday of the week of the first reminder.

    None when there is nothing to remind of: no deadline, or one that has already passed (the case page
    still shows it, from the sealed date)."""
    if deadline is None or deadline < today:
        return None
    return week_start(deadline - timedelta(days=FIRST_REMINDER_DAYS))


class ReminderStage(IntEnum):
    """The two reminders, by the days before the deadline they stand for (also in ``reminder_log.kind``)."""

    first = FIRST_REMINDER_DAYS
    last_call = LAST_CALL_DAYS


@dataclass(frozen=True)
class ReminderWeek:
    """What the beat can know of a deadline from the clear reminder date alone.

    The deadline lies somewhere in ``deadline_from``..``deadline_until`` (a Monday to a Sunday). Both
    reminders are therefore sent never later than with the exact date, and at most six days earlier: the first
    from the Monday of its week (14 to 20 days before), the last call from the Friday before the deadline's
    week (3 to 9 days before)."""

    first_on: date

    @property
    def last_call_on(self) -> date:
        return self.first_on + timedelta(days=_LAST_CALL_AFTER_FIRST_DAYS)

    @property
    def deadline_from(self) -> date:
        return self.first_on + timedelta(days=FIRST_REMINDER_DAYS)

    @property
    def deadline_until(self) -> date:
        return self.deadline_from + timedelta(days=_WEEK_DAYS - 1)

    def stage(self, today: date) -> ReminderStage | None:
        """The reminder due on ``today``: the nearest one only, none before the first or after the week."""
        if today < self.first_on or today > self.deadline_until:
            return None
        return ReminderStage.last_call if today >= self.last_call_on else ReminderStage.first
