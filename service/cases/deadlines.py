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
from enum import IntEnum, StrEnum

from service.cases.payload import PerpetratorPayload, ReportPayload

# StGB § 77b: a complaint (Strafantrag) must be filed within three months.
COMPLAINT_MONTHS = 3
# A deadline this close is urgent: the receipt says so first, and the case is marked urgent for counsellors.
COMPLAINT_URGENT_DAYS = 14
# Perpetrator familiarity codes (taxonomy ``perpetrator.familiarity``) that mean "I do not know who it was":
# the period has not begun (§ 77b Abs. 2 StGB) until a "known since" date is given.
PERPETRATOR_NOT_KNOWN = frozenset({"unknown", "anonymous"})
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


class DeadlineBasis(StrEnum):
    """What a Strafantrag deadline was counted from, which decides how it may be shown."""

    # No complaint-only offence: no deadline.
    none = "none"
    # From the day the reporter learnt who the perpetrator is (or the incident, if that came later).
    perpetrator_known = "perpetrator_known"
    # From the incident day: the earliest the period can start. It starts later if the reporter learnt of
    # the act or the perpetrator later, so a passed deadline is shown as "possibly", never as certain.
    incident = "incident"
    # The perpetrator is not known: the period has not begun (never "expired").
    perpetrator_unknown = "perpetrator_unknown"
    # Complaint-only, but neither date is given: the three months are named without a day.
    undated = "undated"


@dataclass(frozen=True)
class ComplaintDeadline:
    basis: DeadlineBasis
    # The last day on which the Strafantrag can be filed, where one can be counted.
    ends_on: date | None = None

    def days_left(self, today: date) -> int | None:
        return None if self.ends_on is None else (self.ends_on - today).days

    def urgent(self, today: date) -> bool:
        """Days away (and not yet passed): the reporter and the counsellors must see it first."""
        left = self.days_left(today)
        return left is not None and 0 <= left <= COMPLAINT_URGENT_DAYS


def complaint_deadline_of(
    *,
    complaint_only: bool,
    occurred_on: date | None,
    perpetrator_known_on: date | None,
    perpetrator_familiarity: str | None,
) -> ComplaintDeadline:
    """The Strafantrag deadline of one incident (§ 77b StGB).

    Abs. 1: three months; Abs. 2: they begin at the end of the day on which the entitled person learns of the
    act *and* of the perpetrator. The day of learning of the act is taken to be the incident day (the form
    asks no other), so the period runs from the later of the incident day and the "perpetrator known since"
    day. Counted as § 188 Abs. 2 and 3 BGB count months (the same number of day, or the month's last day).
    The day is the last one on which a Strafantrag is in time; nothing is added for weekends or holidays, so
    the day shown is never too late."""
    if not complaint_only:
        return ComplaintDeadline(DeadlineBasis.none)
    if perpetrator_known_on is not None:
        start = max(perpetrator_known_on, occurred_on) if occurred_on is not None else perpetrator_known_on
        return ComplaintDeadline(DeadlineBasis.perpetrator_known, add_months(start, COMPLAINT_MONTHS))
    if perpetrator_familiarity in PERPETRATOR_NOT_KNOWN:
        return ComplaintDeadline(DeadlineBasis.perpetrator_unknown)
    if occurred_on is None:
        return ComplaintDeadline(DeadlineBasis.undated)
    return ComplaintDeadline(DeadlineBasis.incident, add_months(occurred_on, COMPLAINT_MONTHS))


def payload_complaint_deadline(complaint_only: bool, payload: ReportPayload) -> ComplaintDeadline:
    """The deadline of a stored incident, from its decrypted payload (the dates live only there)."""
    perpetrator: PerpetratorPayload = payload.get("perpetrator") or {}
    occurred_on = payload.get("occurred_on")
    known_on = perpetrator.get("known_on")
    return complaint_deadline_of(
        complaint_only=complaint_only,
        occurred_on=date.fromisoformat(occurred_on) if occurred_on else None,
        perpetrator_known_on=date.fromisoformat(known_on) if known_on else None,
        perpetrator_familiarity=perpetrator.get("familiarity"),
    )


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
