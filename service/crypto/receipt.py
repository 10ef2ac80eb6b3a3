"""Receipts: the reporter's only way back to a case, and the key to it.

A receipt is 20 Crockford base32 characters (100 bits from ``secrets``), shown in groups of four. It is
typed back by people under stress, so input is forgiving (case, separators, O/0 and I/L/1) but a wrong
length or character is refused. With 100 bits a fast KDF suffices: nobody can enumerate the space, and
the lookup needs the pepper, which is not in the database.
"""

from __future__ import annotations

import secrets

from service.crypto.aead import DATA_KEY_BYTES, NONCE_BYTES, _seal_with_nonce, open_sealed
from service.crypto.context import Context
from service.crypto.errors import DecryptionError, InvalidReceipt
from service.crypto.keyed import MIN_HMAC_KEY_BYTES, hkdf_sha256, hmac_sha256

CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ALPHABET_SET = frozenset(CROCKFORD_ALPHABET)
_CONFUSABLE = {"O": "0", "I": "1", "L": "1"}
_SEPARATORS = frozenset("-._")
RECEIPT_CHARS = 20
GROUP = 4
MIN_SALT_BYTES = 16
_LOOKUP_PREFIX = b"rueckhalt/receipt-lookup/v1"
_REPORTER_INFO = b"rueckhalt/reporter-key/v1"


def random_code(length: int) -> str:
    """``length`` characters of 5 uniform random bits each (the alphabet has 32), from one read of the
    operating system's generator: ``secrets.choice`` per character cost a system call each, a twentieth
    of an intake's time."""
    bits = int.from_bytes(secrets.token_bytes((5 * length + 7) // 8), "big")
    return "".join(CROCKFORD_ALPHABET[(bits >> (5 * index)) & 31] for index in range(length))


def group(code: str) -> str:
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalize_code(text: str, length: int, what: str) -> str:
    """Canonical form of a typed code; InvalidReceipt (never echoing the text) if it cannot be one."""
    if not isinstance(text, str):
        raise InvalidReceipt(f"{what} must be text")
    out: list[str] = []
    for char in text:
        if char in _SEPARATORS or char.isspace():
            continue
        # Only ASCII is upper-cased: Unicode case mapping would let e.g. a dotless i pass as 1.
        upper = char.upper() if char.isascii() else char
        upper = _CONFUSABLE.get(upper, upper)
        if upper not in _ALPHABET_SET:
            raise InvalidReceipt(f"{what} contains a character that is not allowed")
        out.append(upper)
        if len(out) > length:
            break
    if len(out) != length:
        raise InvalidReceipt(f"{what} must have exactly {length} characters")
    return "".join(out)


def new_receipt() -> str:
    return group(random_code(RECEIPT_CHARS))


def normalize_receipt(text: str) -> str:
    return normalize_code(text, RECEIPT_CHARS, "receipt")


def format_receipt(text: str) -> str:
    return group(normalize_receipt(text))


def receipt_lookup(pepper: bytes, receipt: str) -> bytes:
    """Database key of a receipt; without the pepper a dump allows no offline guessing."""
    if len(pepper) < MIN_HMAC_KEY_BYTES:
        raise ValueError(f"pepper must be at least {MIN_HMAC_KEY_BYTES} bytes")
    return hmac_sha256(pepper, _LOOKUP_PREFIX + normalize_receipt(receipt).encode("ascii"))


def new_salt() -> bytes:
    return secrets.token_bytes(32)


def _reporter_key(receipt: str, salt: bytes) -> bytes:
    # Separate from the lookup: salt and info differ, so the lookup value says nothing about the key.
    if len(salt) < MIN_SALT_BYTES:
        raise ValueError(f"salt must be at least {MIN_SALT_BYTES} bytes")
    return hkdf_sha256(normalize_receipt(receipt).encode("ascii"), salt, _REPORTER_INFO)


def _wrap_for_reporter_with_nonce(
    data_key: bytes, receipt: str, salt: bytes, context: Context, nonce: bytes
) -> bytes:
    """For known-answer tests only."""
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"data key must be {DATA_KEY_BYTES} bytes")
    return _seal_with_nonce(_reporter_key(receipt, salt), data_key, context, nonce)


def wrap_for_reporter(data_key: bytes, receipt: str, salt: bytes, context: Context) -> bytes:
    return _wrap_for_reporter_with_nonce(data_key, receipt, salt, context, secrets.token_bytes(NONCE_BYTES))


def unwrap_for_reporter(wrapped: bytes, receipt: str, salt: bytes, context: Context) -> bytes:
    data_key = open_sealed(_reporter_key(receipt, salt), wrapped, context)
    if len(data_key) != DATA_KEY_BYTES:
        raise DecryptionError("wrapped reporter key has the wrong shape")
    return data_key
