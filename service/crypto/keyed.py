"""Keyed hashing (HMAC-SHA256) and key derivation (HKDF-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_KEYED_PREFIX = b"rueckhalt/keyed/v1"
# An empty or tiny key turns a pseudonym into a plain hash that anyone can recompute from a guess.
MIN_HMAC_KEY_BYTES = 16


def _check_hmac_key(key: bytes, what: str) -> None:
    if len(key) < MIN_HMAC_KEY_BYTES:
        raise ValueError(f"{what} must be at least {MIN_HMAC_KEY_BYTES} bytes")


def keyed_hash(key: bytes, purpose: str, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` in the domain ``purpose``; 32 bytes.

    The same key may serve several purposes: the length-prefixed label keeps their outputs unrelated.
    """
    _check_hmac_key(key, "keyed_hash key")
    if not purpose:
        raise ValueError("keyed_hash purpose must not be empty")
    label = purpose.encode("utf-8")
    data = _KEYED_PREFIX + struct.pack(">I", len(label)) + label + message
    return hmac.new(key, data, hashlib.sha256).digest()


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def hkdf_sha256(ikm: bytes, salt: bytes | None, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)
