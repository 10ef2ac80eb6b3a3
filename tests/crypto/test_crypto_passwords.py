"""Argon2id: password-derived keys, password-sealed data and login hashes."""

from __future__ import annotations

import dataclasses
import struct
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.crypto import (
    Argon2Params,
    Context,
    DecryptionError,
    UnsupportedFormatError,
    derive_password_key,
    hash_password,
    needs_rehash,
    open_with_password,
    seal_with_password,
    verify_password,
)

# Small enough to keep the suite fast; the RFC 9106 defaults are exercised once below.
SMALL = Argon2Params(memory_kib=8192, iterations=1, lanes=1)
SALT = bytes(range(16))
PASSWORD = "Rathaus-Gemeinderat-2024"
CONTEXT = Context("user_private", record_id="user-1")
SEALED = seal_with_password(PASSWORD, b"private key", CONTEXT, SMALL)
HASHED = hash_password(PASSWORD, SMALL)


def test_defaults_are_rfc_9106_second_recommendation() -> None:
    """Given no explicit parameters, keys and hashes use 64 MiB, 3 passes, 4 lanes."""
    assert Argon2Params() == Argon2Params(memory_kib=65536, iterations=3, lanes=4)
    encoded = hash_password(PASSWORD)
    assert "$m=65536,t=3,p=4$" in encoded
    assert verify_password(PASSWORD, encoded)
    sealed = seal_with_password(PASSWORD, b"x", CONTEXT)
    assert Argon2Params.decode(sealed[1:13]) == Argon2Params()
    assert derive_password_key(PASSWORD, SALT) == derive_password_key(
        PASSWORD, SALT, Argon2Params(65536, 3, 4)
    )


def test_derived_key_is_deterministic_and_32_bytes() -> None:
    key = derive_password_key(PASSWORD, SALT, SMALL)
    assert len(key) == 32
    assert derive_password_key(PASSWORD, SALT, SMALL) == key
    assert derive_password_key(PASSWORD, bytes(16), SMALL) != key
    assert derive_password_key(PASSWORD + "!", SALT, SMALL) != key
    assert derive_password_key(PASSWORD, SALT, Argon2Params(8192, 2, 1)) != key


def test_password_is_nfc_normalised() -> None:
    """Given the same password typed as composed and as decomposed Unicode, the key is the same."""
    composed = "Bürgermeisterin Müller"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert derive_password_key(composed, SALT, SMALL) == derive_password_key(decomposed, SALT, SMALL)


def test_short_salt_is_refused() -> None:
    with pytest.raises(ValueError, match="salt"):
        derive_password_key(PASSWORD, b"12345678", SMALL)


def test_params_encode_round_trip() -> None:
    for params in (SMALL, Argon2Params(), Argon2Params(2 * 1024 * 1024, 1, 4)):
        assert len(params.encode()) == 12
        assert Argon2Params.decode(params.encode()) == params


@pytest.mark.parametrize(
    ("memory", "iterations", "lanes"),
    [
        (8191, 1, 1),
        (1024, 3, 4),
        (4 * 1024 * 1024 + 1, 1, 1),
        (8192, 0, 1),
        (8192, 65, 1),
        (8192, 1, 0),
        (8192, 1, 65),
    ],
)
def test_params_out_of_bounds_are_refused(memory: int, iterations: int, lanes: int) -> None:
    with pytest.raises(ValueError, match="Argon2"):
        Argon2Params(memory, iterations, lanes)
    with pytest.raises(ValueError, match="Argon2"):
        Argon2Params.decode(struct.pack(">III", memory, iterations, lanes))


def test_params_must_be_int() -> None:
    with pytest.raises(TypeError):
        Argon2Params(memory_kib=True)
    with pytest.raises(ValueError, match="12 bytes"):
        Argon2Params.decode(b"\x00" * 11)


# -- seal_with_password -----------------------------------------------------------------------------------


def test_seal_with_password_round_trip() -> None:
    assert open_with_password(PASSWORD, SEALED, CONTEXT) == b"private key"
    assert SEALED[0] == 1
    assert Argon2Params.decode(SEALED[1:13]) == SMALL
    assert len(SEALED) == 1 + 12 + 16 + 12 + len(b"private key") + 16


def test_seal_with_password_is_randomised() -> None:
    assert seal_with_password(PASSWORD, b"private key", CONTEXT, SMALL) != SEALED


def test_wrong_password_fails() -> None:
    with pytest.raises(DecryptionError):
        open_with_password(PASSWORD.lower(), SEALED, CONTEXT)


@pytest.mark.parametrize("field", ["purpose", "case_id", "field", "record_id"])
def test_any_other_context_field_fails(field: str) -> None:
    other = dataclasses.replace(CONTEXT, **{field: getattr(CONTEXT, field) + "x"})
    with pytest.raises(DecryptionError):
        open_with_password(PASSWORD, SEALED, other)


@settings(database=None, deadline=None, max_examples=25)
@given(st.integers(0, len(SEALED) * 8 - 1))
def test_any_bit_flip_is_detected(position: int) -> None:
    tampered = bytearray(SEALED)
    tampered[position // 8] ^= 1 << (position % 8)
    with pytest.raises(DecryptionError):
        open_with_password(PASSWORD, bytes(tampered), CONTEXT)


def test_weakened_params_are_refused() -> None:
    """Given a row whose parameters were lowered below the floor, it is refused before any derivation."""
    weak = SEALED[:1] + struct.pack(">III", 1024, 1, 1) + SEALED[13:]
    with pytest.raises(DecryptionError, match="out of bounds"):
        open_with_password(PASSWORD, weak, CONTEXT)


def test_changed_params_within_bounds_fail() -> None:
    changed = SEALED[:1] + Argon2Params(8192, 2, 1).encode() + SEALED[13:]
    with pytest.raises(DecryptionError):
        open_with_password(PASSWORD, changed, CONTEXT)


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_unknown_version_is_refused_clearly(version: int) -> None:
    with pytest.raises(UnsupportedFormatError, match=f"version {version}"):
        open_with_password(PASSWORD, bytes([version]) + SEALED[1:], CONTEXT)


@pytest.mark.parametrize("keep", [0, 1, 13, 29, 41, 56, len(SEALED) - 1])
def test_truncated_fails(keep: int) -> None:
    with pytest.raises(DecryptionError):
        open_with_password(PASSWORD, SEALED[:keep], CONTEXT)


# -- hash_password / verify_password ----------------------------------------------------------------------


def test_hash_format() -> None:
    prefix, salt, digest = HASHED.rsplit("$", 2)
    assert prefix == "$rh-argon2id$v=1$m=8192,t=1,p=1"
    assert len(salt) == 22
    assert len(digest) == 43
    assert hash_password(PASSWORD, SMALL) != HASHED


def test_verify_right_and_wrong_password() -> None:
    assert verify_password(PASSWORD, HASHED)
    assert not verify_password(PASSWORD + " ", HASHED)
    assert not verify_password("", HASHED)
    assert verify_password(
        unicodedata.normalize("NFD", "Grüße-aus-Köln-1"), hash_password("Grüße-aus-Köln-1", SMALL)
    )


def _replace_char(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] == "A" else "A") + text[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: h.replace("$m=8192,", "$m=8193,"),
        lambda h: h.replace(",t=1,", ",t=2,"),
        lambda h: h.replace(",p=1$", ",p=2$"),
        lambda h: h.replace("$v=1$", "$v=2$"),
        lambda h: h.replace("$rh-argon2id$", "$argon2id$"),
        lambda h: _replace_char(h, len(h) - 1),
        lambda h: _replace_char(h, len(h) - 20),
        lambda h: _replace_char(h, h.rindex("$") - 3),
        lambda h: h[:-1],
        lambda h: h + "A",
        lambda h: h + "\n",
        lambda h: h.replace("$m=8192,", "$m=1024,"),
        lambda h: h.rsplit("$", 1)[0] + "$" + "A" * 43,
        lambda h: "",
        lambda h: "$rh-argon2id$v=1$m=8192,t=1,p=1$$",
        lambda h: "not a hash at all",
    ],
)
def test_verify_refuses_tampered_encodings(tamper: Callable[[str], str]) -> None:
    assert not verify_password(PASSWORD, tamper(HASHED))


def test_verify_refuses_non_canonical_base64() -> None:
    """Given the last hash character changed only in its unused low bits, it is refused, not accepted."""
    prefix, last = HASHED[:-1], HASHED[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sibling = alphabet[alphabet.index(last) ^ 1]
    assert not verify_password(PASSWORD, prefix + sibling)


def test_needs_rehash() -> None:
    assert not needs_rehash(HASHED, SMALL)
    assert needs_rehash(HASHED)
    assert needs_rehash("garbage", SMALL)
