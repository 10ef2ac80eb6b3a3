"""Domain errors carry their status code; one handler turns them into answers that never echo input."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 400
    # A translation key (templates/i18n) for pages; the English text for the JSON API.
    message_key = "error.server"
    public_message = "The request could not be processed."
    # Sent as Retry-After with the answer: how long a client should wait before it tries again.
    retry_after_seconds: int | None = None

    def __init__(self, detail: list[dict[str, Any]] | None = None) -> None:
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


class PayloadTooLarge(DomainError):
    status_code = 413
    message_key = "error.too_large"
    public_message = "The request is too large."


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
    """Too many password checks at once: they are bounded so that a login flood cannot starve intake."""

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
