"""What the counsellor's inbox and case page show, from the typed case data and a translator: every code
already turned into a label (templates use literal keys), every day and time formatted.

Pure: no database, no session, no request. What the pages look up for it (names of colleagues and
organisations, who else holds a linked case) comes in as ``CaseLookups``; the routes are in
service/cases/pages.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from service.cases.deadlines import DeadlineBasis
from service.cases.models import CaseStatus
from service.cases.proceedings import ProceedingsRecord
from service.cases.schemas import (
    InboxRow,
)
from service.cases.views import (
    AckInfo,
    Choice,
    ComplaintInfo,
    ComplaintState,
    InboxOptions,
    InboxRowView,
    ProceedingsView,
    TypeGroup,
)
from service.i18n import (
    LOCAL_ZONE,
    Translator,
    duration_text,
    format_date,
    format_datetime,
    has_key,
    pick,
    service_today,
)
from service.taxonomy import Districts, Taxonomy

INBOX = "/intern/faelle"
# The Strafantrag deadline gets a warning this many days before it ends (two weeks leave time to act).
COMPLAINT_WARNING_DAYS = 14


def case_url(case_id: str) -> str:
    return f"{INBOX}/{case_id}"


# -- labels of codes -----------------------------------------------------------------------------------------


def code_label(t: Translator, prefix: str, code: str | None) -> str:
    """The translated label of a code, or the code itself for one newer than the translations."""
    if not code:
        return ""
    key = f"{prefix}.{code}"
    return t(key) if has_key(key) else code


@dataclass(frozen=True)
class Labels:
    """The translator and the vocabularies codes are named from: all a presenter needs besides the data."""

    taxonomy: Taxonomy
    districts: Districts
    t: Translator
    lang: str

    def code(self, prefix: str, code: str | None) -> str:
        return code_label(self.t, prefix, code)

    def tax(self, kind: str, code: str | None) -> str:
        if not code:
            return ""
        try:
            return self.taxonomy.label(kind, code, self.lang)
        except KeyError:
            # A code retired from the taxonomy after the report was filed: show what was stored.
            return code

    def channel(self, code: str) -> str:
        """Sub-channels with their parent ("Persönlich – am Wohnort"): the child alone is often unclear."""
        label = self.tax("channels", code)
        if "." in code:
            return f"{self.tax('channels', code.split('.')[0])} – {label}"
        return label

    def types(self, codes: Iterable[str]) -> list[Choice]:
        return [{"code": code, "label": self.tax("incident_types", code)} for code in codes]

    def land(self, code: str) -> str:
        land = self.districts.land(code)
        return pick(land.name, self.lang) if land is not None else code


# -- deadlines -----------------------------------------------------------------------------------------------


def ack_info(t: Translator, lang: str, deadline: str, acknowledged_at: str | None, now: datetime) -> AckInfo:
    """The acknowledgement deadline: state (done, open, overdue), when, and how long until or since."""
    if acknowledged_at:
        return {"state": "done", "at": format_datetime(acknowledged_at, lang), "relative": ""}
    due = datetime.fromisoformat(deadline)
    minutes = int((due - now).total_seconds() // 60)
    if minutes < 0:
        return {
            "state": "overdue",
            "at": format_datetime(deadline, lang),
            "relative": duration_text(t, -minutes, "overdue"),
        }
    return {
        "state": "open",
        "at": format_datetime(deadline, lang),
        "relative": duration_text(t, minutes, "left"),
    }


def complaint_info(
    t: Translator,
    lang: str,
    deadline: str | None,
    today: date,
    basis: str | None = None,
    filed_on: str | None = None,
) -> ComplaintInfo | None:
    """The Strafantrag deadline (§ 77b StGB): "noch N Tage", a warning from 14 days, "abgelaufen" after.

    Without a day: while the perpetrator is unknown the period has not begun (never "expired"), and a
    complaint-only offence without any date is named without one. Counted only from the incident day, a
    passed day is "possibly" passed: the period starts later if the reporter learnt of the perpetrator later.
    A Strafantrag recorded as filed ends the count: the day it was filed is shown instead.
    """
    if filed_on and (deadline or basis in (DeadlineBasis.perpetrator_unknown, DeadlineBasis.undated)):
        text = t("complaint.filed", date=format_date(filed_on, lang))
        return {"date": "", "days": None, "state": "filed", "text": text}
    if not deadline:
        if basis in (DeadlineBasis.perpetrator_unknown, DeadlineBasis.undated):
            return {"date": "", "days": None, "state": "not_started", "text": t(f"complaint.{basis}")}
        return None
    day = date.fromisoformat(deadline[:10])
    days = (day - today).days
    state: ComplaintState
    if days < 0:
        state = "past"
        text = t("complaint.possibly_past") if basis == DeadlineBasis.incident else t("complaint.past")
    elif days == 0:
        state, text = "soon", t("complaint.today")
    else:
        state = "soon" if days <= COMPLAINT_WARNING_DAYS else "ok"
        text = t("complaint.days_one") if days == 1 else t("complaint.days", n=days)
    return {"date": format_date(day, lang), "days": days, "state": state, "text": text}


def complaint_week_info(t: Translator, lang: str, week: str | None, today: date) -> ComplaintInfo | None:
    """The inbox's view of a Strafantrag deadline: the week it falls in (the list decrypts nothing, and the
    server holds no exact day in clear). A warning as soon as the week's first day is within 14 days;
    "abgelaufen" only once the whole week is over; the exact day is on the case page."""
    if not week:
        return None
    first = date.fromisoformat(week[:10])
    last = first + timedelta(days=6)
    days = (first - today).days
    state: ComplaintState
    if last < today:
        state, text = "past", t("complaint.past")
    else:
        state = "soon" if days <= COMPLAINT_WARNING_DAYS else "ok"
        text = t("complaint.week_hint")
    when = t("complaint.week", start=format_date(first, lang), end=format_date(last, lang))
    return {"date": when, "days": days, "state": state, "text": text}


def today() -> date:
    return service_today()


# -- the inbox -----------------------------------------------------------------------------------------------


def _type_options(items: Iterable[Any], lang: str, depth: int) -> list[Choice]:
    """Types and their sub-types (A3a) indented below them: a select cannot nest option groups."""
    options: list[Choice] = []
    for item in items:
        prefix = "– " * depth
        options.append({"code": item.code, "label": f"{prefix}{pick(item.label, lang)} ({item.code})"})
        options += _type_options(item.children, lang, depth + 1)
    return options


def inbox_options(labels: Labels) -> InboxOptions:
    """The choices of the filter form; the first one of each list is "no filter"."""
    t, lang, taxonomy = labels.t, labels.lang, labels.taxonomy
    type_groups: list[TypeGroup] = []
    for group in taxonomy.data.incident_types:
        options: list[Choice] = [
            {"code": group.code, "label": t("inbox.filter.type_group", group=pick(group.label, lang))}
        ]
        options += _type_options(group.children, lang, 0)
        type_groups.append({"label": pick(group.label, lang), "options": options})
    return {
        "statuses": [
            {"code": "", "label": t("inbox.filter.status_open")},
            {"code": "all", "label": t("inbox.filter.status_all")},
            *(Choice(code=s.value, label=code_label(t, "case_status", s.value)) for s in CaseStatus),
        ],
        "urgencies": [
            {"code": "", "label": t("inbox.filter.any")},
            *(
                Choice(code=item.code, label=code_label(t, "urgency", item.code))
                for item in taxonomy.data.urgency
            ),
        ],
        "lands": [
            {"code": "", "label": t("inbox.filter.any")},
            *(Choice(code=land.code, label=pick(land.name, lang)) for land in labels.districts.lands),
        ],
        "type_groups": type_groups,
        "assignees": [
            {"code": "", "label": t("inbox.filter.assignee_any")},
            {"code": "me", "label": t("inbox.filter.assignee_me")},
        ],
    }


def _next_deadline(row: InboxRow) -> datetime | None:
    """What the counsellor must act on next: the acknowledgement, or the last day for a Strafantrag."""
    candidates = []
    if not row.acknowledged_at:
        candidates.append(datetime.fromisoformat(row.ack_deadline_at))
    if row.complaint_deadline_week:
        # The week's first day: the earliest the deadline can be.
        day = date.fromisoformat(row.complaint_deadline_week)
        candidates.append(datetime(day.year, day.month, day.day, 23, 59, tzinfo=LOCAL_ZONE))
    return min(candidates) if candidates else None


def inbox_sort_key(row: InboxRow) -> tuple[bool, bool, float]:
    # Open cases first; among them the nearest deadline first; then those without one, newest first.
    closed = row.status is CaseStatus.closed
    deadline = None if closed else _next_deadline(row)
    if deadline is None:
        return (closed, True, -datetime.fromisoformat(row.created_at).timestamp())
    return (closed, False, deadline.timestamp())


def inbox_row(
    row: InboxRow, labels: Labels, user_id: str | None, names: Mapping[str, str], now: datetime, today: date
) -> InboxRowView:
    t, lang = labels.t, labels.lang
    closed = row.status is CaseStatus.closed
    assignee = row.assignee_id
    complaint = complaint_week_info(t, lang, row.complaint_deadline_week, today)
    if complaint is not None and closed:
        complaint["state"] = "ok"  # a closed case needs no warning any more
    return {
        "href": case_url(row.id),
        "ref": row.id[:8],
        "status": row.status.value,
        "status_label": code_label(t, "case_status", row.status),
        "reopened": row.reopened and not closed,
        "urgency": row.urgency,
        "urgency_label": code_label(t, "urgency", row.urgency),
        "land_label": labels.land(row.land),
        "types": labels.types(row.type_codes),
        "incidents": row.incidents,
        "labels": [code_label(t, "case_label", code) for code in row.labels],
        "created": format_datetime(row.created_at, lang),
        "ack": ack_info(t, lang, row.ack_deadline_at, row.acknowledged_at, now),
        "complaint": complaint,
        "assignee_me": assignee == user_id,
        "assignee_name": names.get(assignee, "") if assignee else "",
    }


# -- proceedings (the staff case page and the reporter's /fall) ----------------------------------------------


def proceedings_view(record: ProceedingsRecord, t: Translator, lang: str) -> ProceedingsView:
    """An incident's proceedings for the pages (staff and /fall): the days formatted, the outcome named,
    and the raw values for the form (a date input wants the ISO day); ``{}`` when none are recorded."""

    def day(value: str | None) -> str:
        return format_date(value, lang) if value else ""

    outcome = record.get("outcome") or ""
    return {
        "recorded": bool(record),
        "complaint_on": day(record.get("complaint_on")),
        "application_on": day(record.get("application_on")),
        "file_number": record.get("file_number") or "",
        "information_requested": bool(record.get("information_requested")),
        "information_requested_on": day(record.get("information_requested_on")),
        "outcome": outcome,
        "outcome_label": code_label(t, "proceedings.outcome", outcome),
        "raw": {
            "complaint_on": record.get("complaint_on") or "",
            "application_on": record.get("application_on") or "",
            "file_number": record.get("file_number") or "",
            "information_requested": record.get("information_requested") or "",
            "information_requested_on": record.get("information_requested_on") or "",
            "outcome": outcome,
        },
    }
