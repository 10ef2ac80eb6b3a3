"""/fall: the reporter's case file, opened with the receipt, and its forms (a further incident, a message,
the notification address, "perpetrator known since", the proceedings, identifiers, a proposed merge).

Every form answers through ``service.forms.submit``: a success redirects back to its section (303) with a
notice named by code; a refusal shows the page again with the message at the field and the values kept.
Every change goes through ``on_my_case``: the case opened with the session's key and changed in one
transaction (``service.deps.in_transaction``), nothing kept when any step fails.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import forms
from service.auth import sessions
from service.auth.sessions import REPORTER_SESSION
from service.cases.conversation import reporter_reply
from service.cases.proceedings import PROCEEDINGS_FIELDS, proceedings_from_form
from service.cases.schemas import MessageCreate
from service.db import utcnow
from service.deps import enforce_async, runtime_of
from service.errors import AlreadySubmitted, ValidationFailed
from service.evidence.uploads import form_content
from service.forms import FormErrors, FormRefused, Refusal
from service.i18n import Translator
from service.matching.answer_time import answer_at_a_fixed_time
from service.reports.form_input import form_to_data, form_values, identifier_refusals
from service.reports.my_case import answer_form, back_to_fall, on_my_case, one_field, render_case, signed_in
from service.reports.opened import OpenedCase
from service.reports.pages import (
    DEFAULT_FIELD,
    SESSION_COOKIE,
    checked_submission,
    open_from_cookie,
    pages_of,
    parse_multipart,
    submission_refusals,
    token_again,
    used_before,
)
from service.reports.presenter import Notices, notices
from service.reports.schemas import IdentifiersAdd, IncidentFields, NotifyAddress, PerpetratorKnown
from service.reports.submissions import TokenState, incident_purpose, message_purpose
from service.runtime import receipt_limit
from service.web import BodyKind, StrictRoute, body, read_cookie, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)


@router.get("/fall")
def reporter_home(request: Request) -> Response:
    runtime = runtime_of(request)
    reporter = open_from_cookie(request, runtime)
    t = Translator(request_lang(request))
    if reporter is None:
        # From the receipt page's "Code notiert" button: the code is not shown again; sign in with it.
        noted = request.query_params.get("notice") == "code_noted"
        return pages_of(request).render(
            request, "reporter_login.html", errors=[], notice=t("notice.code_noted") if noted else None
        )
    # Shown where the redirect lands (#messages, #notify, #matching), or at the top of the page.
    shown = notices(request.query_params.get("notice", ""), t)
    return render_case(request, runtime, reporter, shown=shown)


@router.post("/fall/vorfall")
@body(BodyKind.upload)
async def reporter_add_incident(request: Request) -> Response:
    runtime = runtime_of(request)
    t = Translator(request_lang(request))
    reporter = await signed_in(request)
    if reporter is None:
        return back_to_fall()
    await enforce_async(runtime, request, receipt_limit(runtime.settings))
    parser = await parse_multipart(request, runtime, reporter.data_key, reporter.case_id)
    purpose = incident_purpose(reporter.case_id)
    checked = checked_submission(runtime, parser.fields, purpose)

    def render(errors: FormErrors, status: int) -> Response:
        parser.discard()
        return render_case(
            request,
            runtime,
            reporter,
            status=status,
            values=form_values(parser.fields),
            errors=errors,
            incident_token=token_again(runtime, parser.fields, checked, purpose),
        )

    async def add() -> str | Response:
        if checked.state is TokenState.expired and await run_in_threadpool(used_before, runtime, checked):
            parser.discard()
            return "/fall?notice=incident_already_added"
        model, refused = forms.validate(IncidentFields, form_to_data(parser.fields, IncidentFields))
        refused = submission_refusals(checked) + refused + forms.refusals(parser.errors)
        if model is None or refused:
            raise FormRefused(refused)
        try:
            # Committed by the unit of work (on_my_case); the holders are told after the commit.
            added = await on_my_case(
                request,
                reporter,
                lambda db, opened: runtime.intake.add_incident(
                    db, opened, model, parser.uploads, claim=checked.claim
                ),
                undo=parser.discard,
            )
        except AlreadySubmitted:
            return "/fall?notice=incident_already_added"
        # A ValidationFailed brings the form back (forms.submit); the files are gone already.
        if isinstance(added, RedirectResponse):
            return added
        # The page with a new token for the next incident; reloading this answer sends the used token
        # again, which adds nothing and leads to /fall with a notice that says so.
        return await run_in_threadpool(
            render_case, request, runtime, reporter, shown=Notices(notice=t("notice.incident_added"))
        )

    token = parser.fields.get("csrf_token", [None])[-1]
    return await forms.submit(
        request,
        pages_of(request),
        t,
        token=token,
        csrf_field="csrf_token",
        action=add,
        render=render,
        default_field=DEFAULT_FIELD,
    )


@router.post("/fall/tatperson")
async def reporter_perpetrator_known(request: Request) -> Response:
    """Since when the reporter knows who the perpetrator of an incident is: the Strafantrag period (§ 77b
    Abs. 2 StGB) starts then. An empty date takes a given one back."""
    runtime = runtime_of(request)
    reporter = await signed_in(request)
    if reporter is None:
        return back_to_fall()
    form = await read_form(request, max_fields=10)
    seq_text, sent = form.get("seq"), form.get("perpetrator_known_on")
    seq = seq_text if isinstance(seq_text, str) else ""
    day = sent.strip() if isinstance(sent, str) else ""
    field = f"perpetrator_known_on-{seq}" if seq.isdigit() else "perpetrator_known_on"

    async def save() -> str | Response:
        model, refused = forms.validate(PerpetratorKnown, {"seq": seq, "perpetrator_known_on": day or None})
        if model is None or refused:
            raise one_field(field, refused)

        def change(db: Session, opened: OpenedCase) -> str:
            runtime.intake.set_perpetrator_known(db, opened, model.seq, model.perpetrator_known_on)
            return f"/fall?notice=known_saved#incident-{model.seq}"

        return await on_my_case(request, reporter, change)

    return await answer_form(
        request,
        reporter,
        token=form.get("csrf_token"),
        field=field,
        action=save,
        values=lambda: {field: day},
        label="field.perpetrator_known_on",
    )


@router.post("/fall/merkmale")
async def reporter_identifiers(request: Request) -> Response:
    """Perpetrator identifiers for the repeat-perpetrator matching (docs/matching.md): ``action=save`` adds
    the typed ones (with the consent ticked, or the form comes back with an error), ``action=withdraw``
    withdraws the consent: every token of the case is deleted at once, and the identifiers as typed too."""
    runtime = runtime_of(request)
    reporter = await signed_in(request)
    if reporter is None:
        return back_to_fall()
    form = await read_form(request, max_fields=20)
    fields = {name: [value for value in form.getlist(name) if isinstance(value, str)] for name in form}

    async def save() -> str | Response:
        # Before the branch: withdrawing and sending again would otherwise tell every holder of a match
        # anew, as often as a hostile reporter likes.
        await enforce_async(runtime, request, receipt_limit(runtime.settings))
        if form.get("action") == "withdraw":

            def withdraw(db: Session, opened: OpenedCase) -> str:
                runtime.intake.withdraw_matching(db, opened)
                return "/fall?notice=identifiers_withdrawn#matching"

            return await on_my_case(request, reporter, withdraw)
        model, refused = forms.validate(IdentifiersAdd, form_to_data(fields, IdentifiersAdd))
        refused = identifier_refusals(refused, fields)
        if model is not None and not model.perpetrator_identifiers:
            refused = [Refusal("match_name", "required")]
        if model is None or refused:
            raise FormRefused(refused)

        def add(db: Session, opened: OpenedCase) -> str:
            done = runtime.intake.add_identifiers(db, opened, model)
            return f"/fall?notice={'identifiers_saved' if done else 'identifiers_waiting'}#matching"

        try:
            # At a fixed time, whatever the look-up found (answer_time.py).
            async with answer_at_a_fixed_time():
                return await on_my_case(request, reporter, add)
        except ValidationFailed as exc:
            # "Too many identifiers for one case": shown at the first identifier field of the form.
            raise FormRefused(identifier_refusals(forms.refusals(exc.detail), fields)) from None

    return await answer_form(
        request,
        reporter,
        token=form.get("csrf_token"),
        field="match_name",
        action=save,
        values=lambda: form_values(fields),
        default_field=DEFAULT_FIELD,
    )


@router.post("/fall/nachricht")
@body(BodyKind.upload)
async def reporter_message(request: Request) -> Response:
    """The reporter answers the counselling organisation; a success goes back to /fall (303), so a reload
    does not send the message twice; an error shows the page again with the text kept."""
    runtime = runtime_of(request)
    reporter = await signed_in(request)
    if reporter is None:
        return back_to_fall()
    await enforce_async(runtime, request, receipt_limit(runtime.settings))
    parser = await parse_multipart(request, runtime, reporter.data_key, reporter.case_id)
    token, text = parser.fields.get("csrf_token", [None])[-1], parser.fields.get("message", [""])[-1]
    # The view's message token, where the page sent one and it was made here (also once expired): a
    # message is never refused for it (one typed into a page left open for a day is sent), it only keeps a
    # second tap from sending the same message twice.
    sent = parser.fields.get("message_token", [None])[-1]
    content = form_content(text or "", parser.uploads)
    claim = (
        runtime.submissions.check(sent, message_purpose(reporter.case_id), utcnow(), content).claim
        if sent
        else None
    )

    async def reply() -> str | Response:
        model, refused = forms.validate(MessageCreate, {"body": text})
        # The message form's file field has its own name: the page also has the incident form's.
        refused = [Refusal("message", item.code) for item in refused] + [
            Refusal("message_files", item.code, position=item.position)
            for item in forms.refusals(parser.errors)
        ]
        if model is None or refused:
            raise FormRefused(refused)

        def send(db: Session, opened: OpenedCase) -> str:
            # First in the transaction: a second tap with this view's token sends nothing (AlreadySubmitted).
            runtime.intake.claim(db, claim)
            reporter_reply(db, opened.case, opened.data_key, model.body, parser.uploads)
            return "/fall?notice=message_sent#messages"

        try:
            return await on_my_case(request, reporter, send, undo=parser.discard)
        except AlreadySubmitted:
            return "/fall?notice=message_already_sent#messages"

    return await answer_form(
        request,
        reporter,
        token=token,
        # Named after the message field: the summary's link then leads to the text, which is still there.
        field="message",
        action=reply,
        values=lambda: {"message": text},
        before=parser.discard,
    )


@router.post("/fall/benachrichtigung")
async def reporter_notify(request: Request) -> Response:
    """Save or remove the address told of new messages; 303 back to the section, or the page with errors."""
    runtime = runtime_of(request)
    reporter = await signed_in(request)
    if reporter is None:
        return back_to_fall()
    form = await read_form(request, max_fields=10)
    sent = form.get("notify_email")
    address = sent.strip() if isinstance(sent, str) else ""
    remove = form.get("action") == "remove"

    async def save() -> str | Response:
        model, refused = forms.validate(NotifyAddress, {"notify_email": None if remove else address})
        if not remove and not address:
            refused = [Refusal("notify_email", "required")]
        if model is None or refused:
            raise FormRefused(refused)
        email = str(model.notify_email) if model.notify_email else None

        def change(db: Session, opened: OpenedCase) -> str:
            runtime.intake.set_notify_address(db, opened, email)
            return f"/fall?notice={'notify_removed' if remove else 'notify_saved'}#notify"

        return await on_my_case(request, reporter, change)

    return await answer_form(
        request,
        reporter,
        token=form.get("csrf_token"),
        field="notify_email",
        action=save,
        values=lambda: {"notify_email": address},
        default_field=DEFAULT_FIELD,
    )


@router.post("/fall/verfahren")
async def reporter_proceedings(request: Request) -> Response:
    """The reporter records the proceedings of an incident (as counsellors can on the case page): sealed
    with the case key; a Strafantrag recorded ends the deadline's reminders."""
    runtime = runtime_of(request)
    reporter = await signed_in(request)
    if reporter is None:
        return back_to_fall()
    form = await read_form(request, max_fields=20, free_text=frozenset({"file_number"}))
    seq_text = form.get("seq")
    seq = (
        int(seq_text)
        if isinstance(seq_text, str) and seq_text.isdigit() and 0 < int(seq_text) <= 10_000
        else 0
    )
    field = f"proceedings-{seq}"
    sent = {name: str(form.get(name) or "") for name in PROCEEDINGS_FIELDS}

    async def save() -> str | Response:
        try:
            record = proceedings_from_form(form)
        except ValidationFailed as exc:
            raise one_field(field, forms.refusals(exc.detail)) from None
        if not seq:
            raise FormRefused([Refusal(field, "invalid")])

        def change(db: Session, opened: OpenedCase) -> str:
            runtime.intake.record_proceedings(db, opened, seq, record)
            return f"/fall?notice=proceedings_saved#incident-{seq}"

        return await on_my_case(request, reporter, change)

    return await answer_form(
        request,
        reporter,
        token=form.get("csrf_token"),
        field=field,
        action=save,
        values=lambda: {field: sent},
        label="proceedings.heading",
    )


@router.post("/fall/zusammenfuehren")
async def reporter_merge(request: Request) -> Response:
    """The reporter answers a proposed merge from the newer case: "decline" drops the proposal; "confirm"
    with this case's receipt typed again merges it into the earlier case, after which the same receipt
    opens the merged case (the session moves to it) and the earlier receipt opens nothing. Nothing proposed
    (any more): back to /fall."""
    runtime = runtime_of(request)
    pages = pages_of(request)
    reporter = await signed_in(request)
    if reporter is None:
        return back_to_fall()
    form = await read_form(request, max_fields=10)
    action, receipt = form.get("action"), form.get("receipt")

    async def answer() -> str | Response:
        await enforce_async(runtime, request, receipt_limit(runtime.settings))
        if action == "decline":

            def decline(db: Session, opened: OpenedCase) -> str:
                runtime.merges.decline(db, opened.case.id)
                return "/fall?notice=merge_declined"

            return await on_my_case(request, reporter, decline)

        def confirm(db: Session, opened: OpenedCase) -> str:
            merged = runtime.merges.confirm(
                db, opened.case.id, opened.data_key, receipt if isinstance(receipt, str) else ""
            )
            # The session moves to the merged case: the reporter stays signed in with the same receipt.
            # Every other reporter session of either case ends: one opened with the lost receipt must
            # not go on reading the merged case (it holds the older case's key).
            sessions.end_session(db, read_cookie(request, SESSION_COOKIE))
            sessions.destroy_all_of(db, REPORTER_SESSION, merged.case_id)
            sessions.destroy_all_of(db, REPORTER_SESSION, opened.case.id)
            return sessions.create(db, REPORTER_SESSION, merged.case_id, merged.data_key)

        try:
            cookie = await on_my_case(request, reporter, confirm)
        except ValidationFailed as exc:
            code = forms.code_of(exc.detail[0]) if exc.detail else "invalid"
            raise FormRefused([Refusal("merge_receipt", code)]) from None
        if isinstance(cookie, RedirectResponse):
            return cookie
        response = RedirectResponse("/fall?notice=merged", status_code=303)
        pages.set_cookie(response, SESSION_COOKIE, cookie, max_age=None)
        # Form tokens are bound to the session, as after a sign-in.
        pages.rotate_csrf(request, response)
        return response

    return await answer_form(
        request,
        reporter,
        token=form.get("csrf_token"),
        field="merge_receipt",
        action=answer,
        values=dict,
        label="field.merge_receipt",
    )
