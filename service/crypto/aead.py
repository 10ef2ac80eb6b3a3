"""AES-256-GCM sealing of small records (payloads, messages, wrapped keys under symmetric keys).

Format v1: ``0x01 || nonce(12) || ciphertext || tag(16)``, AAD ``0x01 || context.encode()``.
Nonces are random; each data key seals at most a few thousand records, far below the 2^32 bound.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.crypto.context import Context
from service.crypto.errors import DecryptionError, UnsupportedFormatError

DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
VERSION = 1
_VERSION_BYTE = bytes([VERSION])
OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES


def new_data_key() -> bytes:
    return os.urandom(DATA_KEY_BYTES)


def check_key(key: bytes) -> None:
    # A wrong-length key is a bug in the caller, not an attack: fail loudly and distinctly.
    if not isinstance(key, bytes | bytearray) or len(key) != DATA_KEY_BYTES:
        raise ValueError(f"key must be {DATA_KEY_BYTES} bytes")


def gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def gcm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """AES-GCM open that reports every failure as DecryptionError."""
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionError("ciphertext could not be opened (wrong key or context, or tampered)") from None


def _seal_with_nonce(key: bytes, plaintext: bytes, context: Context, nonce: bytes) -> bytes:
    """seal() with a caller-chosen nonce: for known-answer tests only, never reuse a nonce."""
    check_key(key)
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
    aad = _VERSION_BYTE + context.encode()
    return _VERSION_BYTE + nonce + gcm_encrypt(key, nonce, plaintext, aad)


def seal(key: bytes, plaintext: bytes, context: Context) -> bytes:
    return _seal_with_nonce(key, plaintext, context, os.urandom(NONCE_BYTES))


def open_sealed(key: bytes, sealed: bytes, context: Context) -> bytes:
    check_key(key)
    if len(sealed) < 1:
        raise DecryptionError("sealed data is empty")
    if sealed[0] != VERSION:
        raise UnsupportedFormatError(f"unsupported sealed format version {sealed[0]}")
    if len(sealed) < OVERHEAD:
        raise DecryptionError("sealed data is truncated")
    nonce = sealed[1 : 1 + NONCE_BYTES]
    aad = _VERSION_BYTE + context.encode()
    return gcm_decrypt(key, nonce, sealed[1 + NONCE_BYTES :], aad)
