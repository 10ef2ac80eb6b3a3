"""Pages of an organisation's leads: members and their keys, the first key pair, the recovery shares.

Everything here is the lead's own act in their own session: the organisation key is opened from the lead's
grants and wrapped to the member's public key, and the recovery shares are made and shown in this request
and stored nowhere. A subject who does not lead the organisation gets the 404 of one that does not exist.
"""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.auth.deps import StaffDep, pages_of
from service.auth.errors import AccountError
from service.auth.subject import Subject
from service.deps import in_transaction, runtime_of
from service.errors import NotFound
from service.i18n import Translator
from service.identity.grants import CustodyError
from service.identity.models import MembershipRole
from service.identity.recovery import DEFAULT_THRESHOLD, CustodianShare
from service.organisations.service import (
    lead_view,
    my_organisations,
    renew_shares_as_lead,
    set_up_keys_as_lead,
)
from service.runtime import Runtime
from service.web import StrictRoute, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)

_BASE = "/intern/organisationen"


async def _form(request: Request) -> dict[str, str]:
    form = await read_form(request, max_fields=20)
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _error_text(t: Translator, code: str) -> str:
    key = f"organisation.error.{code}"
    text = t(key)
    return text if text != key else t("organisation.error.account")


@router.get(_BASE)
def organisations_page(request: Request, subject: StaffDep) -> Response:
    runtime = runtime_of(request)
    with runtime.sessions() as db:
        rows = my_organisations(db, subject.user_id)
    return pages_of(request).render(request, "staff_organisations.html", organisations=rows)


def _organisation_page(
    request: Request,
    runtime: Runtime,
    subject: Subject,
    organisation_id: str,
    *,
    status: int = 200,
    errors: list[dict[str, str]] | None = None,
    values: dict[str, str] | None = None,
    notice: str | None = None,
) -> Response:
    with runtime.sessions() as db:
        view = lead_view(db, subject, organisation_id)
    summary = errors or []
    return pages_of(request).render(
        request,
        "staff_organisation.html",
        status=status,
        organisation=view,
        me=subject.user_id,
        default_threshold=DEFAULT_THRESHOLD,
        values=values or {},
        errors=summary,
        field_errors={error["field"]: error["message"] for error in summary if error["field"]},
        notice=notice,
    )


@router.get(_BASE + "/{organisation_id}")
def organisation_page(request: Request, organisation_id: str, subject: StaffDep) -> Response:
    runtime = runtime_of(request)
    notice_key = request.query_params.get("notice", "")
    t = Translator(request_lang(request))
    notice = t(f"organisation.notice.{notice_key}") if notice_key in {"granted", "revoked"} else None
    return _organisation_page(request, runtime, subject, organisation_id, notice=notice)


async def _checked_form(
    request: Request, runtime: Runtime, subject: Subject, organisation_id: str
) -> dict[str, str] | Response:
    """The form, or the page with its 403 when the CSRF token is wrong (404 first for a non-lead)."""
    form = await _form(request)
    if not pages_of(request).csrf_ok(request, form.get("csrf_token")):
        t = Translator(request_lang(request))
        message = f"{t('error.csrf.title')}: {t('error.csrf.message')}"
        return await run_in_threadpool(
            _organisation_page,
            request,
            runtime,
            subject,
            organisation_id,
            status=403,
            errors=[_error("", message)],
        )
    return form


@router.post(_BASE + "/{organisation_id}/mitglieder")
async def grant_member(request: Request, organisation_id: str, subject: StaffDep) -> Response:
    runtime = runtime_of(request)
    await run_in_threadpool(_lead_or_404, runtime, subject, organisation_id)
    form = await _checked_form(request, runtime, subject, organisation_id)
    if isinstance(form, Response):
        return form
    t = Translator(request_lang(request))
    email, role_text = form.get("email", ""), form.get("role", "")
    values = {"email": email, "role": role_text}
    if role_text not in {role.value for role in MembershipRole}:
        errors = [_error("role", t("organisation.error.role"))]
        return await run_in_threadpool(
            _organisation_page,
            request,
            runtime,
            subject,
            organisation_id,
            status=422,
            errors=errors,
            values=values,
        )

    def grant(db: Session) -> None:
        user = runtime.accounts.user_by_email(db, email)
        runtime.accounts.grant_as_lead(db, subject, organisation_id, user, MembershipRole(role_text))

    problem: str | None = None
    try:
        await in_transaction(request, grant)
    except AccountError as exc:
        # Raised out of the unit of work, so nothing of the refused grant is stored.
        problem = exc.code
    if problem is not None:
        errors = [_error("email", _error_text(t, problem))]
        return await run_in_threadpool(
            _organisation_page,
            request,
            runtime,
            subject,
            organisation_id,
            status=422,
            errors=errors,
            values=values,
        )
    return RedirectResponse(f"{_BASE}/{organisation_id}?notice=granted", status_code=303)


@router.post(_BASE + "/{organisation_id}/mitglieder/{user_id}/entfernen")
async def revoke_member(request: Request, organisation_id: str, user_id: str, subject: StaffDep) -> Response:
    runtime = runtime_of(request)
    await run_in_threadpool(_lead_or_404, runtime, subject, organisation_id)
    form = await _checked_form(request, runtime, subject, organisation_id)
    if isinstance(form, Response):
        return form

    outcome: bool | str
    try:
        outcome = await in_transaction(
            request, lambda db: runtime.accounts.revoke_as_lead(db, subject, organisation_id, user_id)
        )
    except AccountError as exc:
        outcome = exc.code
    if isinstance(outcome, str):
        t = Translator(request_lang(request))
        errors = [_error("", _error_text(t, outcome))]
        return await run_in_threadpool(
            partial(_organisation_page, request, runtime, subject, organisation_id, status=422, errors=errors)
        )
    if not outcome:
        raise NotFound()
    return RedirectResponse(f"{_BASE}/{organisation_id}?notice=revoked", status_code=303)


def _lead_or_404(runtime: Runtime, subject: Subject, organisation_id: str) -> None:
    with runtime.sessions() as db:
        lead_view(db, subject, organisation_id)


def _threshold(text: str) -> int:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 2 else 0


async def _shares_action(
    request: Request, organisation_id: str, subject: Subject, *, first: bool
) -> Response:
    runtime = runtime_of(request)
    await run_in_threadpool(_lead_or_404, runtime, subject, organisation_id)
    form = await _checked_form(request, runtime, subject, organisation_id)
    if isinstance(form, Response):
        return form
    t = Translator(request_lang(request))
    custodians = form.get("custodians", "").splitlines()
    threshold = _threshold(form.get("threshold", ""))
    act = set_up_keys_as_lead if first else renew_shares_as_lead

    made: list[CustodianShare] | str
    try:
        # Committed before the shares are shown: a share shown once must open the key that was stored.
        made = await in_transaction(
            request,
            lambda db: act(db, runtime.accounts.custody, subject, organisation_id, custodians, threshold),
        )
    except CustodyError as exc:
        made = exc.code
    if isinstance(made, str):
        values = {"custodians": form.get("custodians", ""), "threshold": form.get("threshold", "")}
        field = "custodians" if made.startswith("custodian") else ("threshold" if made == "threshold" else "")
        errors = [_error(field, _error_text(t, made))]
        return await run_in_threadpool(
            _organisation_page,
            request,
            runtime,
            subject,
            organisation_id,
            status=422,
            errors=errors,
            values=values,
        )
    with runtime.sessions() as db:
        view = lead_view(db, subject, organisation_id)
    return pages_of(request).render(
        request,
        "staff_recovery_shares.html",
        organisation=view,
        shares=made,
        threshold=threshold,
        first=first,
    )


@router.post(_BASE + "/{organisation_id}/schluessel")
async def set_up_keys(request: Request, organisation_id: str, subject: StaffDep) -> Response:
    """The organisation's first key pair, made by its first lead; the shares are shown once."""
    return await _shares_action(request, organisation_id, subject, first=True)


@router.post(_BASE + "/{organisation_id}/anteile")
async def renew_shares(request: Request, organisation_id: str, subject: StaffDep) -> Response:
    """New recovery shares (the old ones stop working) and a new key epoch; shown once."""
    return await _shares_action(request, organisation_id, subject, first=False)
