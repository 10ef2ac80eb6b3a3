"""HTML pages for reporters: work without JavaScript, German first, nothing lost on a bad field.

A refused form comes back with every value the reporter typed (only files must be chosen again: browsers
do not let a page pre-fill file inputs), an error summary at the top and the message beside each field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from service import csrf
from service.auth import sessions
from service.auth.sessions import REPORTER_SESSION
from service.cases.conversation import reporter_reply
from service.cases.models import GrantRole
from service.cases.presenter import code_label, proceedings_view
from service.cases.proceedings import OUTCOMES as PROCEEDINGS_OUTCOMES
from service.cases.proceedings import PROCEEDINGS_FIELDS, proceedings_from_form
from service.cases.repository import KeyHolder
from service.cases.response_times import AcknowledgementShare, acknowledgement_share
from service.cases.schemas import MessageCreate
from service.crypto import format_receipt
from service.db import utcnow
from service.deps import VALIDATION_MESSAGE_KEYS, enforce, runtime_of
from service.dossier import archive, letter_request, letters
from service.dossier import service as dossiers
from service.dossier.pdf import dossier_download
from service.dossier.pdf import render as render_dossier
from service.errors import AlreadySubmitted, CsrfFailed, NotFound, ValidationFailed
from service.evidence.uploads import EncryptingFormParser, parse_form
from service.i18n import LOCAL_ZONE, Translator, format_date, format_datetime, format_size
from service.matching.display import identifier_items
from service.matching.normalise import PLATFORM_NAMES
from service.notifications.mail import reporter_mail
from service.reports.deadline_view import deadline_view
from service.reports.schemas import (
    IdentifiersAdd,
    IncidentFields,
    NotifyAddress,
    PerpetratorKnown,
    ReportCreate,
)
from service.reports.service import CaseDraft
from service.reports.submissions import REPORT_PURPOSE, CheckedToken, TokenState, incident_purpose
from service.runtime import Runtime, intake_limit, receipt_limit
from service.web import BodyKind, Pages, StrictRoute, body, download, read_cookie, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)

SESSION_COOKIE = csrf.REPORTER_COOKIE
# Notices that a redirect back to /fall names by code (never by text, so a link cannot put words there).
CASE_NOTICES = {"message_sent": "notice.message_sent"}
# Shown at the top of /fall after the incident form or the "perpetrator known since" form.
INCIDENT_NOTICES = {
    "incident_already_added": "notice.incident_already_added",
    "known_saved": "notice.perpetrator_known_saved",
    "proceedings_saved": "notice.proceedings_saved",
    "merged": "notice.merged",
    "merge_declined": "notice.merge_declined",
}
NOTIFY_NOTICES = {"notify_saved": "notice.notify_saved", "notify_removed": "notice.notify_removed"}
LIST_FIELDS = {"type_codes", "targets", "support_needs", "motives", "bias", "triggers", "consequences"}
BOOL_FIELDS = {"consent_counselling", "consent_police", "consent_matching"}
# The form fields of the perpetrator identifiers for the matching (service/matching), one per kind; a handle
# takes its platform from ``match_platform``.
IDENTIFIER_FIELDS = (
    ("match_name", "name"),
    ("match_handle", "handle"),
    ("match_phone", "phone"),
    ("match_email", "email"),
    ("match_plate", "plate"),
)
MATCHING_NOTICES = {
    "identifiers_saved": "notice.identifiers_saved",
    "identifiers_waiting": "notice.identifiers_waiting",
    "identifiers_withdrawn": "notice.identifiers_withdrawn",
}


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def _form_values(fields: dict[str, list[str]]) -> dict[str, Any]:
    """Values to show again after an error: exactly what was sent."""
    values: dict[str, Any] = {}
    for name, items in fields.items():
        if name in ("csrf_token", "submission_token"):
            continue
        values[name] = items if name in LIST_FIELDS else items[-1]
    return values


def _identifiers_from_form(fields: dict[str, list[str]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The identifiers typed into the form (non-empty fields only), and the form field of each."""
    items: list[dict[str, Any]] = []
    names: list[str] = []
    for field, kind in IDENTIFIER_FIELDS:
        value = fields.get(field, [""])[-1]
        if not value.strip():
            continue
        item: dict[str, Any] = {"kind": kind, "value": value}
        if kind == "handle":
            item["platform"] = fields.get("match_platform", [""])[-1] or None
        items.append(item)
        names.append(field)
    return items, names


def _identifier_errors(errors: list[dict[str, Any]], fields: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Errors of ``perpetrator_identifiers[i]`` named after the form field the identifier was typed in."""
    _, names = _identifiers_from_form(fields)
    for error in errors:
        loc = [part for part in error.get("loc", []) if part != "body"]
        if loc and loc[0] == "perpetrator_identifiers":
            index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
            error["loc"] = [names[index] if index is not None and index < len(names) else "match_name"]
    return errors


def _form_to_data(fields: dict[str, list[str]], model: type[BaseModel]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in model.model_fields:
        if name == "perpetrator_identifiers":
            identifiers, _ = _identifiers_from_form(fields)
            if identifiers:
                data[name] = identifiers
        elif name in LIST_FIELDS:
            items = [item for item in fields.get(name, []) if item.strip()]
            if items or name == "type_codes":
                data[name] = items
        elif name in BOOL_FIELDS:
            data[name] = fields.get(name, [""])[-1] in ("1", "on", "true")
        else:
            value = fields.get(name, [""])[-1]
            if value.strip():
                data[name] = value
    return data


def _message_key(kind: str, message: str) -> str:
    if kind in VALIDATION_MESSAGE_KEYS:
        return VALIDATION_MESSAGE_KEYS[kind]
    if "future" in message:
        return "validation.date_future"
    if "control characters" in message:
        return "validation.control_chars"
    if "email" in message.lower() or (kind == "value_error" and "@" in message):
        return "validation.email"
    return "validation.invalid"


def _field_errors(errors: list[dict[str, Any]], t: Translator) -> tuple[list[dict[str, str]], dict[str, str]]:
    summary: list[dict[str, str]] = []
    by_field: dict[str, str] = {}
    for error in errors:
        loc = [part for part in error.get("loc", []) if part != "body"]
        field = str(error.get("field") or (loc[0] if loc else "description"))
        if field in by_field:
            continue
        if error.get("type") == "csrf":
            text = t("error.csrf.message")
        elif error.get("type") == "submission_expired":
            text = t("form.submission.expired")
        elif error.get("type") == "submission_unknown":
            text = t("form.submission.unknown")
        elif "reason" in error:
            text = t(f"validation.{error['reason']}", name=t("upload.file_n", n=error.get("position", "")))
        else:
            text = t(_message_key(str(error.get("type", "")), str(error.get("msg", ""))))
        message = f"{t(f'field.{field}')}: {text}"
        by_field[field] = message
        summary.append({"field": field, "message": message})
    return summary, by_field


def _validate(model: type[BaseModel], data: dict[str, Any]) -> tuple[BaseModel | None, list[dict[str, Any]]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, [{"loc": list(e["loc"]), "type": e["type"], "msg": e["msg"]} for e in exc.errors()]


def _form_context(runtime: Runtime) -> dict[str, Any]:
    return {
        "taxonomy": runtime.taxonomy,
        "lands": runtime.districts.lands,
        "districts": runtime.districts,
        "max_attachment_mb": runtime.settings.max_attachment_bytes // (1024 * 1024),
        "max_attachments": runtime.settings.max_attachments_per_report,
        "reporter_mail": reporter_mail(runtime.settings),
        # The platforms a perpetrator's handle can be given for (service/matching/normalise.py).
        "platforms": [{"code": code, "name": name} for code, name in PLATFORM_NAMES.items()],
    }


def _deadline_text(minutes: int, t: Translator) -> str:
    if minutes < 120:
        return t("deadline.minutes", n=minutes)
    if minutes < 72 * 60:
        return t("deadline.hours", n=minutes // 60)
    return t("deadline.days", n=minutes // (24 * 60))


def holder_lines(holders: Sequence[KeyHolder], acknowledged: bool, t: Translator) -> list[dict[str, str]]:
    """Every organisation holding the case key, with what it can do now: those that see the case first,
    then the stand-ins by the time their access would open."""
    ordered = sorted(holders, key=lambda holder: (not holder.active, holder.escalation_after_minutes or 0))
    lines = []
    for holder in ordered:
        if holder.role == GrantRole.escalation.value:
            if holder.active:
                state = t("holders.state.stepped_in")
            elif acknowledged:
                state = t("holders.state.standby_unneeded")
            else:
                after = _deadline_text(int(holder.escalation_after_minutes or 0), t)
                state = t("holders.state.standby", deadline=after)
        elif holder.role == GrantRole.referral.value:
            state = t("holders.state.referred") if holder.active else t("holders.state.inactive")
        else:
            state = t("holders.state.sees") if holder.active else t("holders.state.inactive")
        lines.append({"name": holder.name, "state": state})
    return lines


def _ack_share(runtime: Runtime) -> AcknowledgementShare | None:
    settings = runtime.settings
    with runtime.sessions() as db:
        return acknowledgement_share(db, utcnow(), settings.ack_figure_weeks, settings.ack_figure_min_cases)


@router.get("/")
def index(request: Request) -> Response:
    return _pages(request).render(request, "index.html")


def _checked_submission(runtime: Runtime, fields: dict[str, list[str]], purpose: str) -> CheckedToken:
    return runtime.submissions.check(fields.get("submission_token", [None])[-1], purpose, utcnow())


def _token_again(runtime: Runtime, fields: dict[str, list[str]], checked: CheckedToken, purpose: str) -> str:
    """The token a form comes back with after an error: the same one while it is good, so that this view
    of the form still files once (Back to it and send meets the used token); a new one when it expired
    or was never ours, so that the reporter can send what they typed."""
    sent = fields.get("submission_token", [None])[-1]
    if checked.state is TokenState.valid and sent:
        return sent
    return runtime.submissions.issue(purpose, utcnow())


def _submission_error(checked: CheckedToken) -> list[dict[str, Any]]:
    """An expired or unknown token as the form's first error (named after the send button, as CSRF)."""
    if checked.state is TokenState.valid:
        return []
    return [{"loc": ["csrf_token"], "type": f"submission_{checked.state.value}", "msg": ""}]


@router.get("/melden")
def report_form(request: Request) -> Response:
    runtime = runtime_of(request)
    return _pages(request).render(
        request,
        "report_form.html",
        values={},
        errors=[],
        field_errors={},
        submission_token=runtime.submissions.issue(REPORT_PURPOSE, utcnow()),
        **_form_context(runtime),
    )


async def _parse_multipart(
    request: Request, runtime: Runtime, key: bytes, case_id: str
) -> EncryptingFormParser:
    return await parse_form(request, key=key, case_id=case_id, blobs=runtime.blobs, settings=runtime.settings)


@router.post("/melden")
@body(BodyKind.upload)
async def submit_report(request: Request) -> Response:
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    enforce(runtime, request, intake_limit(runtime.settings))
    draft = CaseDraft.new()
    parser = await _parse_multipart(request, runtime, draft.data_key, draft.case_id)
    checked = _checked_submission(runtime, parser.fields, REPORT_PURPOSE)

    def again(errors: list[dict[str, Any]], status: int) -> Response:
        parser.discard()
        summary, by_field = _field_errors(errors, t)
        return pages.render(
            request,
            "report_form.html",
            status=status,
            values=_form_values(parser.fields),
            errors=summary,
            field_errors=by_field,
            submission_token=_token_again(runtime, parser.fields, checked, REPORT_PURPOSE),
            **_form_context(runtime),
        )

    if not pages.csrf_ok(request, parser.fields.get("csrf_token", [None])[-1]):
        return again([{"loc": ["csrf_token"], "type": "csrf", "msg": ""}], 403)
    model, errors = _validate(ReportCreate, _form_to_data(parser.fields, ReportCreate))
    errors = _submission_error(checked) + _identifier_errors(errors, parser.fields) + parser.errors
    if model is None or errors:
        return again(errors, 422)
    assert isinstance(model, ReportCreate)

    def file() -> Any:
        with runtime.sessions() as db:
            return runtime.intake.file_report(db, model, draft, parser.uploads, claim=checked.claim)

    try:
        filed = await run_in_threadpool(file)
    except ValidationFailed as exc:
        return again(exc.detail, 422)
    except AlreadySubmitted:
        # Back and send, or a second tap: this view of the form filed its report already.
        parser.discard()
        return pages.render(request, "report_already_received.html", status=409)
    except BaseException:
        parser.discard()
        raise
    receipt = format_receipt(filed.receipt)
    lang = request_lang(request)
    articles = await run_in_threadpool(_articles_for, runtime, list(model.type_codes), lang)
    share = await run_in_threadpool(_ack_share, runtime)
    return pages.render(
        request,
        "receipt.html",
        status=201,
        receipt=receipt,
        receipt_groups=receipt.split("-"),
        routed_to=filed.routed_to,
        key_holders=holder_lines(filed.key_holders, False, t),
        ack_deadline_text=_deadline_text(filed.ack_deadline_minutes, t),
        ack_share=share,
        articles=articles,
        complaint=deadline_view(filed.complaint, _today(), lang),
    )


def _today() -> date:
    return utcnow().astimezone(LOCAL_ZONE).date()


def _articles_for(runtime: Runtime, codes: list[str], lang: str) -> list[dict[str, str]]:
    """The Handlungsempfehlungen for the reported kinds of incident."""
    with runtime.sessions() as db:
        return runtime.knowledge.links_for(db, codes, lang, limit=5)


# -- the reporter's case file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReporterSession:
    case_id: str
    data_key: bytes


def _open_from_cookie(request: Request, runtime: Runtime) -> ReporterSession | None:
    with runtime.sessions() as db:
        opened = sessions.resume(db, REPORTER_SESSION, read_cookie(request, SESSION_COOKIE))
    if opened is None:
        return None
    return ReporterSession(case_id=opened.subject_id, data_key=opened.secret)


def _file_link(item: dict[str, Any], lang: str) -> dict[str, str]:
    """A file of the case as /fall lists it: its download (decrypted as it streams, audited)."""
    return {
        "href": f"/fall/anhang/{item['id']}",
        "filename": item["filename"] or item["id"][:8],
        "content_type": item["content_type"],
        "size": format_size(int(item["size_bytes"]), lang),
    }


# What a refused one-field form of /fall says, by kind of refusal (the field's label comes first).
_REFUSAL_TEXT = {"csrf": "error.csrf.message", "date_future": "validation.date_future"}


def _field_refused(
    request: Request,
    runtime: Runtime,
    reporter: ReporterSession,
    field: str,
    message: str,
    status: int,
    values: dict[str, Any] | None = None,
) -> Response:
    """The case page again, with one form's refusal at its field and in the summary."""
    return _case_page(
        request,
        runtime,
        reporter,
        status=status,
        values=values,
        errors=[{"field": field, "message": message}],
        field_errors={field: message},
    )


def _case_page(
    request: Request,
    runtime: Runtime,
    reporter: ReporterSession,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
    field_errors: dict[str, str] | None = None,
    notice: str | None = None,
    message_notice: str | None = None,
    notify_notice: str | None = None,
    matching_notice: str | None = None,
    incident_token: str | None = None,
) -> Response:
    lang = request_lang(request)
    t = Translator(lang)
    tax = runtime.taxonomy
    today = _today()
    with runtime.sessions() as db:
        try:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
        except NotFound:
            # The case was purged while the session lived: back to the sign-in page.
            return _pages(request).render(request, "reporter_login.html", errors=[], notice=None)
        view = runtime.intake.reporter_view(db, opened)
        pending = runtime.merges.pending(db, opened.case.id)
    case = {
        "merge": None
        if pending is None
        else {
            "older_created_on": format_date(pending.older_created_at, lang),
            "holders": pending.holders,
        },
        "proceedings_outcomes": [
            {"code": code, "label": code_label(t, "proceedings.outcome", code)}
            for code in PROCEEDINGS_OUTCOMES
        ],
        "status_label": t(f"status.{view['status']}"),
        "notify": view["notify"],
        "created_at": format_date(view["created_at"], lang),
        "organisations": view["organisations"],
        "acknowledged_on": format_date(view["acknowledged_on"], lang) if view["acknowledged_on"] else None,
        "first_reply_on": format_date(view["first_reply_on"], lang) if view["first_reply_on"] else None,
        "holders": holder_lines(
            [KeyHolder(**holder) for holder in view["key_holders"]], bool(view["acknowledged_on"]), t
        ),
        "messages": [
            {
                "from_reporter": message["direction"] == "from_reporter",
                # The reporter sees the organisation, never which counsellor wrote.
                "author": t("case.messages.from_me")
                if message["direction"] == "from_reporter"
                else message["organisation"] or t("case.organisations"),
                "at": format_datetime(message["created_at"], lang),
                "body": message["body"],
                "files": [_file_link(item, lang) for item in message["attachments"]],
            }
            for message in view["messages"]
        ],
        "incidents": [
            {
                "seq": item["seq"],
                "created_at": format_date(item["created_at"], lang),
                "type_labels": [tax.label("incident_types", code, lang) for code in item["type_codes"]],
                "channel_label": tax.label("channels", item["channel"], lang),
                "description": item["description"],
                "occurred_on": format_date(item["occurred_on"], lang) if item["occurred_on"] else None,
                "attachments": item["attachments"],
                "files": [_file_link(file, lang) for file in item["files"]],
                "complaint": deadline_view(
                    item["complaint"],
                    today,
                    lang,
                    filed_on=item["proceedings"].application_on if item["proceedings"] else None,
                ),
                "proceedings": proceedings_view(
                    item["proceedings"].model_dump(mode="json") if item["proceedings"] else {}, t, lang
                ),
                # For the small "perpetrator known since" form: the stored day as the date input wants it.
                "perpetrator_known_on": item["perpetrator_known_on"] or "",
            }
            for item in view["incidents"]
        ],
        "identifiers": identifier_items(view["identifiers"], t),
        "identifiers_waiting": view["identifiers_waiting"],
    }
    # The platform notice's explanation, prefilled from the incident types (the reporter completes it).
    codes = [code for item in view["incidents"] for code in item["type_codes"]]
    prefill = {"letter_explanation": letters.explanation(dossiers.coded_types(tax, codes, "de"))}
    # Each view of the page carries a new token for the incident form, unless an error brought one back.
    token = incident_token or runtime.submissions.issue(incident_purpose(reporter.case_id), utcnow())
    return _pages(request).render(
        request,
        "case_reporter.html",
        status=status,
        case=case,
        values={**prefill, **(values or {})},
        errors=errors or [],
        field_errors=field_errors or {},
        notice=notice,
        message_notice=message_notice,
        notify_notice=notify_notice,
        matching_notice=matching_notice,
        submission_token=token,
        **_form_context(runtime),
    )


@router.get("/fall")
def reporter_home(request: Request) -> Response:
    runtime = runtime_of(request)
    reporter = _open_from_cookie(request, runtime)
    if reporter is None:
        return _pages(request).render(request, "reporter_login.html", errors=[], notice=None)
    t = Translator(request_lang(request))
    code = request.query_params.get("notice", "")
    # Shown where the redirect lands (#messages, #notify), not at the top of the page.
    message_notice = t(CASE_NOTICES[code]) if code in CASE_NOTICES else None
    notify_notice = t(NOTIFY_NOTICES[code]) if code in NOTIFY_NOTICES else None
    notice = t(INCIDENT_NOTICES[code]) if code in INCIDENT_NOTICES else None
    matching_notice = t(MATCHING_NOTICES[code]) if code in MATCHING_NOTICES else None
    return _case_page(
        request,
        runtime,
        reporter,
        notice=notice,
        message_notice=message_notice,
        notify_notice=notify_notice,
        matching_notice=matching_notice,
    )


@router.post("/fall/anmelden")
async def reporter_login(request: Request) -> Response:
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    form = await read_form(request, max_fields=10)
    token = form.get("csrf_token")
    receipt = form.get("receipt")
    if not pages.csrf_ok(request, token if isinstance(token, str) else None):
        message = f"{t('error.csrf.title')}: {t('error.csrf.message')}"
        return pages.render(
            request,
            "reporter_login.html",
            status=403,
            errors=[{"field": "receipt", "message": message}],
            notice=None,
        )
    enforce(runtime, request, receipt_limit(runtime.settings))

    def login() -> str:
        with runtime.sessions() as db:
            opened = runtime.intake.open_case(db, receipt if isinstance(receipt, str) else "")
            cookie = sessions.create(db, REPORTER_SESSION, opened.case.id, opened.data_key)
            db.commit()
            # Identifiers that wait (budget, rotated matching key) are registered now, after the session
            # is committed: this never fails the sign-in.
            runtime.intake.resume_matching_at_sign_in(db, opened)
            return cookie

    try:
        cookie = await run_in_threadpool(login)
    except NotFound:
        return pages.render(
            request,
            "reporter_login.html",
            status=404,
            errors=[{"field": "receipt", "message": t("login.invalid")}],
            notice=None,
        )
    response = RedirectResponse("/fall", status_code=303)
    pages.set_cookie(response, SESSION_COOKIE, cookie, max_age=None)
    pages.rotate_csrf(request, response)
    return response


@router.post("/fall/vorfall")
@body(BodyKind.upload)
async def reporter_add_incident(request: Request) -> Response:
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    reporter = await run_in_threadpool(_open_from_cookie, request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    enforce(runtime, request, receipt_limit(runtime.settings))
    parser = await _parse_multipart(request, runtime, reporter.data_key, reporter.case_id)
    purpose = incident_purpose(reporter.case_id)
    checked = _checked_submission(runtime, parser.fields, purpose)

    def again(errors: list[dict[str, Any]], status: int) -> Response:
        parser.discard()
        summary, by_field = _field_errors(errors, t)
        return _case_page(
            request,
            runtime,
            reporter,
            status=status,
            values=_form_values(parser.fields),
            errors=summary,
            field_errors=by_field,
            incident_token=_token_again(runtime, parser.fields, checked, purpose),
        )

    if not pages.csrf_ok(request, parser.fields.get("csrf_token", [None])[-1]):
        return await run_in_threadpool(again, [{"loc": ["csrf_token"], "type": "csrf", "msg": ""}], 403)
    model, errors = _validate(IncidentFields, _form_to_data(parser.fields, IncidentFields))
    errors = _submission_error(checked) + errors + parser.errors
    if model is None or errors:
        return await run_in_threadpool(again, errors, 422)
    assert isinstance(model, IncidentFields)

    def add() -> None:
        with runtime.sessions() as db:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
            runtime.intake.add_incident(db, opened, model, parser.uploads, claim=checked.claim)

    try:
        await run_in_threadpool(add)
    except ValidationFailed as exc:
        return await run_in_threadpool(again, exc.detail, 422)
    except AlreadySubmitted:
        parser.discard()
        return RedirectResponse("/fall?notice=incident_already_added", status_code=303)
    except NotFound:
        # The case was purged while the session lived: /fall shows the sign-in page.
        parser.discard()
        return RedirectResponse("/fall", status_code=303)
    except BaseException:
        parser.discard()
        raise
    # The page with a new token for the next incident; reloading this answer sends the used token again,
    # which adds nothing and leads to /fall with a notice that says so.
    return await run_in_threadpool(
        lambda: _case_page(request, runtime, reporter, notice=t("notice.incident_added"))
    )


@router.post("/fall/tatperson")
async def reporter_perpetrator_known(request: Request) -> Response:
    """Since when the reporter knows who the perpetrator of an incident is: the Strafantrag period (§ 77b
    Abs. 2 StGB) starts then. An empty date takes a given one back."""
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    reporter = await run_in_threadpool(_open_from_cookie, request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    form = await read_form(request, max_fields=10)
    token, seq_text, sent = form.get("csrf_token"), form.get("seq"), form.get("perpetrator_known_on")
    seq = seq_text if isinstance(seq_text, str) else ""
    day = sent.strip() if isinstance(sent, str) else ""
    field = f"perpetrator_known_on-{seq}" if seq.isdigit() else "perpetrator_known_on"

    def again(kind: str, status: int) -> Response:
        message = f"{t('field.perpetrator_known_on')}: {t(_REFUSAL_TEXT.get(kind, 'validation.invalid'))}"
        return _field_refused(request, runtime, reporter, field, message, status, {field: day})

    if not pages.csrf_ok(request, token if isinstance(token, str) else None):
        return await run_in_threadpool(again, "csrf", 403)
    model, errors = _validate(PerpetratorKnown, {"seq": seq, "perpetrator_known_on": day or None})
    if model is None or errors:
        kind = "date_future" if any("future" in str(error["msg"]) for error in errors) else "invalid"
        return await run_in_threadpool(again, kind, 422)
    assert isinstance(model, PerpetratorKnown)

    def save() -> None:
        with runtime.sessions() as db:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
            runtime.intake.set_perpetrator_known(db, opened, model.seq, model.perpetrator_known_on)

    try:
        await run_in_threadpool(save)
    except NotFound:
        return RedirectResponse("/fall", status_code=303)
    return RedirectResponse(f"/fall?notice=known_saved#incident-{model.seq}", status_code=303)


@router.post("/fall/merkmale")
async def reporter_identifiers(request: Request) -> Response:
    """Perpetrator identifiers for the repeat-perpetrator matching (docs/matching.md): ``action=save`` adds
    the typed ones (with the consent ticked, or the form comes back with an error), ``action=withdraw``
    withdraws the consent: every token of the case is deleted at once, and the identifiers as typed too."""
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    reporter = await run_in_threadpool(_open_from_cookie, request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    form = await read_form(request, max_fields=20)
    fields = {name: [value for value in form.getlist(name) if isinstance(value, str)] for name in form}
    token, action = form.get("csrf_token"), form.get("action")

    def again(errors: list[dict[str, Any]], status: int) -> Response:
        summary, by_field = _field_errors(errors, t)
        return _case_page(
            request,
            runtime,
            reporter,
            status=status,
            values=_form_values(fields),
            errors=summary,
            field_errors=by_field,
        )

    if not pages.csrf_ok(request, token if isinstance(token, str) else None):
        return await run_in_threadpool(again, [{"loc": ["match_name"], "type": "csrf", "msg": ""}], 403)
    # Before the branch: withdrawing and sending again would otherwise tell every holder of a match anew,
    # as often as a hostile reporter likes.
    enforce(runtime, request, receipt_limit(runtime.settings))
    if action == "withdraw":

        def withdraw() -> None:
            with runtime.sessions() as db:
                opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
                runtime.intake.withdraw_matching(db, opened)

        try:
            await run_in_threadpool(withdraw)
        except NotFound:
            return RedirectResponse("/fall", status_code=303)
        return RedirectResponse("/fall?notice=identifiers_withdrawn#matching", status_code=303)
    model, errors = _validate(IdentifiersAdd, _form_to_data(fields, IdentifiersAdd))
    errors = _identifier_errors(errors, fields)
    if isinstance(model, IdentifiersAdd) and not model.perpetrator_identifiers:
        errors = [{"loc": ["match_name"], "type": "missing", "msg": ""}]
    if model is None or errors:
        return await run_in_threadpool(again, errors, 422)
    assert isinstance(model, IdentifiersAdd)

    def save() -> bool:
        with runtime.sessions() as db:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
            return runtime.intake.add_identifiers(db, opened, model)

    try:
        done = await run_in_threadpool(save)
    except ValidationFailed as exc:
        # "Too many identifiers for one case": shown at the first identifier field of the form.
        return await run_in_threadpool(again, _identifier_errors(list(exc.detail), fields), 422)
    except NotFound:
        return RedirectResponse("/fall", status_code=303)
    code = "identifiers_saved" if done else "identifiers_waiting"
    return RedirectResponse(f"/fall?notice={code}#matching", status_code=303)


@router.post("/fall/nachricht")
@body(BodyKind.upload)
async def reporter_message(request: Request) -> Response:
    """The reporter answers the counselling organisation; a success goes back to /fall (303), so a reload
    does not send the message twice; an error shows the page again with the text kept."""
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    reporter = await run_in_threadpool(_open_from_cookie, request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    enforce(runtime, request, receipt_limit(runtime.settings))
    parser = await _parse_multipart(request, runtime, reporter.data_key, reporter.case_id)
    token, text = parser.fields.get("csrf_token", [None])[-1], parser.fields.get("message", [""])[-1]

    def again(errors: list[dict[str, Any]], status: int) -> Response:
        parser.discard()
        summary, by_field = _field_errors(errors, t)
        values = {"message": text}
        return _case_page(
            request, runtime, reporter, status=status, values=values, errors=summary, field_errors=by_field
        )

    if not pages.csrf_ok(request, token):
        # Named after the message field: the summary's link then leads to the text, which is still there.
        return await run_in_threadpool(again, [{"loc": ["message"], "type": "csrf", "msg": ""}], 403)
    model, errors = _validate(MessageCreate, {"body": text})
    for error in errors:
        error["loc"] = ["message"]
    # The message form's file field has its own name: the page also has the incident form's.
    errors += [{**error, "field": "message_files"} for error in parser.errors]
    if model is None or errors:
        return await run_in_threadpool(again, errors, 422)
    assert isinstance(model, MessageCreate)

    def reply() -> None:
        with runtime.sessions() as db:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
            reporter_reply(db, opened.case, opened.data_key, model.body, parser.uploads)

    try:
        await run_in_threadpool(reply)
    except NotFound:
        # The case was purged while the session lived: /fall shows the sign-in page.
        parser.discard()
        return RedirectResponse("/fall", status_code=303)
    except BaseException:
        parser.discard()
        raise
    return RedirectResponse("/fall?notice=message_sent#messages", status_code=303)


@router.get("/fall/anhang/{attachment_id}")
def reporter_download(attachment_id: str, request: Request) -> Response:
    """A file of the reporter's own case (one a counsellor sent, or their own: an incident's evidence or a
    message's file), decrypted as it streams and audited. A GET with the reporter's session cookie, which
    is SameSite=Strict, as the counsellors' downloads are: a link with ``download`` works without
    JavaScript."""
    runtime = runtime_of(request)
    reporter = _open_from_cookie(request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    with runtime.sessions() as db:
        opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
        found = runtime.intake.open_attachment(db, opened, attachment_id, runtime.blobs)
    return download(found.filename, found.content_type, found.size_bytes, found.chunks())


async def _reporter_download_request(request: Request, runtime: Runtime) -> ReporterSession | None:
    """The reporter of a POST that asks for a generated download (dossier, evidence ZIP), or None when
    nobody is signed in. The form token is checked (403) and the receipt limit counted: generating is
    audited, so neither a prefetch nor another site may cause it, and each one costs decryption."""
    reporter = await run_in_threadpool(_open_from_cookie, request, runtime)
    if reporter is None:
        return None
    form = await read_form(request, max_fields=10)
    token = form.get("csrf_token")
    if not _pages(request).csrf_ok(request, token if isinstance(token, str) else None):
        raise CsrfFailed()
    enforce(runtime, request, receipt_limit(runtime.settings))
    return reporter


@router.post("/fall/dossier")
async def reporter_dossier(request: Request) -> Response:
    """The case dossier as PDF (service/dossier): generated from the decrypted case in this session, in
    memory only, streamed, audited without content. A POST with the form token: generating is audited, so
    neither a prefetch nor another site may cause it."""
    runtime = runtime_of(request)
    reporter = await _reporter_download_request(request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    lang = request_lang(request)

    def generate() -> bytes:
        with runtime.sessions() as db:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
            dossier = dossiers.build(db, opened.case, opened.data_key, runtime.blobs, runtime.taxonomy, lang)
            document = render_dossier(dossier, lang)
            dossiers.record_generated(
                runtime.audit, db, dossier, opened.case.id, actor_kind="reporter", actor_id=None
            )
            db.commit()
            return document

    try:
        document = await run_in_threadpool(generate)
    except NotFound:
        return RedirectResponse("/fall", status_code=303)
    return dossier_download(document)


@router.post("/fall/beweise")
async def reporter_evidence_zip(request: Request) -> Response:
    """The evidence files the dossier lists, as a ZIP with their SHA256SUMS (service/dossier/archive.py):
    decrypted while it streams, nothing stored, audited without content. A POST with the form token, as
    the dossier: it is audited, so neither a prefetch nor another site may cause it."""
    runtime = runtime_of(request)
    reporter = await _reporter_download_request(request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    lang = request_lang(request)

    def prepare() -> list[archive.Member]:
        with runtime.sessions() as db:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
            dossier = dossiers.build(db, opened.case, opened.data_key, runtime.blobs, runtime.taxonomy, lang)
            items = archive.members(db, dossier, opened.case.id)
            archive.record_downloaded(
                runtime.audit, db, len(items), opened.case.id, actor_kind="reporter", actor_id=None
            )
            db.commit()
            return items

    try:
        items = await run_in_threadpool(prepare)
    except NotFound:
        return RedirectResponse("/fall", status_code=303)
    return archive.download(items, reporter.data_key, runtime.blobs)


@router.post("/fall/brief")
async def reporter_letter(request: Request) -> Response:
    """A letter (service/dossier/letters.py) filled from the decrypted case, as PDF or plain text.

    What was typed for it (names, addresses, household, URLs, an Aktenzeichen) comes with this request and
    goes into this answer only: never stored, never logged, never in the audit (which records the kind of
    letter, nothing else)."""
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    reporter = await run_in_threadpool(_open_from_cookie, request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    form = await read_form(request, max_fields=letter_request.MAX_FIELDS, free_text=letter_request.FREE_TEXT)
    typed = letter_request.typed_values(form)
    token = form.get("csrf_token")

    def again(errors: list[dict[str, Any]], status: int) -> Response:
        summary, by_field = _field_errors(errors, t)
        return _case_page(
            request, runtime, reporter, status=status, values=typed, errors=summary, field_errors=by_field
        )

    if not pages.csrf_ok(request, token if isinstance(token, str) else None):
        field = letter_request.KIND_FIELD
        return await run_in_threadpool(again, [{"loc": [field], "type": "csrf", "msg": ""}], 403)
    wanted, errors = letter_request.parse(form)
    if wanted is None:
        return await run_in_threadpool(again, errors, 422)
    enforce(runtime, request, receipt_limit(runtime.settings))
    today = _today()

    def generate() -> bytes:
        with runtime.sessions() as db:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
            dossier = dossiers.build(db, opened.case, opened.data_key, runtime.blobs, runtime.taxonomy, "de")
            document = letter_request.rendered(
                wanted, letters.write(wanted.kind, dossier, wanted.typed, today)
            )
            letter_request.record_generated(
                runtime.audit, db, wanted.kind, opened.case.id, actor_kind="reporter", actor_id=None
            )
            db.commit()
            return document

    try:
        document = await run_in_threadpool(generate)
    except NotFound:
        return RedirectResponse("/fall", status_code=303)
    return letter_request.letter_download(wanted, document, today)


@router.post("/fall/benachrichtigung")
async def reporter_notify(request: Request) -> Response:
    """Save or remove the address told of new messages; 303 back to the section, or the page with errors."""
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    reporter = await run_in_threadpool(_open_from_cookie, request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    form = await read_form(request, max_fields=10)
    token, action, sent = form.get("csrf_token"), form.get("action"), form.get("notify_email")
    address = sent.strip() if isinstance(sent, str) else ""

    def again(errors: list[dict[str, Any]], status: int) -> Response:
        summary, by_field = _field_errors(errors, t)
        values = {"notify_email": address}
        return _case_page(
            request, runtime, reporter, status=status, values=values, errors=summary, field_errors=by_field
        )

    if not pages.csrf_ok(request, token if isinstance(token, str) else None):
        return await run_in_threadpool(again, [{"loc": ["notify_email"], "type": "csrf", "msg": ""}], 403)
    remove = action == "remove"
    model, errors = _validate(NotifyAddress, {"notify_email": None if remove else address})
    if not remove and not address:
        errors = [{"loc": ["notify_email"], "type": "missing", "msg": ""}]
    if model is None or errors:
        return await run_in_threadpool(again, errors, 422)
    assert isinstance(model, NotifyAddress)

    def save() -> None:
        with runtime.sessions() as db:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
            email = str(model.notify_email) if model.notify_email else None
            runtime.intake.set_notify_address(db, opened, email)

    try:
        await run_in_threadpool(save)
    except NotFound:
        return RedirectResponse("/fall", status_code=303)
    code = "notify_removed" if remove else "notify_saved"
    return RedirectResponse(f"/fall?notice={code}#notify", status_code=303)


@router.post("/fall/abmelden")
async def reporter_logout(request: Request) -> Response:
    """Sign-out is a state change like any other: its form carries the token, and without it nothing ends
    (another site must not be able to end a reporter's session, as it cannot end a counsellor's)."""
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    form = await request.form(max_files=0, max_fields=10)
    token = form.get("csrf_token")
    if not pages.csrf_ok(request, token if isinstance(token, str) else None):
        raise CsrfFailed()

    def logout() -> None:
        with runtime.sessions() as db:
            sessions.destroy(db, read_cookie(request, SESSION_COOKIE))

    await run_in_threadpool(logout)
    pages.signed_out(request)
    response = pages.render(request, "reporter_login.html", errors=[], notice=t("notice.signed_out"))
    pages.delete_cookie(response, SESSION_COOKIE)
    return response


@router.post("/fall/verfahren")
async def reporter_proceedings(request: Request) -> Response:
    """The reporter records the proceedings of an incident (as counsellors can on the case page): sealed
    with the case key; a Strafantrag recorded ends the deadline's reminders."""
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    reporter = await run_in_threadpool(_open_from_cookie, request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    form = await read_form(request, max_fields=20, free_text=frozenset({"file_number"}))
    token, seq_text = form.get("csrf_token"), form.get("seq")
    seq = (
        int(seq_text)
        if isinstance(seq_text, str) and seq_text.isdigit() and 0 < int(seq_text) <= 10_000
        else 0
    )
    field = f"proceedings-{seq}"
    sent = {name: str(form.get(name) or "") for name in PROCEEDINGS_FIELDS}

    def again(kind: str, status: int) -> Response:
        message = f"{t('proceedings.heading')}: {t(_REFUSAL_TEXT.get(kind, 'validation.invalid'))}"
        return _field_refused(request, runtime, reporter, field, message, status, {field: sent})

    if not pages.csrf_ok(request, token if isinstance(token, str) else None):
        return await run_in_threadpool(again, "csrf", 403)
    try:
        record = proceedings_from_form(form)
    except ValidationFailed as exc:
        future = any("future" in str(error.get("msg", "")) for error in exc.detail)
        return await run_in_threadpool(again, "date_future" if future else "invalid", 422)
    if not seq:
        return await run_in_threadpool(again, "invalid", 422)

    def save() -> None:
        with runtime.sessions() as db:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
            runtime.intake.record_proceedings(db, opened, seq, record)

    try:
        await run_in_threadpool(save)
    except NotFound:
        return RedirectResponse("/fall", status_code=303)
    return RedirectResponse(f"/fall?notice=proceedings_saved#incident-{seq}", status_code=303)


@router.post("/fall/zusammenfuehren")
async def reporter_merge(request: Request) -> Response:
    """The reporter answers a proposed merge from the newer case: "decline" drops the proposal; "confirm"
    with this case's receipt typed again merges it into the earlier case, after which the same receipt
    opens the merged case (the session moves to it) and the earlier receipt opens nothing. Nothing proposed
    (any more): back to /fall."""
    runtime = runtime_of(request)
    pages = _pages(request)
    t = Translator(request_lang(request))
    reporter = await run_in_threadpool(_open_from_cookie, request, runtime)
    if reporter is None:
        return RedirectResponse("/fall", status_code=303)
    form = await read_form(request, max_fields=10)
    token, action, receipt = form.get("csrf_token"), form.get("action"), form.get("receipt")

    def again(key: str, status: int) -> Response:
        message = f"{t('field.merge_receipt')}: {t(key)}"
        return _field_refused(request, runtime, reporter, "merge_receipt", message, status)

    if not pages.csrf_ok(request, token if isinstance(token, str) else None):
        return await run_in_threadpool(again, "error.csrf.message", 403)
    enforce(runtime, request, receipt_limit(runtime.settings))
    if action == "decline":

        def decline() -> None:
            with runtime.sessions() as db:
                runtime.merges.decline(db, reporter.case_id)

        await run_in_threadpool(decline)
        return RedirectResponse("/fall?notice=merge_declined", status_code=303)

    def confirm() -> str:
        with runtime.sessions() as db:
            merged = runtime.merges.confirm(
                db, reporter.case_id, reporter.data_key, receipt if isinstance(receipt, str) else ""
            )
            # The session moves to the merged case: the reporter stays signed in with the same receipt. Every
            # other reporter session of either case ends: one opened with the lost receipt must not go on
            # reading the merged case (it holds the older case's key).
            sessions.destroy(db, read_cookie(request, SESSION_COOKIE))
            sessions.destroy_all_of(db, REPORTER_SESSION, merged.case_id)
            sessions.destroy_all_of(db, REPORTER_SESSION, reporter.case_id)
            cookie = sessions.create(db, REPORTER_SESSION, merged.case_id, merged.data_key)
            db.commit()
            return cookie

    try:
        cookie = await run_in_threadpool(confirm)
    except NotFound:
        return RedirectResponse("/fall", status_code=303)
    except ValidationFailed as exc:
        kind = str(exc.detail[0].get("type", "")) if exc.detail else ""
        return await run_in_threadpool(again, f"merge.error.{kind}" if kind else "validation.invalid", 422)
    response = RedirectResponse("/fall?notice=merged", status_code=303)
    pages.set_cookie(response, SESSION_COOKIE, cookie, max_age=None)
    # Form tokens are bound to the session, as after a sign-in.
    pages.rotate_csrf(request, response)
    return response
