"""JSON API of staff sessions: sign in, who am I, change the password, sign out."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from starlette.concurrency import run_in_threadpool

from service.auth.deps import (
    api_csrf_token,
    change_own_password,
    clear_staff_cookie,
    current_staff_pending_password,
    current_staff_pending_password_write,
    enforce_password_change_limit,
    set_staff_cookie,
    sign_in,
    sign_out,
    user_read,
)
from service.auth.schemas import PasswordChange, SessionCreate, SessionRead
from service.auth.subject import Subject
from service.deps import DbSession, RuntimeDep
from service.errors import error_responses
from service.runtime import Runtime
from service.web import StrictRoute

router = APIRouter(prefix="/api/v1", tags=["session"], route_class=StrictRoute)

_BUSY = "Too many password checks at once, or the database is out of reach; try again in a moment"
_SIGN_IN_ERRORS = error_responses(
    413,
    422,
    described={
        401: "Wrong e-mail, password or code (one answer for every failure)",
        429: "Too many sign-in attempts from this client or for this account",
        503: _BUSY,
    },
)
# These routes accept a session whose initial password is still to be changed (no 403 for that).
_SESSION_ERRORS = error_responses(401)
_WRITE_ERRORS = error_responses(401, described={403: "X-CSRF-Token header missing or wrong"})

PendingSubject = Annotated[Subject, Depends(current_staff_pending_password)]
PendingWriteSubject = Annotated[Subject, Depends(current_staff_pending_password_write)]


def _session_read(runtime: Runtime, user_id: str, session_id_hash: str, must_change: bool) -> SessionRead:
    return SessionRead(
        csrf_token=api_csrf_token(runtime.secrets.session_key, session_id_hash),
        user=user_read(runtime, user_id),
        must_change_password=must_change,
    )


@router.post("/session", response_model=SessionRead, responses=_SIGN_IN_ERRORS, summary="Sign in (staff)")
async def create_session(
    body: SessionCreate, request: Request, response: Response, runtime: RuntimeDep
) -> SessionRead:
    """Checks the code first, then the password; sets the HttpOnly session cookie `rh_staff`.

    The answer's `csrf_token` goes into the `X-CSRF-Token` header of every state-changing call.
    """
    signed_in = await sign_in(request, runtime, body.email, body.password, body.totp)
    set_staff_cookie(request, response, signed_in)
    return await run_in_threadpool(
        _session_read, runtime, signed_in.user_id, signed_in.session_id_hash, signed_in.must_change_password
    )


@router.get("/session", response_model=SessionRead, responses=_SESSION_ERRORS, summary="Who am I")
def read_session(subject: PendingSubject, runtime: RuntimeDep) -> SessionRead:
    return _session_read(runtime, subject.user_id, subject.session_id_hash, subject.must_change_password)


@router.delete(
    "/session",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_WRITE_ERRORS,
    summary="Sign out",
)
def delete_session(subject: PendingWriteSubject, request: Request, db: DbSession) -> Response:
    """Deletes the server half of the session: the cookie opens nothing afterwards."""
    sign_out(db, request)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_staff_cookie(request, response)
    return response


@router.post(
    "/session/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        **_WRITE_ERRORS,
        **error_responses(
            413,
            described={
                422: "Current password wrong, or new password refused (the reason is named)",
                429: "Too many password checks for this account",
                503: _BUSY,
            },
        ),
    },
    summary="Change the password",
)
async def change_password(
    body: PasswordChange, subject: PendingWriteSubject, runtime: RuntimeDep, request: Request
) -> Response:
    """Seals the private key under the new password (the first own password makes the key pair); every
    other session of the account ends."""
    change = partial(change_own_password, runtime, request, subject, body.current_password, body.new_password)
    # The current password is checked by Argon2 like a sign-in, and limited like one.
    await run_in_threadpool(enforce_password_change_limit, runtime, subject)
    await runtime.argon2_gate.run(change)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
