"""How quickly each organisation answers: time to acknowledge and to the first answer to the reporter.

Measured against the two marks of the EU whistleblower directive (Directive (EU) 2019/1937, Art. 9):
acknowledgement within 7 days, feedback within 3 months. Coordinators see these per organisation, never
per case and never with case content: the figures are built from timestamps the service keeps anyway.
A case counts for an organisation from the moment that organisation could see it (its grant opened).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from service.cases.models import Case, CaseMessage
from service.identity.models import CaseKeyGrant, Organisation

ACK_MARK = timedelta(days=7)
ANSWER_MARK = timedelta(days=91)  # three months


@dataclass(frozen=True)
class OrganisationResponseTimes:
    organisation: str
    slug: str
    cases: int
    acknowledged: int
    median_hours_to_acknowledge: float | None
    # Of the cases whose 7-day mark has passed (or that were acknowledged): share acknowledged in time.
    acknowledged_within_7_days: float | None
    answered: int
    median_hours_to_first_answer: float | None
    answered_within_3_months: float | None


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 3) if total else None


def _hours(values: list[timedelta]) -> float | None:
    return round(median(v.total_seconds() for v in values) / 3600, 1) if values else None


def response_times(session: Session, now: datetime) -> list[OrganisationResponseTimes]:
    first_answer = (
        select(
            CaseMessage.case_id,
            CaseMessage.organisation_id,
            func.min(CaseMessage.created_at).label("first_at"),
        )
        .where(CaseMessage.direction == "to_reporter")
        .group_by(CaseMessage.case_id, CaseMessage.organisation_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Organisation.display_name,
            Organisation.slug,
            CaseKeyGrant.opened_at,
            Case.acknowledged_at,
            first_answer.c.first_at,
        )
        .join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
        .join(Case, Case.id == CaseKeyGrant.case_id)
        .outerjoin(
            first_answer,
            (first_answer.c.case_id == Case.id) & (first_answer.c.organisation_id == Organisation.id),
        )
        .where(CaseKeyGrant.active.is_(True), CaseKeyGrant.opened_at.is_not(None))
        .order_by(Organisation.display_name)
    ).all()
    grouped: dict[tuple[str, str], list[tuple[datetime, datetime | None, datetime | None]]] = {}
    for name, slug, opened_at, acknowledged_at, first_at in rows:
        grouped.setdefault((name, slug), []).append((opened_at, acknowledged_at, first_at))
    figures = []
    for (name, slug), cases in grouped.items():
        # Acknowledged before the grant opened (an escalation step joining late) counts as at once.
        ack = [max(a - o, timedelta(0)) for o, a, _ in cases if a is not None]
        ack_judged = [(o, a) for o, a, _ in cases if a is not None or now - o >= ACK_MARK]
        answer = [max(f - o, timedelta(0)) for o, _, f in cases if f is not None]
        answer_judged = [(o, f) for o, _, f in cases if f is not None or now - o >= ANSWER_MARK]
        figures.append(
            OrganisationResponseTimes(
                organisation=name,
                slug=slug,
                cases=len(cases),
                acknowledged=len(ack),
                median_hours_to_acknowledge=_hours(ack),
                acknowledged_within_7_days=_share(
                    sum(1 for o, a in ack_judged if a is not None and a - o <= ACK_MARK), len(ack_judged)
                ),
                answered=len(answer),
                median_hours_to_first_answer=_hours(answer),
                answered_within_3_months=_share(
                    sum(1 for o, f in answer_judged if f is not None and f - o <= ANSWER_MARK),
                    len(answer_judged),
                ),
            )
        )
    return figures


@dataclass(frozen=True)
class AcknowledgementShare:
    """What the receipt may promise: of the reports of the last weeks whose acknowledgement target has
    passed (or that were acknowledged), the share acknowledged within their own target. Only this is
    measured; an answer to the reporter has no target the service could keep, and is not promised."""

    weeks: int
    cases: int
    within_target: float

    @property
    def percent(self) -> int:
        # Rounded down: the receipt must never promise more than was kept.
        return int(self.within_target * 100)


def acknowledgement_share(
    session: Session, now: datetime, weeks: int, min_cases: int
) -> AcknowledgementShare | None:
    """None with fewer than ``min_cases`` judged reports: a share of a handful would tell about single
    cases (and promise little), so then the receipt names the target without a figure."""
    rows = session.execute(
        select(Case.ack_deadline_at, Case.acknowledged_at).where(
            Case.created_at >= now - timedelta(weeks=weeks),
            or_(Case.acknowledged_at.is_not(None), Case.ack_deadline_at <= now),
        )
    ).all()
    if len(rows) < min_cases:
        return None
    kept = sum(1 for deadline, acknowledged in rows if acknowledged is not None and acknowledged <= deadline)
    return AcknowledgementShare(weeks=weeks, cases=len(rows), within_target=kept / len(rows))
