"""The staff side of the web layer: the Subject dependency, sign-in and sign-out, the API's CSRF header.

Use ``StaffDep`` (or ``Depends(current_staff)``) on anything only staff may read; ``StaffWriteDep`` on JSON
calls that change state (it also checks the X-CSRF-Token header). HTML forms check their form token with
``Pages.csrf_ok`` as every other form does. Without a session the API answers 401 and pages redirect to the
sign-in page; with an initial password still in place everything but the password change is refused.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import csrf
from service.auth import sessions
from service.auth.schemas import MembershipRead, StaffUserRead
from service.auth.service import NO_KEY, login_email
from service.auth.sessions import STAFF_SESSION
from service.auth.subject import Subject
from service.crypto import constant_time_equal, keyed_hash
from service.deps import RuntimeDep, client_address, in_unit_of_work
from service.errors import (
    ApiCsrfFailed,
    LoginFailed,
    NotFound,
    NotSignedIn,
    PasswordChangeRequired,
    RateLimited,
)
from service.identity import repository as organisations
from service.identity.models import StaffUser
from service.ratelimit.service import Limit
from service.runtime import Runtime, login_client_limit
from service.web import Pages, read_cookie, wants_html

log = logging.getLogger("rueckhalt.auth")

T = TypeVar("T")

STAFF_COOKIE = csrf.STAFF_COOKIE
# Set at a successful sign-in, for the account: this browser has signed in to it before. Attempts that
# carry it have their own allowance, so that guesses from anywhere else never lock the owner out.
DEVICE_COOKIE = "rh_device"
DEVICE_COOKIE_MAX_AGE = 180 * 24 * 3600
CSRF_HEADER = "X-CSRF-Token"
SIGN_IN_PAGE = "/anmelden"
PASSWORD_PAGE = "/konto/passwort"  # noqa: S105 - a path, not a password
HOME_PAGE = "/intern"


def api_csrf_token(session_key: bytes, session_id_hash: str) -> str:
    """The API's CSRF token: bound to one session, derivable only with the server key."""
    return keyed_hash(session_key, "staff-api-csrf", session_id_hash.encode()).hex()


def open_subject(request: Request, runtime: Runtime) -> Subject | None:
    cookie = read_cookie(request, STAFF_COOKIE)
    if not cookie:
        return None
    with runtime.sessions() as db:
        opened = sessions.open_session(db, STAFF_SESSION, cookie)
        subject = None if opened is None else runtime.accounts.subject_for(db, opened)
        if opened is not None and subject is None:
            # Disabled, deleted or reset since the session began: the session ends here too.
            sessions.end_session(db, cookie)
        # Its own transaction, not the endpoint's: the visit is noted, and a dead session's row deleted,
        # whatever the endpoint then does (a refused request, a 404, the NotSignedIn that follows None).
        db.commit()
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
    # This browser's device cookie for the account (kept if it had a valid one, else new).
    device_cookie: str


def account_key(runtime: Runtime, email: str) -> str:
    # The limiter never sees the address itself, only a keyed hash (and hashes that again per day).
    return keyed_hash(runtime.secrets.ratelimit_key, "login-account", login_email(email).encode()).hex()


def _device_mac(runtime: Runtime, device_id: str, account: str) -> str:
    return keyed_hash(runtime.secrets.session_key, "login-device", f"{device_id}:{account}".encode()).hex()


def new_device_cookie(runtime: Runtime, account: str) -> str:
    device_id = secrets.token_urlsafe(16)
    return f"{device_id}.{_device_mac(runtime, device_id, account)}"


def known_device(runtime: Runtime, cookie: str | None, account: str) -> str | None:
    """The device id of a device cookie made for this account by this server, else None (a cookie of
    another account, a forged or a garbled one is no device at all)."""
    if not cookie or len(cookie) > 200 or cookie.count(".") != 1:
        return None
    device_id, mac = cookie.split(".")
    expected = _device_mac(runtime, device_id, account)
    if len(mac) != len(expected) or not constant_time_equal(mac.encode(), expected.encode()):
        return None
    return device_id


def _enforce_login_limits(runtime: Runtime, request: Request, email: str) -> float:
    """The sign-in limits, all before any Argon2 work, so that a flood is refused cheaply; returns how long
    to slow this attempt down.

    - per client address (every attempt, any account);
    - from a browser that signed in to this account before (device cookie): per account and device, and
      nothing else counts against the account: the owner is never locked out by guesses from elsewhere;
    - from any other browser: per account and client address (a flooder's addresses each meet their own
      limit, the owner's new browser has its own), and the account's total from all unknown browsers,
      past which each attempt is slowed down (up to ``login_slowdown_max_seconds``), never refused.
    """
    settings = runtime.settings
    client = client_address(request)
    if not runtime.limiter.allow(login_client_limit(settings), client):
        raise RateLimited()
    account = account_key(runtime, email)
    device = known_device(runtime, read_cookie(request, DEVICE_COOKIE), account)
    if device is not None:
        own = Limit("login-device", settings.login_device_limit_per_hour, 3600, per_client=False)
        if not runtime.limiter.allow(own, f"{account}:{device}"):
            raise RateLimited()
        return 0.0
    per_client = Limit("login-account", settings.login_account_limit_per_hour, 3600, per_client=False)
    if not runtime.limiter.allow(per_client, f"{account}:{client}"):
        raise RateLimited()
    total = Limit("login-account-total", settings.login_account_total_per_hour, 3600, per_client=False)
    over = runtime.limiter.count(total, account) - total.max_hits
    if over <= 0:
        return 0.0
    return min(settings.login_slowdown_max_seconds, 0.5 * over)


def enforce_password_change_limit(runtime: Runtime, subject: Subject) -> None:
    """Password checks of a signed-in member: per account and session, apart from the sign-in limits (a
    flood of sign-in guesses must not keep her from changing her password either)."""
    limit = Limit("password-change", runtime.settings.login_account_limit_per_hour, 3600, per_client=False)
    if not runtime.limiter.allow(limit, f"{account_key(runtime, subject.email)}:{subject.session_id_hash}"):
        raise RateLimited()


def _sign_in_work(
    runtime: Runtime, email: str, password: str, code: str, device_cookie: str | None
) -> SignedIn | None:
    def work(db: Session) -> tuple[StaffUser, str] | None:
        logged_in = runtime.accounts.login(db, email, password, code)
        if logged_in is None:
            # Returned, not raised: the failed attempt is committed before ``sign_in`` answers LoginFailed,
            # so that a TOTP step or recovery code used by this attempt stays used.
            return None
        secret = NO_KEY if logged_in.private_key is None else logged_in.private_key.raw
        return logged_in.user, sessions.create(db, STAFF_SESSION, logged_in.user.id, secret)

    made = in_unit_of_work(runtime, work)
    if made is None:
        return None
    user, cookie = made
    id_hash = sessions.id_hash_of(cookie)
    assert id_hash is not None
    account = account_key(runtime, email)
    device = device_cookie if known_device(runtime, device_cookie, account) else None
    return SignedIn(
        cookie, id_hash, user.id, user.must_change_password, device or new_device_cookie(runtime, account)
    )


async def sign_in(request: Request, runtime: Runtime, email: str, password: str, code: str) -> SignedIn:
    """Rate limits, then one bounded Argon2 run; LoginFailed (one message) for every kind of failure."""
    delay = await run_in_threadpool(_enforce_login_limits, runtime, request, email)
    if delay > 0:
        # Slowed, not locked: the wait holds no thread and no Argon2 slot.
        await asyncio.sleep(delay)
    device_cookie = read_cookie(request, DEVICE_COOKIE)
    signed_in = await runtime.argon2_gate.run(
        partial(_sign_in_work, runtime, email, password, code, device_cookie)
    )
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

    def work(db: Session) -> None:
        user = runtime.accounts.user_by_id(db, subject.user_id)
        private = runtime.accounts.change_password(
            db, user, current, new, keep_session=subject.session_id_hash
        )
        sessions.reseal(db, STAFF_SESSION, read_cookie(request, STAFF_COOKIE), private.raw)

    in_unit_of_work(runtime, work)


def sign_out(db: Session, request: Request) -> None:
    """End the session of this request's cookie, in the caller's unit of work."""
    sessions.end_session(db, read_cookie(request, STAFF_COOKIE))


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def set_staff_cookie(request: Request, response: Response, signed_in: SignedIn) -> None:
    """The session cookie, the device cookie for the account, and a new signed-out CSRF cookie."""
    pages = pages_of(request)
    # No max-age: the cookie ends with the browser; the server ends the session after 30 min idle / 12 h.
    pages.set_cookie(response, STAFF_COOKIE, signed_in.cookie, max_age=None)
    pages.set_cookie(response, DEVICE_COOKIE, signed_in.device_cookie, max_age=DEVICE_COOKIE_MAX_AGE)
    pages.rotate_csrf(request, response)


def clear_staff_cookie(request: Request, response: Response) -> None:
    pages_of(request).delete_cookie(response, STAFF_COOKIE)


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
            if read_cookie(request, STAFF_COOKIE):
                clear_staff_cookie(request, response)
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
