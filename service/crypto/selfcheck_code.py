"""The code under which a municipality keeps its self-check: made like a receipt, and the only key to it.

A code is 20 Crockford base32 characters (100 bits), shown in groups of four and typed back as forgivingly as
a receipt (service/crypto/receipt.py). It is never stored. The row is found by a keyed hash of the code under
the lookup pepper (a server secret, never in the database), with a domain of its own so that no receipt and
no self-check code can ever stand for each other; the answers are sealed under a key derived from the code
alone (HKDF with the row's random salt), so neither the database nor the server secrets open them: only
whoever holds the code.
"""

from __future__ import annotations

import secrets

from service.crypto.aead import NONCE_BYTES, _seal_with_nonce, open_sealed
from service.crypto.context import Context
from service.crypto.keyed import MIN_HMAC_KEY_BYTES, hkdf_sha256, hmac_sha256
from service.crypto.receipt import MIN_SALT_BYTES, RECEIPT_CHARS, group, normalize_code, random_code

SELFCHECK_CODE_CHARS = RECEIPT_CHARS
_LOOKUP_PREFIX = b"rueckhalt/selfcheck-lookup/v1"
_KEY_INFO = b"rueckhalt/selfcheck-key/v1"
PURPOSE = "selfcheck"


def new_selfcheck_code() -> str:
    return group(random_code(SELFCHECK_CODE_CHARS))


def normalize_selfcheck_code(text: str) -> str:
    """Canonical form; InvalidReceipt (never echoing the text) if the text cannot be a code."""
    return normalize_code(text, SELFCHECK_CODE_CHARS, "code")


def selfcheck_lookup(pepper: bytes, code: str) -> bytes:
    """Database key of a saved self-check: without the pepper a dump allows no offline guessing."""
    if len(pepper) < MIN_HMAC_KEY_BYTES:
        raise ValueError(f"pepper must be at least {MIN_HMAC_KEY_BYTES} bytes")
    return hmac_sha256(pepper, _LOOKUP_PREFIX + normalize_selfcheck_code(code).encode("ascii"))


def _code_key(code: str, salt: bytes) -> bytes:
    # Separate from the lookup: key and lookup use different functions, salts and labels.
    if len(salt) < MIN_SALT_BYTES:
        raise ValueError(f"salt must be at least {MIN_SALT_BYTES} bytes")
    return hkdf_sha256(normalize_selfcheck_code(code).encode("ascii"), salt, _KEY_INFO)


def _context(lookup: bytes) -> Context:
    # Bound to its row: a sealed value copied to another row does not open there.
    return Context(PURPOSE, record_id=lookup.hex())


def _seal_answers_with_nonce(plaintext: bytes, code: str, salt: bytes, lookup: bytes, nonce: bytes) -> bytes:
    """For known-answer tests only."""
    return _seal_with_nonce(_code_key(code, salt), plaintext, _context(lookup), nonce)


def seal_answers(plaintext: bytes, code: str, salt: bytes, lookup: bytes) -> bytes:
    return _seal_answers_with_nonce(plaintext, code, salt, lookup, secrets.token_bytes(NONCE_BYTES))


def open_answers(sealed: bytes, code: str, salt: bytes, lookup: bytes) -> bytes:
    """The plaintext; DecryptionError for a wrong code or a value that is not this row's."""
    return open_sealed(_code_key(code, salt), sealed, _context(lookup))
