"""Domain errors carry their status code; one handler turns them into answers that never echo input."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(TypedDict):
    """One entry of a 422 answer (the shape of pydantic's, without ``input`` and ``ctx``): where and what,
    as a stable code in ``type``, never the offending value."""

    loc: list[str | int]
    type: str
    msg: str
    # Which file of an upload was refused (its place in the form), for the page that lists them.
    position: NotRequired[str]


class DomainError(Exception):
    status_code = 400
    # A translation key (templates/i18n) for pages; the English text for the JSON API.
    message_key = "error.server"
    public_message = "The request could not be processed."
    # Sent as Retry-After with the answer: how long a client should wait before it tries again.
    retry_after_seconds: int | None = None

    def __init__(self, detail: list[ErrorDetail] | None = None) -> None:
        super().__init__(self.public_message)
        self.detail = detail or []


class NotFound(DomainError):
    """Also used for what the subject may not see: a 404 never confirms that something exists."""

    status_code = 404
    message_key = "error.not_found"
    public_message = "Not found."


class ValidationFailed(DomainError):
    status_code = 422
    message_key = "validation.invalid"
    public_message = "Some fields are not valid."


class BadInput(ValidationFailed):
    """Characters that no person types and no column can hold (NUL), refused wherever they arrive."""

    message_key = "error.bad_input"
    public_message = "The request contains characters that are not allowed. Nothing was stored."


class PayloadTooLarge(DomainError):
    status_code = 413
    message_key = "error.too_large"
    public_message = "The request is too large."


class UnsupportedMediaType(DomainError):
    """A multipart body where no files are taken: only the forms that take files parse multipart."""

    status_code = 415
    message_key = "error.media_type"
    public_message = (
        "Diese Adresse nimmt keine Dateien an; es wurde nichts gespeichert. / "
        "This address takes no files; nothing was stored."
    )


class RateLimited(DomainError):
    status_code = 429
    message_key = "error.rate_limited"
    public_message = "Too many requests. Please wait a while and try again."


class NoRecipient(DomainError):
    """No organisation with a key can receive the report: we refuse rather than store it unprotected."""

    status_code = 503
    message_key = "error.no_recipient"
    public_message = (
        "No support organisation can receive reports right now. Nothing was stored. "
        "In acute danger call 110. Please try again later."
    )


class AlreadySubmitted(DomainError):
    """A form view's submission token was used before: this submission filed nothing (the first one did).

    409, not an error of the reporter's: the page says the report was received and what to do if the
    receipt was lost."""

    status_code = 409
    message_key = "error.already_submitted"
    public_message = "This form was already sent; nothing was stored a second time."


class AlreadyFiled(AlreadySubmitted):
    """A JSON client's retry with the same Idempotency-Key and body, after the first filing's answer may no
    longer be shown (service/reports/answer_again.py): nothing was filed a second time."""

    public_message = (
        "A report with this Idempotency-Key and this content was filed already; nothing was stored a second "
        "time. Its receipt is shown again only within a quarter of an hour of filing."
    )


class AlreadySent(AlreadySubmitted):
    """A JSON client's retry of a message or a note with the same Idempotency-Key and content: stored once,
    by the first request; nothing was stored a second time."""

    public_message = (
        "Stored already with this Idempotency-Key and this content; nothing was stored a second time."
    )


class CsrfFailed(DomainError):
    status_code = 403
    message_key = "error.csrf"
    public_message = "The form has expired. Please send it again."


class NotSignedIn(DomainError):
    """No staff session, or one that has ended: the API answers 401, pages redirect to the sign-in page."""

    status_code = 401
    message_key = "error.not_signed_in"
    public_message = "Not signed in."


class LoginFailed(DomainError):
    """One answer for every failed staff sign-in, so it tells nothing about which part was wrong."""

    status_code = 401
    message_key = "staff_login.failed"
    public_message = "Wrong e-mail, password or code."


class PasswordChangeRequired(DomainError):
    """Signed in with an initial password: nothing but the password change until it is replaced."""

    status_code = 403
    message_key = "error.password_change_required"
    public_message = "Change your initial password first (POST /api/v1/session/password)."


class ApiCsrfFailed(CsrfFailed):
    public_message = "A state-changing call needs the X-CSRF-Token header from POST /api/v1/session."


class ServiceBusy(DomainError):
    """Busy for a moment: too many password checks at once (bounded, so that a login flood cannot starve
    the intake), or a report that met a change of an organisation in the same instant (nothing stored)."""

    status_code = 503
    message_key = "error.busy"
    public_message = "The service is busy. Please try again in a moment."


class DatabaseUnavailable(DomainError):
    """The database cannot be reached (stopped, restarting, connection lost): nothing was accepted.

    A 503 tells the reporter to send again; a 500 would read like a bug and hides that waiting helps. The
    JSON text is German and English, because the API is the path of tools that show it to people as is.
    """

    status_code = 503
    message_key = "error.unavailable"
    public_message = (
        "Der Dienst ist vorübergehend nicht erreichbar. Was Sie gesendet haben, wurde nicht angenommen: "
        "bitte senden Sie es in einigen Minuten erneut. In akuter Gefahr rufen Sie 110 an. / "
        "The service is temporarily unavailable. What you sent was not accepted: please send it again in "
        "a few minutes. In acute danger call 110."
    )
    retry_after_seconds = 30


# -- the documented shape of every error answer of the JSON API --------------------------------------------


class ErrorItem(BaseModel):
    """One invalid field: where and what kind of problem, never the value that was sent."""

    model_config = ConfigDict(extra="forbid")

    loc: list[str | int] = Field(description="Where: body, then the field (and index)")
    type: str = Field(description="What kind of problem, a stable code such as missing or invalid_code")
    msg: str = Field(description="A short English explanation (no input quoted)")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the API. Additional properties are refused in the schema on purpose:
    the contract test (tests/fuzz) then catches an answer that starts to carry the submitted input."""

    model_config = ConfigDict(extra="forbid")

    detail: str | list[ErrorItem] = Field(description="The message, or the list of invalid fields")
    message: str | None = Field(default=None, description="The message when detail lists fields")


_ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "Not signed in, or the session has ended",
    403: "X-CSRF-Token header missing or wrong, or the initial password must be changed first",
    404: "Not found (also what the caller may not see)",
    413: "The request body is too large",
    422: "Invalid fields (named, never echoed); nothing stored",
    429: "Too many requests from this client",
    # Any call may meet a database that is out of reach (DatabaseUnavailable); routes with a 503 of their
    # own (no organisation can receive a report, too many password checks) describe theirs.
    503: "The service is temporarily unavailable (the database is out of reach): nothing was accepted; "
    "send it again later (Retry-After)",
}


def error_responses(*codes: int, described: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status (those in ``codes`` and in ``described``, and always 503)
    with the error schema above; ``described`` gives a status a more specific text than the standard one."""
    texts = {**_ERROR_DESCRIPTIONS, **(described or {})}
    return {
        code: {"model": ErrorBody, "description": texts[code]}
        for code in sorted({*codes, *(described or {}), 503})
    }
