"""Why an account or membership request is refused: stable codes for the pages, never a secret echoed."""

from __future__ import annotations

from service.auth.passwords import PasswordProblem
from service.errors import ValidationFailed


class AccountError(ValueError):
    """An operator's or lead's request that cannot be done; the message says why, never echoing secrets.

    ``code`` is stable, for pages to translate (``organisation.error.<code>``).
    """

    def __init__(self, message: str, code: str = "account") -> None:
        super().__init__(message)
        self.code = code


class PasswordRejected(ValidationFailed):
    """A new password breaks the policy, or the current one was wrong; names the field, never the value."""

    def __init__(self, problem: PasswordProblem, field: str = "new_password") -> None:
        super().__init__(
            [{"loc": ["body", field], "type": f"password.{problem.value}", "msg": _PROBLEM_TEXT[problem]}]
        )
        self.problem = problem
        self.field = field


_PROBLEM_TEXT = {
    PasswordProblem.too_short: "The password must have at least 12 characters.",
    PasswordProblem.too_long: "The password must have at most 256 characters.",
    PasswordProblem.common: "This password is one of the most common passwords. Choose another one.",
    PasswordProblem.too_simple: "This password repeats too few characters. Choose a longer mix.",
    PasswordProblem.unchanged: "The new password must differ from the current one.",
    PasswordProblem.current_wrong: "The current password is wrong.",
    PasswordProblem.mismatch: "The two new passwords differ.",
}
