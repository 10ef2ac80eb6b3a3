"""HTML pages for staff: sign-in, sign-out, the start page, password change and two-factor set-up.

They work without JavaScript. Passwords and codes are never put back into a form after an error; only the
e-mail address is. Every failed sign-in gets the same message, whatever was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, TypedDict

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.auth.deps import (
    HOME_PAGE,
    PASSWORD_PAGE,
    StaffDep,
    change_own_password,
    clear_staff_cookie,
    current_staff_pending_password,
    enforce_password_change_limit,
    open_subject,
    pages_of,
    set_staff_cookie,
    sign_in,
    sign_out,
)
from service.auth.errors import PasswordRejected
from service.auth.passwords import PasswordProblem
from service.auth.second_factor import TotpChange, TotpEnrolment
from service.auth.subject import Subject
from service.deps import in_transaction, runtime_of
from service.errors import CsrfFailed, LoginFailed, RateLimited, ServiceBusy
from service.i18n import Translator
from service.identity import repository as organisations
from service.runtime import Runtime
from service.web import StrictRoute, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)

PendingSubject = Annotated[Subject, Depends(current_staff_pending_password)]

# Far above anything a person types; keeps an oversized field from reaching Argon2 at all.
_MAX_FIELD = {"email": 254, "password": 1024, "code": 32}


async def _form(request: Request) -> dict[str, str]:
    form = await read_form(request, max_fields=20)
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def qr_data_uri(text: str) -> str:
    """The QR code as an SVG data: URI: rendered here, no third-party resource, allowed by the CSP (img-src
    data:), and no inline style (segno writes presentation attributes only). Always dark on white, so that a
    phone can read it in dark mode too."""
    return str(segno.make(text, error="m").svg_data_uri(scale=5, border=4, dark="#000", light="#fff"))


# -- sign-in and sign-out ---------------------------------------------------------------------------------


def _login_page(
    request: Request,
    *,
    status: int = 200,
    email: str = "",
    errors: list[dict[str, str]] | None = None,
    notice: str | None = None,
) -> Response:
    return pages_of(request).render(
        request,
        "staff_login.html",
        status=status,
        values={"email": email},
        errors=errors or [],
        field_errors={},
        notice=notice,
    )


@router.get("/anmelden")
def staff_login_form(request: Request) -> Response:
    if open_subject(request, runtime_of(request)) is not None:
        return RedirectResponse(HOME_PAGE, status_code=303)
    return _login_page(request)


@router.post("/anmelden")
async def staff_login(request: Request) -> Response:
    runtime = runtime_of(request)
    pages = pages_of(request)
    t = Translator(request_lang(request))
    form = await _form(request)
    email = form.get("email", "")[: _MAX_FIELD["email"]]
    if not pages.csrf_ok(request, form.get("csrf_token")):
        message = f"{t('error.csrf.title')}: {t('error.csrf.message')}"
        return _login_page(request, status=403, email=email, errors=[_error("", message)])
    password, code = form.get("password", ""), form.get("code", "")
    try:
        if any(len(form.get(name, "")) > limit for name, limit in _MAX_FIELD.items()):
            raise LoginFailed()
        signed_in = await sign_in(request, runtime, email, password, code)
    except LoginFailed:
        return _login_page(request, status=401, email=email, errors=[_error("", t("staff_login.failed"))])
    except RateLimited:
        message = t("staff_login.rate_limited")
        return _login_page(request, status=429, email=email, errors=[_error("", message)])
    except ServiceBusy:
        return _login_page(request, status=503, email=email, errors=[_error("", t("staff_login.busy"))])
    target = PASSWORD_PAGE if signed_in.must_change_password else HOME_PAGE
    response = RedirectResponse(target, status_code=303)
    set_staff_cookie(request, response, signed_in)
    return response


@router.post("/abmelden")
async def staff_logout(request: Request) -> Response:
    t = Translator(request_lang(request))
    form = await _form(request)
    if not pages_of(request).csrf_ok(request, form.get("csrf_token")):
        raise CsrfFailed()
    await in_transaction(request, lambda db: sign_out(db, request))
    pages_of(request).signed_out(request)
    response = _login_page(request, notice=t("staff_login.signed_out"))
    clear_staff_cookie(request, response)
    return response


# -- the start page -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Membership:
    name: str  # the organisation's display name
    role: str  # a MembershipRole value


@dataclass(frozen=True, slots=True)
class _Staff:
    display_name: str
    email: str
    is_admin: bool
    is_coordinator: bool
    memberships: list[_Membership]


class _StaffHome(TypedDict):
    """The context of staff_home.html."""

    staff: _Staff
    recovery_codes_left: int


def _staff_context(runtime: Runtime, subject: Subject) -> _StaffHome:
    with runtime.sessions() as db:
        memberships = [
            _Membership(org.display_name, membership.role)
            for membership, org in organisations.memberships_of(db, subject.user_id)
        ]
        codes_left = runtime.accounts.recovery_codes_left(db, subject.user_id)
    staff = _Staff(
        display_name=subject.display_name,
        email=subject.email,
        is_admin=subject.is_admin,
        is_coordinator=subject.is_coordinator,
        memberships=memberships,
    )
    return {"staff": staff, "recovery_codes_left": codes_left}


@router.get("/intern")
def staff_home(request: Request, subject: StaffDep) -> Response:
    context = _staff_context(runtime_of(request), subject)
    return pages_of(request).render(request, "staff_home.html", **context)


# -- password ---------------------------------------------------------------------------------------------


def _password_page(
    request: Request, subject: Subject, *, status: int = 200, errors: list[dict[str, str]] | None = None
) -> Response:
    summary = errors or []
    return pages_of(request).render(
        request,
        "staff_password.html",
        status=status,
        forced=subject.must_change_password,
        values={},
        errors=summary,
        field_errors={error["field"]: error["message"] for error in summary if error["field"]},
    )


@router.get("/konto/passwort")
def staff_password_form(request: Request, subject: PendingSubject) -> Response:
    return _password_page(request, subject)


@router.post("/konto/passwort")
async def staff_password_change(request: Request, subject: PendingSubject) -> Response:
    runtime = runtime_of(request)
    t = Translator(request_lang(request))
    form = await _form(request)
    if not pages_of(request).csrf_ok(request, form.get("csrf_token")):
        message = f"{t('error.csrf.title')}: {t('error.csrf.message')}"
        return _password_page(request, subject, status=403, errors=[_error("", message)])
    current = form.get("current_password", "")
    new = form.get("new_password", "")
    if new != form.get("new_password_repeat", ""):
        message = t(f"password.{PasswordProblem.mismatch.value}")
        return _password_page(request, subject, status=422, errors=[_error("new_password_repeat", message)])

    try:
        await run_in_threadpool(enforce_password_change_limit, runtime, subject)
        await runtime.argon2_gate.run(partial(change_own_password, runtime, request, subject, current, new))
    except PasswordRejected as exc:
        field = exc.field
        message = t(f"password.{exc.problem.value}")
        return _password_page(request, subject, status=422, errors=[_error(field, message)])
    except RateLimited:
        message = t("staff_login.rate_limited")
        return _password_page(request, subject, status=429, errors=[_error("", message)])
    except ServiceBusy:
        return _password_page(request, subject, status=503, errors=[_error("", t("staff_login.busy"))])
    return RedirectResponse(HOME_PAGE, status_code=303)


# -- two-factor: a new authenticator app, new recovery codes -------------------------------------------


def _totp_page(
    request: Request,
    runtime: Runtime,
    subject: Subject,
    *,
    status: int = 200,
    enrolment: TotpEnrolment | None = None,
    recovery_codes: list[str] | None = None,
    errors: list[dict[str, str]] | None = None,
    notice: str | None = None,
) -> Response:
    with runtime.sessions() as db:
        codes_left = runtime.accounts.recovery_codes_left(db, subject.user_id)
    enrol = None
    if enrolment is not None:
        enrol = {
            "qr": qr_data_uri(enrolment.uri),
            "uri": enrolment.uri,
            "secret": enrolment.secret_base32,
            "token": enrolment.token,
        }
    summary = errors or []
    return pages_of(request).render(
        request,
        "staff_totp.html",
        status=status,
        enrol=enrol,
        recovery_codes=recovery_codes or [],
        recovery_codes_left=codes_left,
        values={},
        errors=summary,
        field_errors={error["field"]: error["message"] for error in summary if error["field"]},
        notice=notice,
    )


@router.get("/konto/zwei-faktor")
def staff_totp(request: Request, subject: StaffDep) -> Response:
    return _totp_page(request, runtime_of(request), subject)


@router.post("/konto/zwei-faktor")
async def staff_totp_action(request: Request, subject: StaffDep) -> Response:
    runtime = runtime_of(request)
    t = Translator(request_lang(request))
    form = await _form(request)
    if not pages_of(request).csrf_ok(request, form.get("csrf_token")):
        message = f"{t('error.csrf.title')}: {t('error.csrf.message')}"
        return await run_in_threadpool(
            lambda: _totp_page(request, runtime, subject, status=403, errors=[_error("", message)])
        )
    action = form.get("action", "")

    def act(db: Session) -> dict[str, Any]:
        """The action in the request's unit of work; what to show, rendered after the commit (the page
        counts the recovery codes left, in a session of its own)."""
        accounts = runtime.accounts
        user = accounts.user_by_id(db, subject.user_id)
        if action == "start":
            return {"enrolment": accounts.start_totp_enrolment(user, subject.session_id_hash)}
        if action == "confirm":
            pending = accounts.open_enrolment(user, subject.session_id_hash, form.get("token", ""))
            if pending is None:
                return {"status": 422, "errors": [_error("", t("staff_totp.expired"))]}
            outcome = accounts.confirm_totp(
                db,
                user,
                pending,
                form.get("code", ""),
                password=form.get("password", ""),
                current_code=form.get("current_code", ""),
            )
            if outcome is not TotpChange.done:
                # Returned, not raised: the unit of work commits, so a current code used by this attempt
                # stays used although the page answers 422.
                errors = (
                    [_error("password", t("staff_totp.reauth.failed"))]
                    if outcome is TotpChange.reauthentication_failed
                    else [_error("code", t("staff_totp.confirm.failed"))]
                )
                return {"status": 422, "enrolment": pending, "errors": errors}
            codes = accounts.replace_recovery_codes_after_enrolment(db, user)
            return {"recovery_codes": codes, "notice": t("staff_totp.enrolled")}
        if action == "codes":
            made = accounts.new_recovery_codes(
                db, user, password=form.get("password", ""), current_code=form.get("current_code", "")
            )
            if made is None:
                # Committed all the same (returned, not raised), as before: what the check used stays used.
                return {"status": 422, "errors": [_error("password", t("staff_totp.reauth.failed"))]}
            return {"recovery_codes": made}
        return {"status": 422}

    shown = await in_transaction(request, act)
    return await run_in_threadpool(lambda: _totp_page(request, runtime, subject, **shown))
