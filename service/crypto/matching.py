"""Keyed tokens of the repeat-perpetrator matching (docs/matching.md), under the secret ``matching_key``.

Two values are stored per identifier a reporter gave with consent, and nothing else:

- the token: HMAC-SHA256 of the normalised identifier, its kind and (for a handle) its platform, under a key
  derived from the matching key. Equal identifiers give equal tokens; without the key a token tests nothing.
- the case reference: the case id under AES-SIV (deterministic authenticated encryption, RFC 5297) with a
  second derived key. The same case always gives the same reference, so the tokens of one case can be found
  and deleted, and two tokens can be told to belong to two different cases; but without the key a reference
  names no case, so a dump does not join a token to the case's clear columns (Land, district, holders, times).

Both derived keys come from the matching key alone, by HKDF with labels of their own: the matching key serves
nothing else.
"""

from __future__ import annotations

import functools
import json

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from service.crypto.errors import DecryptionError
from service.crypto.keyed import hkdf_sha256, keyed_hash

TOKEN_BYTES = 32
_TOKEN_INFO = b"rueckhalt/matching/token/v1"
_REFERENCE_INFO = b"rueckhalt/matching/case-reference/v1"
_REFERENCE_AAD = [b"rueckhalt/matching/case-reference/v1"]
# AES-SIV with a 64-byte key: AES-256 for both of its halves (the MAC and the cipher).
_REFERENCE_KEY_BYTES = 64


@functools.lru_cache(maxsize=8)
def _derived(matching_key: bytes, info: bytes, length: int) -> bytes:
    # Cached: the keys are derived once per process and matching key, not on every token.
    if len(matching_key) < 32:
        raise ValueError("the matching key must be at least 32 bytes")
    return hkdf_sha256(matching_key, None, info, length)


def perpetrator_token(matching_key: bytes, kind: str, scope: str, normalised: str) -> bytes:
    """The token of one normalised identifier (32 bytes). ``scope`` is the handle's platform ("" for other
    kinds): the same name on two platforms is two accounts, and two tokens."""
    if not kind or not normalised:
        raise ValueError("a token needs a kind and a value")
    # A JSON list is an injective encoding: ("ab", "c") and ("a", "bc") never give the same bytes.
    message = json.dumps([kind, scope, normalised], ensure_ascii=False, separators=(",", ":")).encode()
    return keyed_hash(_derived(matching_key, _TOKEN_INFO, 32), f"perpetrator-token:{kind}", message)


def case_reference(matching_key: bytes, case_id: str) -> bytes:
    """The case id, deterministically encrypted: equal for equal ids, opened only with the matching key."""
    key = _derived(matching_key, _REFERENCE_INFO, _REFERENCE_KEY_BYTES)
    return AESSIV(key).encrypt(case_id.encode(), _REFERENCE_AAD)


def open_case_reference(matching_key: bytes, reference: bytes) -> str:
    """The case id of a reference; DecryptionError for one made under another key or altered."""
    key = _derived(matching_key, _REFERENCE_INFO, _REFERENCE_KEY_BYTES)
    try:
        return AESSIV(key).decrypt(reference, _REFERENCE_AAD).decode()
    except (InvalidTag, UnicodeDecodeError):
        raise DecryptionError("a matching case reference could not be opened") from None
