"""The reporter's own case on /fall, for every page route that shows or changes it: the session's case
opened with its key (``signed_in``), a change in one transaction with a missing case sent back to /fall
(``on_my_case``), the form's answer (``answer_form``) and the page itself (``render_case``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import forms
from service.cases.views import FormValues
from service.db import utcnow
from service.deps import in_transaction, runtime_of
from service.errors import NotFound
from service.forms import FormErrors, FormRefused, Refusal
from service.i18n import Translator
from service.reports.opened import OpenedCase
from service.reports.pages import (
    ReporterSession,
    form_choices,
    open_from_cookie,
    pages_of,
    today,
)
from service.reports.presenter import Notices, case_page, letter_prefill
from service.reports.submissions import incident_purpose, message_purpose
from service.runtime import Runtime
from service.validation import FormCode
from service.web import request_lang

T = TypeVar("T")


def back_to_fall() -> RedirectResponse:
    """Where a reporter goes without a session, or whose case is gone: /fall shows the sign-in page."""
    return RedirectResponse("/fall", status_code=303)


async def signed_in(request: Request) -> ReporterSession | None:
    """The reporter of this request, from the session cookie (resumed in the thread pool: it writes the
    time last seen); None without one."""
    return await run_in_threadpool(open_from_cookie, request, runtime_of(request))


async def on_my_case(
    request: Request,
    reporter: ReporterSession,
    change: Callable[[Session, OpenedCase], T],
    *,
    undo: Callable[[], None] | None = None,
) -> T | RedirectResponse:
    """The reporter's one way to change their own case: the case opened with the session's key and
    ``change`` run with it, in the request's transaction (``service.deps.in_transaction``: committed when
    ``change`` returns, before the answer; rolled back when any step raises, so nothing is half-written).

    Returns what ``change`` returned, or the way back to /fall on NotFound: the case was purged while the
    session lived, or what the form names (an incident, a proposal) is not there (any more). ``undo`` runs
    when anything fails (the uploaded files of the form go, as nothing refers to them)."""
    runtime = runtime_of(request)

    def work(db: Session) -> T:
        return change(db, runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key))

    try:
        return await in_transaction(request, work)
    except NotFound:
        if undo is not None:
            undo()
        return back_to_fall()
    except BaseException:
        if undo is not None:
            undo()
        raise


def render_case(
    request: Request,
    runtime: Runtime,
    reporter: ReporterSession,
    *,
    status: int = 200,
    values: FormValues | None = None,
    errors: FormErrors | None = None,
    shown: Notices | None = None,
    incident_token: str | None = None,
) -> Response:
    """The case page, with a form's refusal (``errors``, the typed ``values``) or a redirect's notices."""
    lang = request_lang(request)
    t = Translator(lang)
    with runtime.sessions() as db:
        try:
            opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
        except NotFound:
            # The case was purged while the session lived: back to the sign-in page.
            return pages_of(request).render(request, "reporter_login.html", errors=[], notice=None)
        view = runtime.intake.reporter_view(db, opened)
        pending = runtime.merges.pending(db, opened.case.id)
    refused = errors or FormErrors()
    shown = shown or Notices()
    # Each view of the page carries a new token for the incident form, unless an error brought one back.
    token = incident_token or runtime.submissions.issue(incident_purpose(reporter.case_id), utcnow())
    return pages_of(request).render(
        request,
        "case_reporter.html",
        status=status,
        case=case_page(view, pending, runtime.taxonomy, t, lang, today()),
        values={**letter_prefill(view, runtime.taxonomy), **(values or {})},
        errors=list(refused.summary),
        field_errors=dict(refused.by_field),
        notice=shown.notice,
        message_notice=shown.message_notice,
        notify_notice=shown.notify_notice,
        matching_notice=shown.matching_notice,
        submission_token=token,
        message_token=runtime.submissions.issue(message_purpose(reporter.case_id), utcnow()),
        **form_choices(runtime),
    )


async def answer_form(
    request: Request,
    reporter: ReporterSession,
    *,
    token: object,
    field: str,
    action: Callable[[], Awaitable[str | Response]],
    values: Callable[[], FormValues],
    label: str | None = None,
    default_field: str = "",
    before: Callable[[], None] | None = None,
) -> Response:
    """A form of /fall answered through ``forms.submit``: ``action`` (which changes the case through
    ``on_my_case``) says where to go; a refusal, or a bad form token (at ``field``), shows the case page
    again with the message and the ``values`` as typed (``before`` first: the form's uploads go). ``label``
    is the translation key that names every field of a one-field form in the summary."""
    runtime = runtime_of(request)
    t = Translator(request_lang(request))

    def render(errors: FormErrors, status: int) -> Response:
        if before is not None:
            before()
        return render_case(request, runtime, reporter, status=status, values=values(), errors=errors)

    return await forms.submit(
        request,
        pages_of(request),
        t,
        token=token,
        csrf_field=field,
        action=action,
        render=render,
        label=None if label is None else lambda _: t(label),
        default_field=default_field,
    )


def one_field(field: str, refused: list[Refusal]) -> FormRefused:
    """A one-field form of /fall refused: a date in the future says so, anything else is "not valid"."""
    code: FormCode = "date_future" if any(item.code == "date_future" for item in refused) else "invalid"
    return FormRefused([Refusal(field, code)])
