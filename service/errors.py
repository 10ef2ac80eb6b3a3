"""Domain errors carry their status code; one handler turns them into answers that never echo input."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 400
    # A translation key (templates/i18n) for pages; the English text for the JSON API.
    message_key = "error.server"
    public_message = "The request could not be processed."

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
