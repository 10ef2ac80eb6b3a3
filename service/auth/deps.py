"""The staff side of the web layer: the Subject dependency, sign-in and sign-out, the API's CSRF header.

Use ``StaffDep`` (or ``Depends(current_staff)``) on anything only staff may read; ``StaffWriteDep`` on JSON
calls that change state (it also checks the X-CSRF-Token header). HTML forms check their form token with
``Pages.csrf_ok`` as every other form does. Without a session the API answers 401 and pages redirect to the
sign-in page; with an initial password still in place everything but the password change is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from service.auth import sessions
from service.auth.schemas import MembershipRead, StaffUserRead
from service.auth.service import NO_KEY, login_email
from service.auth.sessions import STAFF_SESSION
from service.auth.subject import Subject
from service.crypto import constant_time_equal, keyed_hash
from service.deps import RuntimeDep, client_address
from service.errors import (
    ApiCsrfFailed,
    LoginFailed,
    NotFound,
    NotSignedIn,
    PasswordChangeRequired,
    RateLimited,
)
from service.organisations import repository as organisations
from service.runtime import Runtime, login_account_limit, login_client_limit
from service.web import Pages, wants_html

log = logging.getLogger("rueckhalt.auth")

STAFF_COOKIE = "rh_staff"
CSRF_HEADER = "X-CSRF-Token"
SIGN_IN_PAGE = "/anmelden"
PASSWORD_PAGE = "/konto/passwort"  # noqa: S105 - a path, not a password
HOME_PAGE = "/intern"


def api_csrf_token(session_key: bytes, session_id_hash: str) -> str:
    """The API's CSRF token: bound to one session, derivable only with the server key."""
    return keyed_hash(session_key, "staff-api-csrf", session_id_hash.encode()).hex()


def open_subject(request: Request, runtime: Runtime) -> Subject | None:
    cookie = request.cookies.get(STAFF_COOKIE)
    if not cookie:
        return None
    with runtime.sessions() as db:
        opened = sessions.resume(db, STAFF_SESSION, cookie)
        if opened is None:
            return None
        subject = runtime.accounts.subject_for(db, opened)
        if subject is None:
            # Disabled, deleted or reset since the session began: the session ends here too.
            sessions.destroy(db, cookie)
        return subject


def current_staff_pending_password(request: Request, runtime: RuntimeDep) -> Subject:
    """The signed-in staff member, even one who still has to replace an initial password.

    Only for the password change, the session itself, and sign-out; everything else uses current_staff.
    """
    subject = open_subject(request, runtime)
    if subject is None:
        raise NotSignedIn()
    return subject


async def current_staff(
    subject: Annotated[Subject, Depends(current_staff_pending_password)],
) -> Subject:
    """The signed-in staff member (401 for the API, a redirect to the sign-in page for pages)."""
    if subject.must_change_password:
        raise PasswordChangeRequired()
    return subject


def check_api_csrf(request: Request, runtime: Runtime, subject: Subject) -> None:
    """A cookie-authenticated JSON call that changes state must carry the session's CSRF token.

    SameSite=Strict already keeps the cookie off cross-site requests; the header is the second lock,
    and one that a form on another site cannot set.
    """
    sent = request.headers.get(CSRF_HEADER, "")
    expected = api_csrf_token(runtime.secrets.session_key, subject.session_id_hash)
    if len(sent) != len(expected) or not constant_time_equal(sent.encode(), expected.encode()):
        raise ApiCsrfFailed()


async def current_staff_write(
    request: Request, runtime: RuntimeDep, subject: Annotated[Subject, Depends(current_staff)]
) -> Subject:
    check_api_csrf(request, runtime, subject)
    return subject


async def current_staff_pending_password_write(
    request: Request,
    runtime: RuntimeDep,
    subject: Annotated[Subject, Depends(current_staff_pending_password)],
) -> Subject:
    check_api_csrf(request, runtime, subject)
    return subject


async def current_coordinator(subject: Annotated[Subject, Depends(current_staff)]) -> Subject:
    """Coordinators only; for anyone else the coordinator's pages and figures do not exist (404)."""
    if not subject.is_coordinator:
        raise NotFound()
    return subject


StaffDep = Annotated[Subject, Depends(current_staff)]
StaffWriteDep = Annotated[Subject, Depends(current_staff_write)]
CoordinatorDep = Annotated[Subject, Depends(current_coordinator)]


# -- sign-in and sign-out ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    cookie: str
    session_id_hash: str
    user_id: str
    must_change_password: bool


def _enforce_login_limits(runtime: Runtime, request: Request, email: str) -> None:
    """Per client, then per account; both before any Argon2 work, so a flood is refused cheaply."""
    settings = runtime.settings
    if not runtime.limiter.allow(login_client_limit(settings), client_address(request)):
        raise RateLimited()
    enforce_account_limit(runtime, email)


def enforce_account_limit(runtime: Runtime, email: str) -> None:
    # The limiter never sees the address itself, only a keyed hash (and hashes that again per day).
    account = keyed_hash(runtime.secrets.ratelimit_key, "login-account", login_email(email).encode()).hex()
    if not runtime.limiter.allow(login_account_limit(runtime.settings), account):
        raise RateLimited()


def _sign_in_work(runtime: Runtime, email: str, password: str, code: str) -> SignedIn | None:
    with runtime.sessions() as db:
        logged_in = runtime.accounts.login(db, email, password, code)
        if logged_in is None:
            # Commit anyway: a TOTP step or recovery code used by this attempt stays used.
            db.commit()
            return None
        user = logged_in.user
        secret = NO_KEY if logged_in.private_key is None else logged_in.private_key.raw
        cookie = sessions.create(db, STAFF_SESSION, user.id, secret)
        db.commit()
    id_hash = sessions.id_hash_of(cookie)
    assert id_hash is not None
    return SignedIn(cookie, id_hash, user.id, user.must_change_password)


async def sign_in(request: Request, runtime: Runtime, email: str, password: str, code: str) -> SignedIn:
    """Rate limits, then one bounded Argon2 run; LoginFailed (one message) for every kind of failure."""
    await run_in_threadpool(_enforce_login_limits, runtime, request, email)
    signed_in = await runtime.argon2_gate.run(partial(_sign_in_work, runtime, email, password, code))
    if signed_in is None:
        log.info("staff sign-in refused")
        raise LoginFailed()
    log.info("staff sign-in")
    return signed_in


def change_own_password(runtime: Runtime, request: Request, subject: Subject, current: str, new: str) -> None:
    """The password change of the page and of the API (run in the Argon2 gate).

    The first own password makes the account's key pair; the session making the change carries the unlocked
    key from then on (its cookie stays the same), every other session of the account ends.
    """
    with runtime.sessions() as db:
        user = runtime.accounts.user_by_id(db, subject.user_id)
        private = runtime.accounts.change_password(
            db, user, current, new, keep_session=subject.session_id_hash
        )
        sessions.reseal(db, STAFF_SESSION, request.cookies.get(STAFF_COOKIE), private.raw)
        db.commit()


def sign_out(runtime: Runtime, request: Request) -> None:
    with runtime.sessions() as db:
        sessions.destroy(db, request.cookies.get(STAFF_COOKIE))


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def set_staff_cookie(request: Request, response: Response, cookie: str) -> None:
    # No max-age: the cookie ends with the browser; the server ends the session after 30 min idle / 12 h.
    pages_of(request).set_cookie(response, STAFF_COOKIE, cookie, max_age=None)


def clear_staff_cookie(response: Response) -> None:
    response.delete_cookie(STAFF_COOKIE, path="/", httponly=True, samesite="strict")


def user_read(runtime: Runtime, user_id: str) -> StaffUserRead:
    with runtime.sessions() as db:
        user = runtime.accounts.user_by_id(db, user_id)
        memberships = [
            MembershipRead(
                organisation_id=org.id,
                organisation_slug=org.slug,
                organisation_name=org.display_name,
                role=membership.role,
            )
            for membership, org in organisations.memberships_of(db, user_id)
        ]
    return StaffUserRead(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        is_admin=user.is_admin,
        is_coordinator=user.is_coordinator,
        memberships=memberships,
    )


# -- answers for requests without a usable session ----------------------------------------------------------


def install_staff_error_handlers(app: FastAPI) -> None:
    """Pages redirect (to sign in, or to the password change); the API answers with the status code."""

    async def not_signed_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotSignedIn)
        if wants_html(request):
            response: Response = RedirectResponse(SIGN_IN_PAGE, status_code=303)
            if request.cookies.get(STAFF_COOKIE):
                clear_staff_cookie(response)
            return response
        return JSONResponse({"detail": exc.public_message}, status_code=exc.status_code)

    async def password_change_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PasswordChangeRequired)
        if wants_html(request):
            return RedirectResponse(PASSWORD_PAGE, status_code=303)
        return JSONResponse({"detail": exc.public_message}, status_code=exc.status_code)

    handlers: dict[type[Exception], Any] = {
        NotSignedIn: not_signed_in,
        PasswordChangeRequired: password_change_required,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
