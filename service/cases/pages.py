"""Counsellor pages: the inbox and the case page, with forms that work without JavaScript.

They mirror the JSON API (service/cases/endpoints.py) and call the same CaseService methods, so the rules are
the same for both: a case the subject may not see is a 404 exactly like one that does not exist, and the
service audits every decryption and every change. Every form carries the CSRF token. A success answers 303
back to the case page, so a reload never sends a message twice; the notice is named by a fixed code in the
address, never by text. An error shows the page again with what was typed and an error summary on top.

Routes only: here the pages that show (and ``act``, which every form runs through); the forms' routes are in
service/cases/form_pages.py, their checks and error summary in service/cases/forms.py. What the pages show
is made by the presenters (service/cases/presenter.py, service/cases/case_presenter.py) from the typed case
data; what other features add to the case page comes through service/cases/panels.py.

Nothing here logs: whatever a request carries is case content.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from service.auth.deps import StaffDep, pages_of
from service.auth.subject import Subject
from service.cases import repository as case_repository
from service.cases.case_presenter import CaseLookups, case_options, case_view, organisation_refs, staff_ids
from service.cases.forms import FORM_FIELDS, error_list, value_of
from service.cases.models import CaseStatus
from service.cases.panels import panel_views
from service.cases.presenter import (
    INBOX,
    Labels,
    case_url,
    inbox_options,
    inbox_row,
    inbox_sort_key,
    today,
)
from service.cases.repository import CaseFilters
from service.cases.schemas import CaseFile, InboxRow
from service.cases.views import FormValues
from service.db import utcnow
from service.deps import in_transaction, runtime_of
from service.errors import AlreadySubmitted, ErrorDetail, NotFound, ValidationFailed
from service.i18n import Translator
from service.identity import repository as organisations
from service.runtime import Runtime
from service.web import StrictRoute, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)

# new_id() makes UUID4 text; anything else cannot be a case, and is not worth a database round trip.
_CASE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
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
    "message_already_sent": ("case_page.notice.message_already_sent", "conversation"),
    "note_added": ("case_page.notice.note_added", "notes"),
    "note_already_added": ("case_page.notice.note_already_added", "notes"),
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


# The case page's forms whose every view carries a single-use token (``view_token``), and the notice of a
# second submission of the same view: a second tap on "send" on a slow connection, or Back and send, must
# not send the reporter the same message twice (nor add the same note twice). The other forms set a state,
# which a second submission sets again to the same.
ONCE_NOTICES = {"message": "message_already_sent", "note": "note_already_added"}


def view_purpose(form: str, case_id: str) -> str:
    """What a view token of the case page's ``form`` is made for: that form of that case only."""
    return f"case-{form}:{case_id}"


def check_case_id(case_id: str) -> None:
    if not _CASE_ID.match(case_id):
        raise NotFound()


def _labels(runtime: Runtime, lang: str) -> Labels:
    return Labels(runtime.taxonomy, runtime.districts, Translator(lang), lang)


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


def _inbox_rows(
    runtime: Runtime, subject: Subject, chosen: dict[str, str]
) -> tuple[list[InboxRow], dict[str, str], bool]:
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
    rows: list[InboxRow] = []
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
        names = case_repository.staff_names(db, {row.assignee_id for row in rows if row.assignee_id})
    return rows, names, truncated


@router.get(INBOX)
def inbox(request: Request, subject: StaffDep) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    labels = _labels(runtime, lang)
    chosen = _inbox_choices(request, runtime)
    rows, names, truncated = _inbox_rows(runtime, subject, chosen)
    rows.sort(key=inbox_sort_key)
    now, day = utcnow(), today()
    return pages_of(request).render(
        request,
        "staff_cases.html",
        cases=[inbox_row(row, labels, subject.user_id, names, now, day) for row in rows],
        chosen=chosen,
        filtered=any(chosen.values()),
        options=inbox_options(labels),
        truncated=truncated,
        is_member=bool(subject.memberships),
        # The only notice that lands here: a transfer ends the counsellor's access to the case page.
        notice=labels.t("case_page.notice.transferred")
        if request.query_params.get("notice") == "transferred"
        else None,
    )


# -- the case page -------------------------------------------------------------------------------------------


def _lookups(runtime: Runtime, db: Session, subject: Subject, case: CaseFile, lang: str) -> CaseLookups:
    """What the case page shows besides the case file: names, colleagues, receivers, linked cases."""
    org_ids, slugs = organisation_refs(case)
    active_holders = {holder.organisation_id for holder in case.holders if holder.active}
    receivers = sorted(
        (
            (receiver.slug, receiver.display_name, receiver.kind == "police_liaison")
            for receiver in organisations.receivers(db).values()
            if receiver.id not in active_holders
        ),
        key=lambda item: (item[2], item[1]),
    )
    others = {member.case_id for member in case.events}
    mine = {
        other: case_repository.visible_case(db, subject.organisation_ids, other) is not None
        for other in others
    }
    codes = sorted({code for item in case.incidents for code in item.type_codes})
    return CaseLookups(
        staff_names=case_repository.staff_names(db, staff_ids(case)),
        organisation_names=case_repository.organisation_names(db, org_ids, slugs),
        colleagues=[
            (user_id, name)
            for user_id, name in organisations.members(db, active_holders)
            if user_id != subject.user_id
        ],
        receivers=receivers,
        articles=runtime.knowledge.links_for(db, codes, lang, limit=5),
        linked_mine=mine,
        linked_holders={
            other: case_repository.active_holder_names(db, other) for other in others if not mine[other]
        },
    )


def case_response(
    request: Request,
    subject: Subject,
    case_id: str,
    *,
    status: int = 200,
    values: FormValues | None = None,
    errors: list[dict[str, str]] | None = None,
    notice: tuple[str, str] | None = None,
) -> Response:
    """The case page; NotFound (the 404 page) for an id the subject may not open, as for one that is not."""
    check_case_id(case_id)
    runtime = runtime_of(request)
    lang = request_lang(request)
    labels = _labels(runtime, lang)
    t = labels.t
    with runtime.sessions() as db:
        detail = runtime.cases.detail(db, subject, case_id)
        # The page's transaction is the audited decryption, committed before anything is shown; at once,
        # because the audit chain stays locked until the commit. What follows only reads.
        db.commit()
        lookups = _lookups(runtime, db, subject, detail, lang)
        # The sections of the features built on cases (matching, letters): service/cases/panels.py.
        panels = panel_views(runtime.case_panels, db, detail, t, lang)
    now = utcnow()
    case = case_view(detail, lookups, labels, subject.user_id, now, today())
    summary = errors or []
    view_tokens = {form: runtime.submissions.issue(view_purpose(form, case_id), now) for form in ONCE_NOTICES}
    prefill = {name: value for view in panels.values() for name, value in view.values.items()}
    return pages_of(request).render(
        request,
        "staff_case.html",
        status=status,
        case=case,
        panels={name: view.context for name, view in panels.items()},
        options=case_options(t),
        taxonomy=runtime.taxonomy,
        max_attachments=runtime.settings.max_attachments_per_report,
        max_attachment_mb=runtime.settings.max_attachment_bytes // (1024 * 1024),
        values={**prefill, **(values or {})},
        errors=summary,
        field_errors={error["field"]: error["message"] for error in summary if error["field"]},
        notice={"text": t(notice[0]), "section": notice[1]} if notice else None,
        view_tokens=view_tokens,
    )


@router.get(INBOX + "/{case_id}")
def case_page(case_id: str, request: Request, subject: StaffDep) -> Response:
    notice = _NOTICES.get(request.query_params.get("notice", ""))
    return case_response(request, subject, case_id, notice=notice)


# -- forms ---------------------------------------------------------------------------------------------------


# The case page's fields of free text, checked (control characters included) by MessageCreate; the letter
# form's come with the case documents (service/cases/panels.py).
_FREE_TEXT = frozenset({"message", "note"})


async def case_form(request: Request) -> FormData:
    free_text = _FREE_TEXT | runtime_of(request).case_documents.free_text
    return await read_form(request, max_fields=50, free_text=free_text)


def error_summary(detail: list[ErrorDetail], t: Translator, runtime: Runtime) -> list[dict[str, str]]:
    return error_list(detail, t, FORM_FIELDS | runtime.case_documents.form_fields)


Work = Callable[[Runtime, Session], object]


async def act(
    request: Request,
    subject: Subject,
    case_id: str,
    form: FormData,
    *,
    values: FormValues,
    notice: str,
    work: Work,
    done_url: str | None = None,
    once: str | None = None,
    content: bytes = b"",
    undo: Callable[[], None] | None = None,
) -> Response:
    """Check the form token, run the change, and answer: 303 with a notice, or the page with the errors.

    The change is the request's unit of work (``in_transaction``): committed when ``work`` returns, before
    the answer; rolled back when it raises, so a refused or failed form leaves nothing half-written.

    ``once``: the form (``ONCE_NOTICES``) whose view token is claimed with ``content`` (what it sent:
    ``form_content``) in the same transaction, after the work, so that a case the subject may not see is a
    404 before anything else: the same view sent again with the same content stores nothing and lands on
    the case page with a notice that says so; other content from the same view (typed anew after Back) is
    stored. A missing, expired or forged view token never refuses the form: the token only keeps a second
    tap from storing the same text twice, and a message typed into a page left open for a day is not lost.
    ``undo``: called whenever nothing was stored (refused, failed, sent before), e.g. to delete the files
    encrypted while the form streamed in."""
    t = Translator(request_lang(request))
    stored = False
    try:
        if not pages_of(request).csrf_ok(request, value_of(form, "csrf_token")):
            errors = [{"field": "", "message": f"{t('error.csrf.title')}: {t('error.csrf.message')}"}]
            return await run_in_threadpool(
                case_response, request, subject, case_id, status=403, values=values, errors=errors
            )
        check_case_id(case_id)
        runtime = runtime_of(request)
        sent = value_of(form, "view_token")
        claim = (
            runtime.submissions.check(sent, view_purpose(once, case_id), utcnow(), content).claim
            if once is not None and sent
            else None
        )

        def unit(db: Session) -> None:
            work(runtime, db)
            # Last, so that the work's 404 comes first: the same view sent before rolls the work back
            # (AlreadySubmitted). This row is written while the work holds the audit chain's lock, which
            # AuditLog forbids for rows another transaction may hold first; these tokens' rows are written
            # only here, always after that lock, so a second tap waits until the first has committed and
            # then finds its token used: no circle.
            runtime.intake.claim(db, claim)

        try:
            await in_transaction(request, unit)
            stored = True
        except ValidationFailed as exc:
            errors = error_summary(exc.detail, t, runtime)
            return await run_in_threadpool(
                case_response, request, subject, case_id, status=422, values=values, errors=errors
            )
        except AlreadySubmitted:
            if once is None:
                raise
            notice = ONCE_NOTICES[once]
        if done_url is not None and stored:
            return RedirectResponse(done_url, status_code=303)
        section = _NOTICES[notice][1]
        anchor = "" if section == "top" else f"#{section}"
        return RedirectResponse(f"{case_url(case_id)}?notice={notice}{anchor}", status_code=303)
    finally:
        if undo is not None and not stored:
            undo()
