"""HTML pages for reporters: the start page, the report form, the sign-in with the receipt. Work without
JavaScript, German first, nothing lost on a bad field.

A refused form comes back with every value the reporter typed (only files must be chosen again: browsers
do not let a page pre-fill file inputs), an error summary at the top and the message beside each field
(service/forms.py). The case file a receipt opens is in case_pages.py, its downloads in download_pages.py,
what the pages show in presenter.py; the sign-in to it and the sign-out are here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from service import csrf, forms
from service.auth import sessions
from service.auth.sessions import REPORTER_SESSION
from service.cases.response_times import AcknowledgementShare, acknowledgement_share
from service.crypto import format_receipt
from service.db import utcnow
from service.deps import enforce_async, in_transaction, in_unit_of_work, runtime_of
from service.errors import AlreadySubmitted, CsrfFailed, NotFound, ValidationFailed
from service.evidence.uploads import EncryptingFormParser, parse_form
from service.forms import FormErrors, FormRefused, Refusal
from service.i18n import LOCAL_ZONE, Translator, duration_text
from service.matching.answer_time import answer_at_a_fixed_time
from service.observability import metrics
from service.reports.deadline_view import deadline_view
from service.reports.filing import CaseDraft, Filed
from service.reports.form_input import Fields, form_to_data, form_values, identifier_refusals
from service.reports.presenter import FormChoices, form_context, holder_lines
from service.reports.schemas import ReportCreate
from service.reports.submissions import REPORT_PURPOSE, CheckedToken, TokenState
from service.runtime import Runtime, intake_limit, receipt_limit
from service.web import BodyKind, Pages, StrictRoute, body, read_cookie, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)

SESSION_COOKIE = csrf.REPORTER_COOKIE

log = logging.getLogger("rueckhalt.intake")


@dataclass(frozen=True)
class ReporterSession:
    case_id: str
    data_key: bytes


def open_from_cookie(request: Request, runtime: Runtime) -> ReporterSession | None:
    # A transaction of its own, before the page's: the time last seen (the idle window counts from it), or
    # the expired session deleted, is kept whatever the page does next.
    cookie = read_cookie(request, SESSION_COOKIE)
    opened = in_unit_of_work(runtime, lambda db: sessions.open_session(db, REPORTER_SESSION, cookie))
    if opened is None:
        return None
    return ReporterSession(case_id=opened.subject_id, data_key=opened.secret)


# A refusal of the whole form (no field) is shown at the description, the form's main field.
DEFAULT_FIELD = "description"


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def today() -> date:
    return utcnow().astimezone(LOCAL_ZONE).date()


def form_choices(runtime: Runtime) -> FormChoices:
    return form_context(runtime.taxonomy, runtime.districts, runtime.settings)


def _token_of(fields: Fields) -> str | None:
    return fields.get("submission_token", [None])[-1]


def checked_submission(runtime: Runtime, fields: Fields, purpose: str) -> CheckedToken:
    return runtime.submissions.check(_token_of(fields), purpose, utcnow())


def token_again(runtime: Runtime, fields: Fields, checked: CheckedToken, purpose: str) -> str:
    """The token a form comes back with after an error: the same one while it is good, so that this view
    of the form still files once (Back to it and send meets the used token); a new one when it expired
    or was never ours, so that the reporter can send what they typed."""
    sent = _token_of(fields)
    if checked.state is TokenState.valid and sent:
        return sent
    return runtime.submissions.issue(purpose, utcnow())


def used_before(runtime: Runtime, checked: CheckedToken) -> bool:
    """Whether an expired view's token was used (it filed just before its end): the view is then answered
    as sent twice rather than refused as expired, which would show the form again to be filed once more."""
    claim = checked.claim
    if claim is None:
        return False
    with runtime.sessions() as db:
        return runtime.intake.claimed(db, [claim]) is not None


def submission_refusals(checked: CheckedToken) -> list[Refusal]:
    """An expired or unknown token as the form's first error (named after the send button, as CSRF)."""
    if checked.state is TokenState.valid:
        return []
    return [
        Refusal(
            "csrf_token",
            "submission_expired" if checked.state is TokenState.expired else "submission_unknown",
        )
    ]


async def parse_multipart(
    request: Request, runtime: Runtime, key: bytes, case_id: str
) -> EncryptingFormParser:
    return await parse_form(request, key=key, case_id=case_id, blobs=runtime.blobs, settings=runtime.settings)


def _ack_share(runtime: Runtime) -> AcknowledgementShare | None:
    settings = runtime.settings
    with runtime.sessions() as db:
        return acknowledgement_share(db, utcnow(), settings.ack_figure_weeks, settings.ack_figure_min_cases)


def _articles_for(runtime: Runtime, codes: list[str], lang: str) -> list[dict[str, str]]:
    """The Handlungsempfehlungen for the reported kinds of incident."""
    with runtime.sessions() as db:
        return runtime.knowledge.links_for(db, codes, lang, limit=5)


@router.get("/")
def index(request: Request) -> Response:
    return pages_of(request).render(request, "index.html")


@router.get("/melden")
def report_form(request: Request) -> Response:
    runtime = runtime_of(request)
    return pages_of(request).render(
        request,
        "report_form.html",
        values={},
        errors=[],
        field_errors={},
        submission_token=runtime.submissions.issue(REPORT_PURPOSE, utcnow()),
        **form_choices(runtime),
    )


def _receipt(
    request: Request, runtime: Runtime, filed: Filed, token: str | None, sent_twice: bool = False
) -> Response:
    """The receipt page: 201 for the submission that filed, 200 when a second one is shown it again.
    ``token``: the form view's submission token, for the button that erases the kept answer at once."""
    lang = request_lang(request)
    t = Translator(lang)
    receipt = format_receipt(filed.receipt)
    return pages_of(request).render(
        request,
        "receipt.html",
        status=200 if sent_twice else 201,
        sent_twice=sent_twice,
        submission_token=token,
        receipt=receipt,
        receipt_groups=receipt.split("-"),
        routed_to=filed.routed_to,
        key_holders=holder_lines(filed.key_holders, False, t),
        ack_deadline_text=duration_text(t, filed.ack_deadline_minutes),
        ack_share=_ack_share(runtime),
        articles=_articles_for(runtime, list(filed.type_codes), lang),
        complaint=deadline_view(filed.complaint, today(), lang),
    )


@router.post("/melden")
@body(BodyKind.upload)
async def submit_report(request: Request) -> Response:
    runtime = runtime_of(request)
    pages = pages_of(request)
    t = Translator(request_lang(request))
    await enforce_async(runtime, request, intake_limit(runtime.settings))
    draft = CaseDraft.new()
    parser = await parse_multipart(request, runtime, draft.data_key, draft.case_id)
    checked = checked_submission(runtime, parser.fields, REPORT_PURPOSE)

    def render(errors: FormErrors, status: int) -> Response:
        parser.discard()
        return pages.render(
            request,
            "report_form.html",
            status=status,
            values=form_values(parser.fields),
            errors=list(errors.summary),
            field_errors=dict(errors.by_field),
            submission_token=token_again(runtime, parser.fields, checked, REPORT_PURPOSE),
            **form_choices(runtime),
        )

    def already_filed() -> Response:
        """Back and send, or a second tap: this view of the form filed its report already. Its receipt is
        shown again for a while (answer_again.py), else the ways forward without it."""
        parser.discard()
        claim = checked.claim
        first = (
            in_unit_of_work(runtime, lambda db: runtime.intake.answer_again(db, claim))
            if claim is not None
            else None
        )
        if first is not None:
            metrics.count_as_duplicate(request.scope)
            return _receipt(request, runtime, first, _token_of(parser.fields), sent_twice=True)
        return pages.render(request, "report_already_received.html", status=409)

    def file() -> Response:
        if checked.state is TokenState.expired and used_before(runtime, checked):
            return already_filed()
        model, refused = forms.validate(ReportCreate, form_to_data(parser.fields, ReportCreate))
        refused = (
            submission_refusals(checked)
            + identifier_refusals(refused, parser.fields)
            + forms.refusals(parser.errors)
        )
        if model is None or refused:
            raise FormRefused(refused)
        try:
            filed = in_unit_of_work(
                runtime,
                lambda db: runtime.intake.file_report(db, model, draft, parser.uploads, claim=checked.claim),
            )
        except AlreadySubmitted:
            return already_filed()
        except ValidationFailed:
            raise  # the form comes back (forms.submit), and ``render`` discards the files
        except BaseException:
            parser.discard()
            raise
        return _receipt(request, runtime, filed, _token_of(parser.fields))

    # A report with identifiers answers at a fixed time, whatever their look-up found (answer_time.py).
    async with answer_at_a_fixed_time(padded=any(parser.fields.get("consent_matching", []))):
        return await forms.submit(
            request,
            pages,
            t,
            token=parser.fields.get("csrf_token", [None])[-1],
            csrf_field="csrf_token",
            action=file,
            render=render,
            default_field=DEFAULT_FIELD,
        )


@router.post("/melden/code-notiert")
async def code_noted(request: Request) -> Response:
    """The reporter has noted the code: the receipt kept for a second submission of this form view is erased
    now (answer_again.py), and they go on to sign in with it. Needs the form view's token, as showing it
    again does (also once expired: it erases what its own view kept); a token that names nothing (forged,
    never used) erases nothing and leads on the same way."""
    runtime = runtime_of(request)
    pages = pages_of(request)
    form = await read_form(request, max_fields=10)
    csrf_token, token = form.get("csrf_token"), form.get("submission_token")
    if not pages.csrf_ok(request, csrf_token if isinstance(csrf_token, str) else None):
        raise CsrfFailed()
    claim = runtime.submissions.check(
        token if isinstance(token, str) else None, REPORT_PURPOSE, utcnow()
    ).claim
    if claim is not None:
        await in_transaction(request, lambda db: runtime.intake.forget_answer(db, claim))
    return RedirectResponse("/fall?notice=code_noted", status_code=303)


@router.post("/fall/anmelden")
async def reporter_login(request: Request) -> Response:
    runtime = runtime_of(request)
    pages = pages_of(request)
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
            errors=[forms.FieldError("receipt", message)],
            notice=None,
        )
    await enforce_async(runtime, request, receipt_limit(runtime.settings))

    def login(db: Session) -> tuple[str, ReporterSession]:
        opened = runtime.intake.open_case(db, receipt if isinstance(receipt, str) else "")
        cookie = sessions.create(db, REPORTER_SESSION, opened.case.id, opened.data_key)
        return cookie, ReporterSession(case_id=opened.case.id, data_key=opened.data_key)

    try:
        cookie, reporter = await in_transaction(request, login)
    except NotFound:
        return pages.render(
            request,
            "reporter_login.html",
            status=404,
            errors=[forms.FieldError("receipt", t("login.invalid"))],
            notice=None,
        )
    # Identifiers that wait (budget, rotated matching key) are registered now, after the sign-in is
    # committed, the one moment the case key is at hand without the reporter doing anything: in a
    # transaction of its own, which never fails the sign-in. Whatever goes wrong is rolled back and logged
    # by its kind only, and the identifiers wait for the next sign-in.
    # At a fixed time, whatever the look-up found (answer_time.py).
    async with answer_at_a_fixed_time():
        try:
            await in_transaction(
                request, lambda db: runtime.intake.resume_matching(db, reporter.case_id, reporter.data_key)
            )
        except Exception as exc:  # the reporter is signed in; the matching can wait
            log.warning("matching: waiting identifiers not registered at sign-in (%s)", type(exc).__name__)
    response = RedirectResponse("/fall", status_code=303)
    pages.set_cookie(response, SESSION_COOKIE, cookie, max_age=None)
    pages.rotate_csrf(request, response)
    return response


@router.post("/fall/abmelden")
async def reporter_logout(request: Request) -> Response:
    """Sign-out is a state change like any other: its form carries the token, and without it nothing ends
    (another site must not be able to end a reporter's session, as it cannot end a counsellor's)."""
    pages = pages_of(request)
    t = Translator(request_lang(request))
    form = await request.form(max_files=0, max_fields=10)
    token = form.get("csrf_token")
    if not pages.csrf_ok(request, token if isinstance(token, str) else None):
        raise CsrfFailed()

    await in_transaction(request, lambda db: sessions.end_session(db, read_cookie(request, SESSION_COOKIE)))
    pages.signed_out(request)
    response = pages.render(request, "reporter_login.html", errors=[], notice=t("notice.signed_out"))
    pages.delete_cookie(response, SESSION_COOKIE)
    return response
