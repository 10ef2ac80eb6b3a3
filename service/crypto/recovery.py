"""Organisation recovery keys: printed once, kept offline, the last way into an organisation's cases."""

from __future__ import annotations

from service.crypto.keyed import hkdf_sha256
from service.crypto.receipt import group, normalize_code, random_code

# 52 characters of 5 bits each: 260 bits, at least the 256 a long-lived key should have.
RECOVERY_KEY_CHARS = 52
_INFO = b"rueckhalt/recovery/v1"


def new_recovery_key() -> str:
    return group(random_code(RECOVERY_KEY_CHARS))


def normalize_recovery_key(text: str) -> str:
    return normalize_code(text, RECOVERY_KEY_CHARS, "recovery key")


def recovery_wrapping_key(recovery_key: str) -> bytes:
    """32-byte key for seal_private_key(); HKDF is enough because the input has 260 bits of entropy."""
    return hkdf_sha256(normalize_recovery_key(recovery_key).encode("ascii"), None, _INFO)
