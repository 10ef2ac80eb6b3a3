"""Time-based one-time passwords (RFC 6238) for the staff's second factor.

SHA-1, 6 digits, 30-second steps: the only combination every authenticator app understands. The secret is
160 random bits (RFC 4226 recommends at least that). Verification accepts the neighbouring steps (±30 s of
clock drift) but never a step at or before the last one used, so an observed code cannot be replayed.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from service.crypto.keyed import constant_time_equal

TOTP_DIGITS = 6
TOTP_STEP_SECONDS = 30
TOTP_SECRET_BYTES = 20
# One step either side: phones drift and people type slowly; more would widen the guessing window.
TOTP_WINDOW_STEPS = 1


def new_totp_secret() -> bytes:
    return secrets.token_bytes(TOTP_SECRET_BYTES)


def totp_secret_base32(secret: bytes) -> str:
    """The secret as people type it into an app: base32 without padding."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def totp_secret_from_base32(text: str) -> bytes:
    cleaned = "".join(text.split()).upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def _totp(secret: bytes) -> TOTP:
    # SHA-1 is what RFC 6238 apps implement; as an HMAC key derivation it is not weakened by SHA-1 collisions.
    return TOTP(secret, TOTP_DIGITS, SHA1(), TOTP_STEP_SECONDS)  # noqa: S303 - RFC 6238  # nosec B303


def totp_uri(secret: bytes, account: str, issuer: str) -> str:
    """The ``otpauth://`` link that authenticator apps read from a QR code."""
    return _totp(secret).get_provisioning_uri(account, issuer)


def totp_step(at: float) -> int:
    return int(at) // TOTP_STEP_SECONDS


def totp_code(secret: bytes, at: float) -> str:
    """The code an app shows at time ``at`` (seconds since the epoch); for enrolment checks and tests."""
    return _totp(secret).generate(totp_step(at) * TOTP_STEP_SECONDS).decode("ascii")


def verify_totp(secret: bytes, code: str, at: float, last_step: int | None) -> int | None:
    """The step ``code`` belongs to, or None if it is wrong, outside the window, or already used.

    ``last_step`` is the step of the last accepted code; that step and every earlier one are refused. The
    caller stores the returned step (atomically: two requests with the same code must not both pass).
    """
    if not isinstance(code, str) or len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
        return None
    current = totp_step(at)
    matched: int | None = None
    for step in range(current - TOTP_WINDOW_STEPS, current + TOTP_WINDOW_STEPS + 1):
        expected = _totp(secret).generate(step * TOTP_STEP_SECONDS)
        # Every candidate is compared, so the time taken does not tell which step matched.
        if constant_time_equal(expected, code.encode("ascii")) and matched is None:
            matched = step
    if matched is None or (last_step is not None and matched <= last_step):
        return None
    return matched
