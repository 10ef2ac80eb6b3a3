"""Counsellor pages: the inbox and the case page, with forms that work without JavaScript.

They mirror the JSON API (service/cases/endpoints.py) and call the same CaseService methods, so the rules are
the same for both: a case the subject may not see is a 404 exactly like one that does not exist, and the
service audits every decryption and every change. Every form carries the CSRF token. A success answers 303
back to the case page, so a reload never sends a message twice; the notice is named by a fixed code in the
address, never by text. An error shows the page again with what was typed and an error summary on top.

Nothing here logs: whatever a request carries is case content.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from service.auth.deps import StaffDep, pages_of
from service.auth.subject import Subject
from service.cases import repository as case_repository
from service.cases.deadlines import DeadlineBasis
from service.cases.models import CaseStatus
from service.cases.proceedings import OUTCOMES as PROCEEDINGS_OUTCOMES
from service.cases.proceedings import Proceedings
from service.cases.repository import CaseFilters
from service.cases.schemas import CaseUpdate, MessageCreate
from service.cases.service import LABELS, OUTCOMES
from service.db import utcnow
from service.deps import VALIDATION_MESSAGE_KEYS, runtime_of
from service.dossier import archive, letter_request, letters
from service.dossier import service as dossiers
from service.dossier.pdf import dossier_download
from service.dossier.pdf import render as render_dossier
from service.errors import CsrfFailed, NotFound, ValidationFailed
from service.evidence.uploads import parse_form
from service.i18n import LOCAL_ZONE, Translator, format_date, format_datetime, format_size, has_key, pick
from service.identity import repository as organisations
from service.identity.models import Organisation, StaffUser
from service.matching.display import identifier_items, kind_labels
from service.matching.schemas import PerpetratorIdentifier
from service.runtime import Runtime
from service.taxonomy.loader import ANSWER_KINDS
from service.web import BodyKind, StrictRoute, body, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)

INBOX = "/intern/faelle"
# new_id() makes UUID4 text; anything else cannot be a case, and is not worth a database round trip.
_CASE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The Strafantrag deadline gets a warning this many days before it ends (two weeks leave time to act).
COMPLAINT_WARNING_DAYS = 14
_OPEN_STATUSES = tuple(status.value for status in CaseStatus if status is not CaseStatus.closed)
# The inbox lists at most this many cases of each status (the oldest acknowledgement deadlines) and says
# when there are more: a page of thousands of rows helps nobody, the filters narrow it.
INBOX_CASES_PER_STATUS = 200

# Success notices: code in the address -> (text, section of the page the form was in). The redirect jumps
# to that section and the notice is shown there, so the counsellor lands where they were working.
_NOTICES: dict[str, tuple[str, str]] = {
    "acknowledged": ("case_page.notice.acknowledged", "top"),
    "status_saved": ("case_page.notice.status_saved", "work"),
    "assigned": ("case_page.notice.assigned", "work"),
    "unassigned": ("case_page.notice.unassigned", "work"),
    "assigned_other": ("case_page.notice.assigned_other", "work"),
    "labels_saved": ("case_page.notice.labels_saved", "work"),
    "message_sent": ("case_page.notice.message_sent", "conversation"),
    "note_added": ("case_page.notice.note_added", "notes"),
    "referred": ("case_page.notice.referred", "holders"),
    "reclassified": ("case_page.notice.reclassified", "incidents"),
    "proceedings_saved": ("case_page.notice.proceedings_saved", "incidents"),
    "linked": ("case_page.notice.linked", "events"),
    "unlinked": ("case_page.notice.unlinked", "events"),
    "merge_proposed": ("case_page.notice.merge_proposed", "events"),
    "merge_withdrawn": ("case_page.notice.merge_withdrawn", "events"),
    "matching_done": ("case_page.notice.matching_done", "matching"),
    "matching_waiting": ("case_page.notice.matching_waiting", "matching"),
}

# Fields of the page's forms that are shown under their own name.
_FORM_FIELDS = frozenset(
    {
        "message",
        "note",
        "message_files",
        "organisation",
        "mode",
        "reporter_consent",
        letter_request.KIND_FIELD,
        "other_case",
        "other_seq",
    }
    | letter_request.FREE_TEXT
)
# Where a refused field of the service or of a schema is shown on the page ("" = in the summary only).
_FIELD_OF_LOC = {"status": "status", "outcome": "outcome", "labels": "labels", "assignee_id": "assign"}


def case_url(case_id: str) -> str:
    return f"{INBOX}/{case_id}"


def _check_id(case_id: str) -> None:
    if not _CASE_ID.match(case_id):
        raise NotFound()


# -- labels of codes -----------------------------------------------------------------------------------------


def code_label(t: Translator, prefix: str, code: str | None) -> str:
    """The translated label of a code, or the code itself for one newer than the translations."""
    if not code:
        return ""
    key = f"{prefix}.{code}"
    return t(key) if has_key(key) else code


def _tax(runtime: Runtime, kind: str, code: str | None, lang: str) -> str:
    if not code:
        return ""
    try:
        return runtime.taxonomy.label(kind, code, lang)
    except KeyError:
        # A code retired from the taxonomy after the report was filed: show what was stored.
        return code


def _channel(runtime: Runtime, code: str, lang: str) -> str:
    """Sub-channels with their parent ("Persönlich – am Wohnort"): the child alone is often unclear."""
    label = _tax(runtime, "channels", code, lang)
    if "." in code:
        return f"{_tax(runtime, 'channels', code.split('.')[0], lang)} – {label}"
    return label


def _types(runtime: Runtime, codes: Iterable[str], lang: str) -> list[dict[str, str]]:
    return [{"code": code, "label": _tax(runtime, "incident_types", code, lang)} for code in codes]


def _land(runtime: Runtime, code: str, lang: str) -> str:
    land = runtime.districts.land(code)
    return pick(land.name, lang) if land is not None else code


# -- deadlines -----------------------------------------------------------------------------------------------


def _duration(t: Translator, minutes: int, kind: str) -> str:
    """A span in words: kind "left" ("noch 5 Std."), "overdue" ("seit 3 Tagen überfällig"), "after"
    ("nach 4 Std.") or "within" ("innerhalb von 24 Stunden"). The units switch at 2 hours and 3 days, as
    on the reporter's receipt, so that no "1 Stunden" or "1 Tage" is ever shown."""
    minutes = max(minutes, 1)
    if minutes < 120:
        unit, n = "minutes", minutes
    elif minutes < 72 * 60:
        unit, n = "hours", minutes // 60
    else:
        unit, n = "days", minutes // (24 * 60)
    return t(f"deadline.{unit}" if kind == "within" else f"duration.{kind}.{unit}", n=n)


def ack_info(
    t: Translator, lang: str, deadline: str, acknowledged_at: str | None, now: datetime
) -> dict[str, str]:
    """The acknowledgement deadline: state (done, open, overdue), when, and how long until or since."""
    if acknowledged_at:
        return {"state": "done", "at": format_datetime(acknowledged_at, lang), "relative": ""}
    due = datetime.fromisoformat(deadline)
    minutes = int((due - now).total_seconds() // 60)
    if minutes < 0:
        return {
            "state": "overdue",
            "at": format_datetime(deadline, lang),
            "relative": _duration(t, -minutes, "overdue"),
        }
    return {"state": "open", "at": format_datetime(deadline, lang), "relative": _duration(t, minutes, "left")}


def complaint_info(
    t: Translator,
    lang: str,
    deadline: str | None,
    today: date,
    basis: str | None = None,
    filed_on: str | None = None,
) -> dict[str, Any] | None:
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
    if days < 0:
        state = "past"
        text = t("complaint.possibly_past") if basis == DeadlineBasis.incident else t("complaint.past")
    elif days == 0:
        state, text = "soon", t("complaint.today")
    else:
        state = "soon" if days <= COMPLAINT_WARNING_DAYS else "ok"
        text = t("complaint.days_one") if days == 1 else t("complaint.days", n=days)
    return {"date": format_date(day, lang), "days": days, "state": state, "text": text}


def complaint_week_info(t: Translator, lang: str, week: str | None, today: date) -> dict[str, Any] | None:
    """The inbox's view of a Strafantrag deadline: the week it falls in (the list decrypts nothing, and the
    server holds no exact day in clear). A warning as soon as the week's first day is within 14 days;
    "abgelaufen" only once the whole week is over; the exact day is on the case page."""
    if not week:
        return None
    first = date.fromisoformat(week[:10])
    last = first + timedelta(days=6)
    days = (first - today).days
    if last < today:
        state, text = "past", t("complaint.past")
    else:
        state = "soon" if days <= COMPLAINT_WARNING_DAYS else "ok"
        text = t("complaint.week_hint")
    when = t("complaint.week", start=format_date(first, lang), end=format_date(last, lang))
    return {"date": when, "days": days, "state": state, "text": text}


def _today() -> date:
    return datetime.now(LOCAL_ZONE).date()


# -- names the case rows refer to by id ----------------------------------------------------------------------


def _staff_names(db: Session, user_ids: Collection[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    rows = db.execute(select(StaffUser.id, StaffUser.display_name).where(StaffUser.id.in_(list(user_ids))))
    return {row[0]: row[1] for row in rows}


def _organisation_names(db: Session, ids: Collection[str], slugs: Collection[str]) -> dict[str, str]:
    """Display names by id and by slug (routing decisions name organisations by slug)."""
    if not ids and not slugs:
        return {}
    rows = db.execute(
        select(Organisation.id, Organisation.slug, Organisation.display_name).where(
            or_(Organisation.id.in_(list(ids)), Organisation.slug.in_(list(slugs)))
        )
    )
    names: dict[str, str] = {}
    for org_id, slug, name in rows:
        names[org_id] = name
        names[slug] = name
    return names


# -- the inbox -----------------------------------------------------------------------------------------------


def _inbox_choices(request: Request, runtime: Runtime) -> dict[str, str]:
    """The filters of the address, each checked against its list; anything else means "no filter"."""
    params = request.query_params
    statuses = {status.value for status in CaseStatus} | {"all"}
    urgencies = {item.code for item in runtime.taxonomy.data.urgency}
    lands = {land.code for land in runtime.districts.lands}
    types = set(runtime.taxonomy.all_type_codes())
    checks: dict[str, Collection[str]] = {
        "status": statuses,
        "urgency": urgencies,
        "land": lands,
        "type": types,
        "assignee": {"me"},
    }
    return {
        name: value if (value := params.get(name, "")) in allowed else "" for name, allowed in checks.items()
    }


def _type_options(items: Iterable[Any], lang: str, depth: int) -> list[dict[str, str]]:
    """Types and their sub-types (A3a) indented below them: a select cannot nest option groups."""
    options = []
    for item in items:
        prefix = "– " * depth
        options.append({"code": item.code, "label": f"{prefix}{pick(item.label, lang)} ({item.code})"})
        options += _type_options(item.children, lang, depth + 1)
    return options


def _inbox_options(runtime: Runtime, t: Translator, lang: str) -> dict[str, Any]:
    """The choices of the filter form; the first one of each list is "no filter"."""
    type_groups = []
    for group in runtime.taxonomy.data.incident_types:
        options = [{"code": group.code, "label": t("inbox.filter.type_group", group=pick(group.label, lang))}]
        options += _type_options(group.children, lang, 0)
        type_groups.append({"label": pick(group.label, lang), "options": options})
    return {
        "statuses": [{"code": "", "label": t("inbox.filter.status_open")}]
        + [{"code": "all", "label": t("inbox.filter.status_all")}]
        + [{"code": s.value, "label": code_label(t, "case_status", s.value)} for s in CaseStatus],
        "urgencies": [{"code": "", "label": t("inbox.filter.any")}]
        + [
            {"code": item.code, "label": code_label(t, "urgency", item.code)}
            for item in runtime.taxonomy.data.urgency
        ],
        "lands": [{"code": "", "label": t("inbox.filter.any")}]
        + [{"code": land.code, "label": pick(land.name, lang)} for land in runtime.districts.lands],
        "type_groups": type_groups,
        "assignees": [
            {"code": "", "label": t("inbox.filter.assignee_any")},
            {"code": "me", "label": t("inbox.filter.assignee_me")},
        ],
    }


def _inbox_rows(
    runtime: Runtime, subject: Subject, chosen: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, str], bool]:
    """Metadata only (nothing is decrypted to list cases), one query per status.

    Per status, because the repository keeps the oldest deadlines first and cuts off at its limit: with a
    query over every status, old closed cases could push open ones off the page. Every filter runs in SQL
    before that limit; one case more than a page is asked for, so that a cut list says so (``truncated``).
    """
    status = chosen["status"]
    statuses: tuple[str, ...] = (
        _OPEN_STATUSES
        if status == ""
        else tuple(s.value for s in CaseStatus)
        if status == "all"
        else (status,)
    )
    rows: list[dict[str, Any]] = []
    truncated = False
    with runtime.sessions() as db:
        for value in statuses:
            filters = CaseFilters(
                status=value,
                urgency=chosen["urgency"] or None,
                land=chosen["land"] or None,
                type_code=chosen["type"] or None,
                assignee_id=subject.user_id if chosen["assignee"] == "me" else None,
                limit=INBOX_CASES_PER_STATUS + 1,
            )
            found = runtime.cases.inbox(db, subject, filters)
            truncated = truncated or len(found) > INBOX_CASES_PER_STATUS
            rows += found[:INBOX_CASES_PER_STATUS]
        names = _staff_names(db, {row["assignee_id"] for row in rows if row["assignee_id"]})
    return rows, names, truncated


def _next_deadline(row: dict[str, Any]) -> datetime | None:
    """What the counsellor must act on next: the acknowledgement, or the last day for a Strafantrag."""
    candidates = []
    if not row["acknowledged_at"]:
        candidates.append(datetime.fromisoformat(row["ack_deadline_at"]))
    if row["complaint_deadline_week"]:
        # The week's first day: the earliest the deadline can be.
        day = date.fromisoformat(row["complaint_deadline_week"])
        candidates.append(datetime(day.year, day.month, day.day, 23, 59, tzinfo=LOCAL_ZONE))
    return min(candidates) if candidates else None


def _inbox_sort_key(row: dict[str, Any]) -> tuple[bool, bool, float]:
    # Open cases first; among them the nearest deadline first; then those without one, newest first.
    closed = row["status"] == CaseStatus.closed.value
    deadline = None if closed else _next_deadline(row)
    if deadline is None:
        return (closed, True, -datetime.fromisoformat(row["created_at"]).timestamp())
    return (closed, False, deadline.timestamp())


def _inbox_row(
    row: dict[str, Any],
    runtime: Runtime,
    subject: Subject,
    names: dict[str, str],
    t: Translator,
    lang: str,
    now: datetime,
    today: date,
) -> dict[str, Any]:
    closed = row["status"] == CaseStatus.closed.value
    assignee = row["assignee_id"]
    complaint = complaint_week_info(t, lang, row["complaint_deadline_week"], today)
    if complaint is not None and closed:
        complaint["state"] = "ok"  # a closed case needs no warning any more
    return {
        "href": case_url(row["id"]),
        "ref": row["id"][:8],
        "status": row["status"],
        "status_label": code_label(t, "case_status", row["status"]),
        "reopened": bool(row.get("reopened")) and not closed,
        "urgency": row["urgency"],
        "urgency_label": code_label(t, "urgency", row["urgency"]),
        "land_label": _land(runtime, row["land"], lang),
        "types": _types(runtime, row["type_codes"], lang),
        "incidents": row["incidents"],
        "labels": [code_label(t, "case_label", code) for code in row["labels"]],
        "created": format_datetime(row["created_at"], lang),
        "ack": ack_info(t, lang, row["ack_deadline_at"], row["acknowledged_at"], now),
        "complaint": complaint,
        "assignee_me": assignee == subject.user_id,
        "assignee_name": names.get(assignee, "") if assignee else "",
    }


@router.get(INBOX)
def inbox(request: Request, subject: StaffDep) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    t = Translator(lang)
    chosen = _inbox_choices(request, runtime)
    rows, names, truncated = _inbox_rows(runtime, subject, chosen)
    rows.sort(key=_inbox_sort_key)
    now, today = utcnow(), _today()
    return pages_of(request).render(
        request,
        "staff_cases.html",
        cases=[_inbox_row(row, runtime, subject, names, t, lang, now, today) for row in rows],
        chosen=chosen,
        filtered=any(chosen.values()),
        options=_inbox_options(runtime, t, lang),
        truncated=truncated,
        is_member=bool(subject.memberships),
        # The only notice that lands here: a transfer ends the counsellor's access to the case page.
        notice=t("case_page.notice.transferred")
        if request.query_params.get("notice") == "transferred"
        else None,
    )


# -- the case page -------------------------------------------------------------------------------------------


def _incident_view(
    runtime: Runtime,
    case_id: str,
    item: dict[str, Any],
    attachments: list[dict[str, Any]],
    t: Translator,
    lang: str,
    today: date,
    closed: bool,
) -> dict[str, Any]:
    perpetrator = item.get("perpetrator") or {}
    url = item.get("url") or ""
    record = item.get("proceedings") or {}
    complaint = complaint_info(
        t,
        lang,
        item.get("complaint_deadline_on"),
        today,
        item.get("complaint_basis"),
        record.get("application_on"),
    )
    if complaint is not None and closed:
        complaint["state"] = "ok"
    return {
        "seq": item["seq"],
        "created": format_datetime(item["created_at"], lang),
        "types": _types(runtime, item["type_codes"], lang),
        "codes": list(item["type_codes"]),
        "type_other": item.get("type_other") or "",
        "channel_label": _channel(runtime, item["channel"], lang),
        "urgency_label": code_label(t, "urgency", item.get("urgency")),
        "occurred_on": format_date(item["occurred_on"], lang) if item.get("occurred_on") else "",
        "place": item.get("place") or "",
        "platform": item.get("platform") or "",
        "url": url,
        # Only web links become links; anything else stays text that can be copied.
        "url_is_link": url.startswith(("https://", "http://")),
        "description": item.get("description") or "",
        "perpetrator": {
            "familiarity": _tax(runtime, "perpetrator.familiarity", perpetrator.get("familiarity"), lang),
            "residence": _tax(runtime, "perpetrator.residence", perpetrator.get("residence"), lang),
            "number": _tax(runtime, "perpetrator.number", perpetrator.get("number"), lang),
            "details": perpetrator.get("details") or "",
        },
        "complaint": complaint,
        "proceedings": proceedings_view(record, t, lang),
        "attachments": [_attachment_view(case_id, a, lang) for a in attachments],
    }


def proceedings_view(record: dict[str, Any], t: Translator, lang: str) -> dict[str, Any]:
    """An incident's proceedings for the pages (staff and /fall): the days formatted, the outcome named,
    and the raw values for the form (a date input wants the ISO day)."""

    def day(name: str) -> str:
        value = record.get(name)
        return format_date(value, lang) if value else ""

    outcome = record.get("outcome") or ""
    return {
        "recorded": bool(record),
        "complaint_on": day("complaint_on"),
        "application_on": day("application_on"),
        "file_number": record.get("file_number") or "",
        "information_requested": bool(record.get("information_requested")),
        "information_requested_on": day("information_requested_on"),
        "outcome": outcome,
        "outcome_label": code_label(t, "proceedings.outcome", outcome),
        "raw": {name: record.get(name) or "" for name in PROCEEDINGS_FIELDS},
    }


PROCEEDINGS_FIELDS = (
    "complaint_on",
    "application_on",
    "file_number",
    "information_requested",
    "information_requested_on",
    "outcome",
)


def proceedings_from_form(form: FormData | dict[str, Any]) -> Proceedings:
    """The proceedings form's fields (staff and /fall share it) as the model, or ValidationFailed naming the
    field ("proceedings-" + its name); an empty date field is no date."""
    data: dict[str, Any] = {}
    for name in PROCEEDINGS_FIELDS:
        value = form.get(name)
        text = value.strip() if isinstance(value, str) else ""
        if name == "information_requested":
            data[name] = text == "yes"
        elif text:
            data[name] = text
    try:
        return Proceedings.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            [
                {
                    "loc": [f"proceedings-{error['loc'][0] if error['loc'] else 'form'}"],
                    "type": error["type"],
                    "msg": error["msg"],
                }
                for error in exc.errors()
            ]
        ) from None


def _attachment_view(case_id: str, attachment: dict[str, Any], lang: str) -> dict[str, str]:
    return {
        # The JSON API streams it decrypted (and audits the download); the staff cookie is enough for a GET.
        "href": f"/api/v1/cases/{case_id}/attachments/{attachment['id']}",
        "filename": attachment["filename"] or attachment["id"][:8],
        "content_type": attachment["content_type"],
        "size": format_size(int(attachment["size_bytes"]), lang),
    }


def _history_view(
    history: list[dict[str, Any]], names: dict[str, str], t: Translator, lang: str
) -> list[dict[str, Any]]:
    """Newest first; each opening of the case is audited, so runs of openings by one person are folded."""
    entries: list[dict[str, Any]] = []
    for event in history:
        if event.get("actor_kind") == "reporter":
            # The reporter's own downloads and dossiers: named as the reporter, never anyone more exact.
            actor = t("case_page.conversation.reporter")
        else:
            actor = names.get(event.get("actor_id") or "", "") or t("case_page.history.someone")
        last = entries[-1] if entries else None
        if (
            last is not None
            and event["action"] == "case.decrypt"
            and last["action"] == "case.decrypt"
            and last["actor"] == actor
        ):
            last["count"] += 1
            last["at"] = format_datetime(event["at"], lang)
            continue
        entries.append(
            {
                "action": event["action"],
                "label": code_label(t, "history", event["action"]),
                "actor": actor,
                "at": format_datetime(event["at"], lang),
                "count": 1,
            }
        )
    entries.reverse()
    return entries


def _routing_view(
    routing: list[dict[str, Any]], orgs: dict[str, str], t: Translator, lang: str
) -> list[dict[str, Any]]:
    views = []
    for record in routing:
        minutes = int(record.get("ack_deadline_minutes") or 0)
        views.append(
            {
                "at": format_datetime(record["created_at"], lang),
                "targets": [orgs.get(slug, slug) for slug in record.get("targets", [])],
                "escalation": [
                    {
                        "name": orgs.get(step["org"], step["org"]),
                        "after": _duration(t, int(step["after_minutes"]), "after"),
                    }
                    for step in record.get("escalation", [])
                ],
                "ack_deadline": _duration(t, minutes, "within"),
                "fallback_used": bool(record.get("fallback_used")),
                # A content hash: its first characters are enough to tell two versions apart.
                "policy_version": str(record.get("policy_version", ""))[:12],
                "reasons": [
                    {
                        "rule_id": reason.get("rule_id") or "",
                        "kind_label": code_label(t, "routing_reason", reason.get("kind")),
                        "kind": reason.get("kind", ""),
                        # English and made of codes only (the engine writes no report content into it).
                        "detail": reason.get("detail", ""),
                    }
                    for reason in record.get("reasons", [])
                ],
            }
        )
    return views


def _holder_view(holder: dict[str, Any], acknowledged: bool, t: Translator) -> dict[str, Any]:
    minutes = holder.get("escalation_after_minutes")
    state = ""
    if not holder["active"]:
        if minutes is not None and not acknowledged:
            state = t("case_page.holders.waiting", after=_duration(t, int(minutes), "after"))
        elif minutes is not None:
            state = t("case_page.holders.not_needed")
        else:
            state = t("case_page.holders.inactive")
    return {
        "name": holder["name"],
        "role_label": code_label(t, "grant_role", holder["role"]),
        "active": bool(holder["active"]),
        "state": state,
    }


def case_view(
    runtime: Runtime, db: Session, subject: Subject, detail: dict[str, Any], t: Translator, lang: str
) -> dict[str, Any]:
    """What the template shows, with every code already turned into a label (templates use literal keys)."""
    now, today = utcnow(), _today()
    case_id = detail["id"]
    closed = detail["status"] == CaseStatus.closed.value
    staff_ids = {detail["assignee_id"]} if detail["assignee_id"] else set()
    staff_ids |= {item["author_id"] for item in detail["messages"] + detail["notes"] if item.get("author_id")}
    staff_ids |= {event["actor_id"] for event in detail["history"] if event.get("actor_id")}
    names = _staff_names(db, staff_ids)
    org_ids = {
        item["organisation_id"]
        for item in detail["messages"] + detail["notes"]
        if item.get("organisation_id")
    }
    slugs = {slug for record in detail["routing"] for slug in record.get("targets", [])}
    slugs |= {step["org"] for record in detail["routing"] for step in record.get("escalation", [])}
    orgs = _organisation_names(db, org_ids, slugs)

    by_incident: dict[str | None, list[dict[str, Any]]] = {}
    for attachment in detail["attachments"]:
        by_incident.setdefault(attachment.get("incident_id"), []).append(attachment)
    incident_ids = {item["id"] for item in detail["incidents"]}
    loose = [
        a
        for key, items in by_incident.items()
        if key not in incident_ids
        for a in items
        if not a.get("message_id")
    ]
    by_id = {attachment["id"]: attachment for attachment in detail["attachments"]}

    contact = detail.get("contact") or {}
    assignee = detail["assignee_id"]
    district = runtime.districts.district(detail["district_ags"]) if detail["district_ags"] else None
    complaints = [
        info
        for item in detail["incidents"]
        if not (item.get("proceedings") or {}).get("application_on")
        and (info := complaint_info(t, lang, item.get("complaint_deadline_on"), today)) is not None
    ]
    # The case's next deadline is a day; "not begun yet" is shown at its incident.
    next_complaint = min(complaints, key=lambda info: info["days"]) if complaints else None
    if next_complaint is not None and closed:
        next_complaint["state"] = "ok"

    def author(item: dict[str, Any]) -> str:
        name = names.get(item.get("author_id") or "", "") or t("case_page.history.someone")
        org = orgs.get(item.get("organisation_id") or "", "")
        return f"{name}, {org}" if org else name

    active_holders = {holder["organisation_id"] for holder in detail["holders"] if holder["active"]}
    colleagues = [
        {"id": user_id, "name": name}
        for user_id, name in organisations.members(db, active_holders)
        if user_id != subject.user_id
    ]
    receivers = sorted(
        (
            {
                "slug": receiver.slug,
                "name": receiver.display_name,
                "police": receiver.kind == "police_liaison",
            }
            for receiver in organisations.receivers(db).values()
            if receiver.id not in active_holders
        ),
        key=lambda item: (item["police"], item["name"]),
    )
    codes = sorted({code for item in detail["incidents"] for code in item["type_codes"]})
    articles = runtime.knowledge.links_for(db, codes, lang, limit=5)
    return {
        "matching": _matching_view(runtime, db, case_id, detail.get("perpetrator_identifiers") or [], t),
        "articles": articles,
        "colleagues": colleagues,
        "receivers": receivers,
        "id": case_id,
        "ref": case_id[:8],
        "url": case_url(case_id),
        "status": detail["status"],
        "status_label": code_label(t, "case_status", detail["status"]),
        "urgency": detail["urgency"],
        "urgency_label": code_label(t, "urgency", detail["urgency"]),
        "outcome": detail.get("outcome") or "",
        "outcome_label": code_label(t, "outcome", detail.get("outcome")),
        "closed": closed,
        "closed_at": format_datetime(detail["closed_at"], lang) if detail.get("closed_at") else "",
        "land_label": _land(runtime, detail["land"], lang),
        "district_label": district.name if district is not None else "",
        "office_label": _tax(runtime, "offices", detail.get("office"), lang),
        "created": format_datetime(detail["created_at"], lang),
        "ack": ack_info(t, lang, detail["ack_deadline_at"], detail["acknowledged_at"], now),
        "complaint": next_complaint,
        "assignee_me": assignee == subject.user_id,
        "assignee_name": names.get(assignee, "") if assignee else "",
        "labels": list(detail["labels"]),
        "label_names": [code_label(t, "case_label", code) for code in detail["labels"]],
        "consent_counselling": bool(detail.get("consent_counselling")),
        "consent_police": bool(detail.get("consent_police")),
        "municipality": detail.get("municipality") or "",
        "targets": [_tax(runtime, "targets", code, lang) for code in detail.get("targets") or []],
        "reported_by": detail.get("reported_by", "self"),
        "reported_by_label": _tax(runtime, "reported_by", detail.get("reported_by", "self"), lang),
        "answers": [
            {
                "legend": t(f"field.{kind}"),
                "labels": [_tax(runtime, kind, code, lang) for code in detail[kind]],
            }
            for kind in ANSWER_KINDS
            if detail.get(kind)
        ],
        "support_needs": [
            _tax(runtime, "support_needs", code, lang) for code in detail.get("support_needs") or []
        ],
        "contact": {
            "name": contact.get("name") or "",
            "email": contact.get("email") or "",
            "phone": contact.get("phone") or "",
        },
        "incidents": [
            _incident_view(runtime, case_id, item, by_incident.get(item["id"], []), t, lang, today, closed)
            for item in detail["incidents"]
        ],
        "loose_attachments": [_attachment_view(case_id, a, lang) for a in loose],
        "messages": [
            {
                "from_reporter": message["direction"] == "from_reporter",
                "author": t("case_page.conversation.reporter")
                if message["direction"] == "from_reporter"
                else author(message),
                "at": format_datetime(message["created_at"], lang),
                "body": message["body"],
                "files": [_attachment_view(case_id, by_id[ref], lang) for ref in message["attachment_ids"]],
            }
            for message in detail["messages"]
        ],
        "notes": [
            {"author": author(note), "at": format_datetime(note["created_at"], lang), "body": note["body"]}
            for note in detail["notes"]
        ],
        "holders": [_holder_view(holder, bool(detail["acknowledged_at"]), t) for holder in detail["holders"]],
        "events": _events_view(db, subject, detail["events"]),
        "merge": _merge_view(detail.get("merge")),
        "proceedings_outcomes": [
            {"code": code, "label": code_label(t, "proceedings.outcome", code)}
            for code in PROCEEDINGS_OUTCOMES
        ],
        "routing": _routing_view(detail["routing"], orgs, t, lang),
        "history": _history_view(detail["history"], names, t, lang),
    }


def _events_view(db: Session, subject: Subject, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The other incidents of this case's events: a link to a case the subject holds too; of any other case
    only that it exists and which organisations hold it (never a word of it)."""
    views = []
    for member in members:
        other = member["case_id"]
        mine = case_repository.visible_case(db, subject.organisation_ids, other) is not None
        views.append(
            {
                "incident_seq": member["incident_seq"],
                "seq": member["seq"],
                "mine": mine,
                "ref": other[:8] if mine else "",
                "href": case_url(other) if mine else "",
                "holders": [] if mine else case_repository.active_holder_names(db, other),
            }
        )
    return views


def _merge_view(merge: dict[str, Any] | None) -> dict[str, Any] | None:
    if merge is None:
        return None
    other = merge["other_case_id"]
    return {"role": merge["role"], "ref": other[:8], "href": case_url(other)}


def _matching_view(
    runtime: Runtime, db: Session, case_id: str, typed: list[dict[str, Any]], t: Translator
) -> dict[str, Any]:
    """The repeat-perpetrator matching of a case the subject holds (``detail`` checked that): the
    identifiers as the reporter typed them, and how many other cases share one and which organisations
    see them. Never another case's id, reporter or text (docs/matching.md)."""
    shared = runtime.matching.shared_with(db, case_id)
    line = ""
    if shared is not None:
        key = "case_page.matching.shared_one" if shared.cases == 1 else "case_page.matching.shared_many"
        names = ", ".join(shared.organisations) or t("case_page.matching.no_holder")
        line = t(key, n=shared.cases, organisations=names)
    return {
        "identifiers": identifier_items(typed, t),
        "shared": line,
        "kinds": kind_labels(shared.kinds, t) if shared is not None else "",
        # Any identifier without its token (a used-up budget, a rotated matching key): the button runs it.
        "waiting": bool(
            runtime.matching.waiting(
                db, case_id, [PerpetratorIdentifier.model_validate(item).normalised() for item in typed]
            )
        ),
    }


def _case_options(t: Translator) -> dict[str, Any]:
    return {
        "statuses": [{"code": s.value, "label": code_label(t, "case_status", s.value)} for s in CaseStatus],
        "outcomes": [{"code": code, "label": code_label(t, "outcome", code)} for code in OUTCOMES],
        "labels": [{"code": code, "label": code_label(t, "case_label", code)} for code in LABELS],
    }


def _case_response(
    request: Request,
    subject: Subject,
    case_id: str,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
    notice: tuple[str, str] | None = None,
) -> Response:
    """The case page; NotFound (the 404 page) for an id the subject may not open, as for one that is not."""
    _check_id(case_id)
    runtime = runtime_of(request)
    lang = request_lang(request)
    t = Translator(lang)
    with runtime.sessions() as db:
        detail = runtime.cases.detail(db, subject, case_id)
        case = case_view(runtime, db, subject, detail, t, lang)
    summary = errors or []
    # The platform notice's explanation, prefilled from the incident types (the counsellor completes it).
    codes = [code for item in case["incidents"] for code in item["codes"]]
    prefill = {"letter_explanation": letters.explanation(dossiers.coded_types(runtime.taxonomy, codes, "de"))}
    return pages_of(request).render(
        request,
        "staff_case.html",
        status=status,
        case=case,
        options=_case_options(t),
        taxonomy=runtime.taxonomy,
        max_attachments=runtime.settings.max_attachments_per_report,
        max_attachment_mb=runtime.settings.max_attachment_bytes // (1024 * 1024),
        values={**prefill, **(values or {})},
        errors=summary,
        field_errors={error["field"]: error["message"] for error in summary if error["field"]},
        notice={"text": t(notice[0]), "section": notice[1]} if notice else None,
    )


@router.get(INBOX + "/{case_id}")
def case_page(case_id: str, request: Request, subject: StaffDep) -> Response:
    notice = _NOTICES.get(request.query_params.get("notice", ""))
    return _case_response(request, subject, case_id, notice=notice)


# -- forms ---------------------------------------------------------------------------------------------------


# The case page's fields of free text, checked (control characters included) by MessageCreate.
_FREE_TEXT = frozenset({"message", "note"}) | letter_request.FREE_TEXT


async def _form(request: Request) -> FormData:
    return await read_form(request, max_fields=50, free_text=_FREE_TEXT)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _refused(field: str, kind: str) -> ValidationFailed:
    return ValidationFailed([{"loc": [field], "type": kind, "msg": ""}])


def _validated(model: type[BaseModel], data: dict[str, Any], field: str | None = None) -> Any:
    """The model, or ValidationFailed naming the field (``field`` replaces the schema's own name)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            [
                {
                    "loc": [field] if field else [str(part) for part in error["loc"][:1]],
                    "type": error["type"],
                    "msg": error["msg"],
                }
                for error in exc.errors()
            ]
        ) from None


def _error_list(detail: list[dict[str, Any]], t: Translator) -> list[dict[str, str]]:
    """The summary: one line per field, the field's name first, never the value that was sent."""
    summary: list[dict[str, str]] = []
    seen: set[str] = set()
    for error in detail:
        loc = [str(part) for part in error.get("loc", [])]
        name = loc[0] if loc else ""
        own_field = name in _FORM_FIELDS or name.startswith(("types-", "proceedings-"))
        field = _FIELD_OF_LOC.get(name, name if own_field else "")
        kind = str(error.get("type", ""))
        if kind.startswith("attachment_"):
            # "Datei 2 ist zu groß": the file by its position, never by the name it was sent with.
            text = t(f"validation.{kind}", name=t("upload.file_n", n=str(error.get("position", ""))))
            summary.append({"field": field, "message": f"{code_label(t, 'case_page.field', field)}: {text}"})
            seen.add(field)
            continue
        if field == "outcome" and kind == "missing":
            key = "case_page.error.outcome_required"
        elif field == "reporter_consent":
            key = "case_page.error.consent_required"
        elif kind == "consent_police":
            key = "case_page.error.consent_police"
        elif field == "organisation" and kind == "invalid":
            key = "case_page.error.already_holder"
        elif "future" in str(error.get("msg", "")):
            key = "validation.date_future"
        elif kind in ("same_case", "other_event", "holders_differ", "other_newer"):
            key = f"case_page.error.{kind}"
        elif "control characters" in str(error.get("msg", "")):
            key = "validation.control_chars"
        elif kind == "value_error" and error.get("msg") == "email":
            key = "validation.email"
        else:
            key = VALIDATION_MESSAGE_KEYS.get(kind, "validation.invalid")
        label = code_label(t, "case_page.field", (field or name or "form").split("-")[0])
        message = f"{label}: {t(key)}"
        if (field and field in seen) or message in {entry["message"] for entry in summary}:
            continue
        seen.add(field)
        summary.append({"field": field, "message": message})
    return summary


Work = Callable[[Runtime, Session], object]


async def _act(
    request: Request,
    subject: Subject,
    case_id: str,
    form: FormData,
    *,
    values: dict[str, Any],
    notice: str,
    work: Work,
    done_url: str | None = None,
) -> Response:
    """Check the form token, run the change, and answer: 303 with a notice, or the page with the errors."""
    t = Translator(request_lang(request))
    if not pages_of(request).csrf_ok(request, _text(form, "csrf_token")):
        errors = [{"field": "", "message": f"{t('error.csrf.title')}: {t('error.csrf.message')}"}]
        return await run_in_threadpool(
            _case_response, request, subject, case_id, status=403, values=values, errors=errors
        )
    _check_id(case_id)
    runtime = runtime_of(request)

    def run() -> None:
        with runtime.sessions() as db:
            work(runtime, db)

    try:
        await run_in_threadpool(run)
    except ValidationFailed as exc:
        errors = _error_list(exc.detail, t)
        return await run_in_threadpool(
            _case_response, request, subject, case_id, status=422, values=values, errors=errors
        )
    if done_url is not None:
        return RedirectResponse(done_url, status_code=303)
    section = _NOTICES[notice][1]
    anchor = "" if section == "top" else f"#{section}"
    return RedirectResponse(f"{case_url(case_id)}?notice={notice}{anchor}", status_code=303)


@router.post(INBOX + "/{case_id}/bestaetigen")
async def acknowledge(case_id: str, request: Request, subject: StaffDep) -> Response:
    form = await _form(request)

    def work(runtime: Runtime, db: Session) -> None:
        runtime.cases.update(db, subject, case_id, CaseUpdate(acknowledge=True))

    return await _act(request, subject, case_id, form, values={}, notice="acknowledged", work=work)


@router.post(INBOX + "/{case_id}/status")
async def change_status(case_id: str, request: Request, subject: StaffDep) -> Response:
    form = await _form(request)
    status, outcome = _text(form, "status"), _text(form, "outcome")

    def work(runtime: Runtime, db: Session) -> None:
        change = _validated(CaseUpdate, {"status": status or None, "outcome": outcome or None})
        runtime.cases.update(db, subject, case_id, change)

    values = {"status": status, "outcome": outcome}
    return await _act(request, subject, case_id, form, values=values, notice="status_saved", work=work)


@router.post(INBOX + "/{case_id}/zuweisen")
async def assign(case_id: str, request: Request, subject: StaffDep) -> Response:
    form = await _form(request)
    action, chosen = _text(form, "action"), _text(form, "assignee_id")

    def work(runtime: Runtime, db: Session) -> None:
        if action == "me":
            change = CaseUpdate(assignee_id=subject.user_id)
        elif action == "other":
            # The service checks that the colleague belongs to an organisation holding the case.
            change = _validated(CaseUpdate, {"assignee_id": chosen or None}, field="assignee_id")
            if change.assignee_id is None:
                raise _refused("assignee_id", "missing")
        elif action == "none":
            change = CaseUpdate(unassign=True)
        else:
            raise _refused("assignee_id", "invalid")
        runtime.cases.update(db, subject, case_id, change)

    notice = {"none": "unassigned", "other": "assigned_other"}.get(action, "assigned")
    return await _act(request, subject, case_id, form, values={}, notice=notice, work=work)


@router.post(INBOX + "/{case_id}/labels")
async def set_labels(case_id: str, request: Request, subject: StaffDep) -> Response:
    form = await _form(request)
    # No box ticked sends no field at all: that is "no labels", which this form means to store.
    labels = [value for value in form.getlist("labels") if isinstance(value, str)]

    def work(runtime: Runtime, db: Session) -> None:
        runtime.cases.update(db, subject, case_id, _validated(CaseUpdate, {"labels": labels}))

    values = {"labels": labels}
    return await _act(request, subject, case_id, form, values=values, notice="labels_saved", work=work)


@router.post(INBOX + "/{case_id}/weitergeben")
async def refer(case_id: str, request: Request, subject: StaffDep) -> Response:
    """Refer (share) or transfer (hand over) the case; after a transfer the case is no longer ours to see,
    so the counsellor lands on the inbox with a notice instead of a 404."""
    form = await _form(request)
    target, mode, consent = _text(form, "organisation"), _text(form, "mode"), _text(form, "consent") == "yes"

    def work(runtime: Runtime, db: Session) -> None:
        if mode not in ("refer", "transfer"):
            raise _refused("mode", "missing")
        if not target:
            raise _refused("organisation", "missing")
        runtime.cases.refer(db, subject, case_id, target, transfer=mode == "transfer", consent=consent)

    values = {"organisation": target, "mode": mode, "consent": consent}
    done = f"{INBOX}?notice=transferred" if mode == "transfer" else None
    return await _act(
        request, subject, case_id, form, values=values, notice="referred", work=work, done_url=done
    )


@router.post(INBOX + "/{case_id}/vorfaelle/{seq}/einordnung")
async def reclassify(case_id: str, seq: int, request: Request, subject: StaffDep) -> Response:
    form = await _form(request)
    codes = [value for value in form.getlist("type_codes") if isinstance(value, str)]

    def work(runtime: Runtime, db: Session) -> None:
        try:
            runtime.cases.reclassify(db, subject, case_id, seq, codes)
        except ValidationFailed as exc:
            # Shown at this incident's form: a page lists several incidents, each with its own choices.
            raise ValidationFailed([{**error, "loc": [f"types-{seq}"]} for error in exc.detail]) from None

    values = {f"types-{seq}": codes}
    return await _act(request, subject, case_id, form, values=values, notice="reclassified", work=work)


@router.post(INBOX + "/{case_id}/nachricht")
@body(BodyKind.upload)
async def write_message(case_id: str, request: Request, subject: StaffDep) -> Response:
    """A message to the reporter, optionally with files; the files are encrypted with the case key while
    the form streams in, so the case is opened (404 if the subject may not see it) before the body is read."""
    _check_id(case_id)
    runtime = runtime_of(request)

    def case_key() -> bytes:
        with runtime.sessions() as db:
            return runtime.cases.unlock(db, subject, case_id).data_key

    key = await run_in_threadpool(case_key)
    parser = await parse_form(
        request, key=key, case_id=case_id, blobs=runtime.blobs, settings=runtime.settings
    )
    form = FormData([(name, value) for name, values in parser.fields.items() for value in values])
    text = _text(form, "message")

    def work(runtime: Runtime, db: Session) -> None:
        problems = [
            {"loc": ["message_files"], "type": error["reason"], "position": error.get("position", "")}
            for error in parser.errors
        ]
        try:
            body: MessageCreate = _validated(MessageCreate, {"body": text}, field="message")
        except ValidationFailed as exc:
            raise ValidationFailed(exc.detail + problems) from None
        if problems:
            raise ValidationFailed(problems)
        runtime.cases.post_message(db, subject, case_id, body.body, parser.uploads)

    values = {"message": text}
    try:
        response = await _act(
            request, subject, case_id, form, values=values, notice="message_sent", work=work
        )
    except BaseException:
        parser.discard()
        raise
    if response.status_code != 303:
        # Refused: the encrypted files of this request must not stay behind without a row.
        parser.discard()
    return response


async def _download_request(case_id: str, request: Request, subject: Subject) -> tuple[Runtime, FormData]:
    """The checks before a generated download of a case (dossier, evidence ZIP): a case the subject may not
    see is a 404 before anything else, a missing form token included (a 403 would tell that the case
    exists). Only whether a holding organisation's grant exists is looked up here: the case key is
    unwrapped once, by the generation itself."""
    _check_id(case_id)
    runtime = runtime_of(request)
    form = await _form(request)

    def visible() -> bool:
        with runtime.sessions() as db:
            return case_repository.visible_case(db, subject.organisation_ids, case_id) is not None

    if not await run_in_threadpool(visible):
        raise NotFound()
    if not pages_of(request).csrf_ok(request, _text(form, "csrf_token")):
        raise CsrfFailed()
    return runtime, form


@router.post(INBOX + "/{case_id}/dossier")
async def case_dossier(case_id: str, request: Request, subject: StaffDep) -> Response:
    """The case dossier as PDF for a counsellor of a holding organisation (404 for anyone else), generated
    in memory, streamed, audited without content (service/dossier)."""
    runtime, _ = await _download_request(case_id, request, subject)
    lang = request_lang(request)

    def generate() -> bytes:
        with runtime.sessions() as db:
            unlocked = runtime.cases.unlock(db, subject, case_id)
            dossier = dossiers.build(
                db, unlocked.case, unlocked.data_key, runtime.blobs, runtime.taxonomy, lang
            )
            document = render_dossier(dossier, lang)
            dossiers.record_generated(
                runtime.audit, db, dossier, unlocked.case.id, actor_kind="staff", actor_id=subject.user_id
            )
            db.commit()
            return document

    return dossier_download(await run_in_threadpool(generate))


@router.post(INBOX + "/{case_id}/beweise")
async def case_evidence_zip(case_id: str, request: Request, subject: StaffDep) -> Response:
    """The evidence files the dossier lists, as a ZIP with their SHA256SUMS, for a counsellor of a holding
    organisation (404 for anyone else, before the form token is looked at): decrypted while it streams,
    nothing stored, audited without content (service/dossier/archive.py)."""
    runtime, _ = await _download_request(case_id, request, subject)
    lang = request_lang(request)

    def prepare() -> tuple[list[archive.Member], bytes]:
        with runtime.sessions() as db:
            unlocked = runtime.cases.unlock(db, subject, case_id)
            dossier = dossiers.build(
                db, unlocked.case, unlocked.data_key, runtime.blobs, runtime.taxonomy, lang
            )
            items = archive.members(db, dossier, unlocked.case.id)
            archive.record_downloaded(
                runtime.audit, db, len(items), unlocked.case.id, actor_kind="staff", actor_id=subject.user_id
            )
            db.commit()
            return items, unlocked.data_key

    items, key = await run_in_threadpool(prepare)
    return archive.download(items, key, runtime.blobs)


@router.post(INBOX + "/{case_id}/brief")
async def case_letter(case_id: str, request: Request, subject: StaffDep) -> Response:
    """A letter filled from the decrypted case, as PDF or plain text, for a counsellor of a holding
    organisation (404 for anyone else, before the form token is looked at). What was typed for it goes into
    this answer only: never stored, never logged, audited as the kind of letter (service/dossier)."""
    runtime, form = await _download_request(case_id, request, subject)
    wanted, errors = letter_request.parse(form)
    if wanted is None:
        summary = _error_list(errors, Translator(request_lang(request)))
        values = letter_request.typed_values(form)
        return await run_in_threadpool(
            _case_response, request, subject, case_id, status=422, values=values, errors=summary
        )
    today = _today()

    def generate() -> bytes:
        with runtime.sessions() as db:
            unlocked = runtime.cases.unlock(db, subject, case_id)
            dossier = dossiers.build(
                db, unlocked.case, unlocked.data_key, runtime.blobs, runtime.taxonomy, "de"
            )
            document = letter_request.rendered(
                wanted, letters.write(wanted.kind, dossier, wanted.typed, today)
            )
            letter_request.record_generated(
                runtime.audit, db, wanted.kind, unlocked.case.id, actor_kind="staff", actor_id=subject.user_id
            )
            db.commit()
            return document

    document = await run_in_threadpool(generate)
    return letter_request.letter_download(wanted, document, today)


@router.post(INBOX + "/{case_id}/notiz")
async def write_note(case_id: str, request: Request, subject: StaffDep) -> Response:
    form = await _form(request)
    text = _text(form, "note")

    def work(runtime: Runtime, db: Session) -> None:
        body: MessageCreate = _validated(MessageCreate, {"body": text}, field="note")
        runtime.cases.add_note(db, subject, case_id, body.body)

    return await _act(request, subject, case_id, form, values={"note": text}, notice="note_added", work=work)


@router.post(INBOX + "/{case_id}/vorfaelle/{seq}/verfahren")
async def record_proceedings(case_id: str, seq: int, request: Request, subject: StaffDep) -> Response:
    """The proceedings of one incident (Strafanzeige, Strafantrag, Aktenzeichen, § 406d StPO, outcome):
    sealed with the case key; a Strafantrag recorded ends the deadline's reminders."""
    form = await _form(request)

    def work(runtime: Runtime, db: Session) -> None:
        try:
            record = proceedings_from_form(form)
        except ValidationFailed as exc:
            # Shown at this incident's form: a page lists several incidents, each with its own.
            raise ValidationFailed(
                [{**error, "loc": [f"proceedings-{seq}"]} for error in exc.detail]
            ) from None
        runtime.cases.record_proceedings(db, subject, case_id, seq, record)

    values = {f"proceedings-{seq}": {name: _text(form, name) for name in PROCEEDINGS_FIELDS}}
    return await _act(request, subject, case_id, form, values=values, notice="proceedings_saved", work=work)


@router.post(INBOX + "/{case_id}/abgleich")
async def resume_matching(case_id: str, request: Request, subject: StaffDep) -> Response:
    """Run the repeat-perpetrator matching of identifiers that wait (a used-up budget, a rotated matching
    key) from the sealed ones, with the case key of the holder; audited without content."""
    form = await _form(request)
    outcome: list[bool] = []

    def work(runtime: Runtime, db: Session) -> None:
        outcome.append(runtime.cases.resume_matching(db, subject, case_id, runtime.intake.resume_matching))

    response = await _act(request, subject, case_id, form, values={}, notice="matching_done", work=work)
    if outcome == [False]:
        return RedirectResponse(f"{case_url(case_id)}?notice=matching_waiting#matching", status_code=303)
    return response


def _seq(form: FormData, name: str) -> int:
    text = _text(form, name).strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise _refused(name, "invalid")
    return int(text)


@router.post(INBOX + "/{case_id}/ereignis")
async def link_event(case_id: str, request: Request, subject: StaffDep) -> Response:
    """Declare an incident of this case and one of another case the subject holds the same event. A case
    the subject does not hold (or none) is a 404, as for the case in the address."""
    form = await _form(request)
    other = _text(form, "other_case")

    def work(runtime: Runtime, db: Session) -> None:
        seq, other_seq = _seq(form, "seq"), _seq(form, "other_seq")
        if not other.strip():
            raise _refused("other_case", "missing")
        runtime.cases.link_event(db, subject, case_id, seq, other, other_seq)

    values = {name: _text(form, name) for name in ("seq", "other_case", "other_seq")}
    return await _act(request, subject, case_id, form, values=values, notice="linked", work=work)


@router.post(INBOX + "/{case_id}/ereignis/{seq}/loesen")
async def unlink_event(case_id: str, seq: int, request: Request, subject: StaffDep) -> Response:
    form = await _form(request)

    def work(runtime: Runtime, db: Session) -> None:
        runtime.cases.unlink_event(db, subject, case_id, seq)

    return await _act(request, subject, case_id, form, values={}, notice="unlinked", work=work)


@router.post(INBOX + "/{case_id}/zusammenfuehren")
async def propose_merge(case_id: str, request: Request, subject: StaffDep) -> Response:
    """Propose merging this case and another one the subject holds (the newer into the older; the reporter
    confirms from the newer one on /fall), or withdraw a pending proposal. Another case the subject does
    not hold is a 404."""
    form = await _form(request)
    action, other = _text(form, "action"), _text(form, "other_case")

    def work(runtime: Runtime, db: Session) -> None:
        if action == "withdraw":
            runtime.cases.withdraw_merge(db, subject, case_id)
            return
        if not other.strip():
            raise _refused("other_case", "missing")
        runtime.cases.propose_merge(db, subject, case_id, other)

    notice = "merge_withdrawn" if action == "withdraw" else "merge_proposed"
    values = {"merge_case": other}
    return await _act(request, subject, case_id, form, values=values, notice=notice, work=work)
