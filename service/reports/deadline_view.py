"""How a Strafantrag deadline is shown to the reporter (receipt, /fall): a pure presenter.

The templates hold the words (templates/pages/_deadline.html); this decides which words: a day counted
from a known perpetrator may be "passed", a day counted from the incident only "possibly passed" (the
period starts later if the reporter learnt later who it was), and without a known perpetrator the period has
not begun, so nothing is ever "expired" (§ 77b Abs. 2 StGB).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from service.cases.deadlines import COMPLAINT_URGENT_DAYS, ComplaintDeadline, DeadlineBasis
from service.i18n import format_date


class DeadlineState(StrEnum):
    open = "open"
    soon = "soon"
    today = "today"
    passed = "passed"
    possibly_passed = "possibly_passed"
    not_started = "not_started"
    undated = "undated"
    # A Strafantrag is recorded as filed (the proceedings on /fall): no count-down, the day it was filed.
    filed = "filed"


@dataclass(frozen=True)
class DeadlineView:
    state: DeadlineState
    basis: DeadlineBasis
    # The last day, formatted for the page's language; empty where no day can be counted.
    ends_on: str
    days_left: int | None
    # Shown first and marked: the receipt's heading and the case page's warning.
    urgent: bool


def deadline_view(
    deadline: ComplaintDeadline, today: date, lang: str, filed_on: date | None = None
) -> DeadlineView | None:
    """None when no complaint-only offence was reported (no Strafantrag deadline to show). With the day a
    Strafantrag was filed (recorded in the proceedings), that day instead of a count-down."""
    if deadline.basis is DeadlineBasis.none:
        return None
    if filed_on is not None:
        return DeadlineView(
            DeadlineState.filed, deadline.basis, format_date(filed_on, lang), None, urgent=False
        )
    left = deadline.days_left(today)
    if left is None or deadline.ends_on is None:
        state = (
            DeadlineState.not_started
            if deadline.basis is DeadlineBasis.perpetrator_unknown
            else DeadlineState.undated
        )
        return DeadlineView(state, deadline.basis, "", None, urgent=False)
    if left < 0:
        state = (
            DeadlineState.passed
            if deadline.basis is DeadlineBasis.perpetrator_known
            else DeadlineState.possibly_passed
        )
    elif left == 0:
        state = DeadlineState.today
    elif left <= COMPLAINT_URGENT_DAYS:
        state = DeadlineState.soon
    else:
        state = DeadlineState.open
    return DeadlineView(
        state,
        deadline.basis,
        format_date(deadline.ends_on, lang),
        left,
        urgent=deadline.urgent(today),
    )
