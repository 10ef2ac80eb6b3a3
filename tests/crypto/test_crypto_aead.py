"""seal / open_sealed: AES-256-GCM records bound to their context."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from service.crypto import (
    DATA_KEY_BYTES,
    Context,
    DecryptionError,
    UnsupportedFormatError,
    new_data_key,
    open_sealed,
    seal,
)

FAST = settings(database=None, deadline=None, max_examples=200)
KEY = bytes(range(32))
CONTEXT = Context("incident", "case-1", "payload", "incident-1")
contexts = st.builds(Context, st.text(min_size=1, max_size=20), st.text(max_size=20), st.text(max_size=20))


def test_new_data_key_is_random_and_32_bytes() -> None:
    keys = {new_data_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(len(key) == DATA_KEY_BYTES == 32 for key in keys)


@FAST
@given(st.binary(max_size=4096), contexts)
def test_round_trip(plaintext: bytes, context: Context) -> None:
    assert open_sealed(KEY, seal(KEY, plaintext, context), context) == plaintext


def test_layout_matches_the_documented_format() -> None:
    """Given a sealed record, an independent AES-GCM with AAD = version || context opens it."""
    sealed = seal(KEY, b"hello", CONTEXT)
    assert sealed[0] == 1
    assert len(sealed) == 1 + 12 + 5 + 16
    aad = b"\x01" + CONTEXT.encode()
    assert AESGCM(KEY).decrypt(sealed[1:13], sealed[13:], aad) == b"hello"


def test_nonces_differ_between_seals() -> None:
    assert seal(KEY, b"same", CONTEXT) != seal(KEY, b"same", CONTEXT)


@FAST
@given(st.data())
def test_any_bit_flip_is_detected(data: st.DataObject) -> None:
    """Given a sealed record with one bit flipped anywhere, opening fails with DecryptionError."""
    plaintext = data.draw(st.binary(max_size=64))
    sealed = bytearray(seal(KEY, plaintext, CONTEXT))
    position = data.draw(st.integers(0, len(sealed) * 8 - 1))
    sealed[position // 8] ^= 1 << (position % 8)
    with pytest.raises(DecryptionError):
        open_sealed(KEY, bytes(sealed), CONTEXT)


@pytest.mark.parametrize("field", ["purpose", "case_id", "field", "record_id"])
def test_any_other_context_field_fails(field: str) -> None:
    sealed = seal(KEY, b"secret", CONTEXT)
    other = dataclasses.replace(CONTEXT, **{field: getattr(CONTEXT, field) + "x"})
    with pytest.raises(DecryptionError):
        open_sealed(KEY, sealed, other)


def test_ciphertext_moved_to_another_record_fails() -> None:
    """Given a payload of incident 1 copied into the row of incident 2 of the same case, it does not open."""
    sealed = seal(KEY, b"secret", Context("incident", "case-1", "payload", "incident-1"))
    with pytest.raises(DecryptionError):
        open_sealed(KEY, sealed, Context("incident", "case-1", "payload", "incident-2"))


def test_ciphertext_moved_to_another_case_fails() -> None:
    sealed = seal(KEY, b"secret", Context("note", "case-1"))
    with pytest.raises(DecryptionError):
        open_sealed(KEY, sealed, Context("note", "case-2"))


def test_wrong_key_fails() -> None:
    sealed = seal(KEY, b"secret", CONTEXT)
    with pytest.raises(DecryptionError):
        open_sealed(new_data_key(), sealed, CONTEXT)


@pytest.mark.parametrize("version", [0, 2, 0x7F, 0xFF])
def test_unknown_version_is_refused_clearly(version: int) -> None:
    sealed = bytearray(seal(KEY, b"secret", CONTEXT))
    sealed[0] = version
    with pytest.raises(UnsupportedFormatError, match=f"version {version}"):
        open_sealed(KEY, bytes(sealed), CONTEXT)


@pytest.mark.parametrize("keep", [0, 1, 12, 13, 28, 29, 33])
def test_truncated_ciphertext_fails(keep: int) -> None:
    sealed = seal(KEY, b"secret", CONTEXT)
    with pytest.raises(DecryptionError):
        open_sealed(KEY, sealed[:keep], CONTEXT)


def test_appended_bytes_fail() -> None:
    with pytest.raises(DecryptionError):
        open_sealed(KEY, seal(KEY, b"secret", CONTEXT) + b"\x00", CONTEXT)


def test_error_message_does_not_contain_key_or_plaintext() -> None:
    plaintext = b"Name: Erika Mustermann"
    sealed = seal(KEY, plaintext, CONTEXT)
    with pytest.raises(DecryptionError) as caught:
        open_sealed(bytes(32), sealed, CONTEXT)
    message = str(caught.value)
    assert KEY.hex() not in message
    assert "Erika" not in message


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_wrong_key_length_is_a_programming_error(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal(bytes(length), b"x", CONTEXT)
    with pytest.raises(ValueError, match="32 bytes"):
        open_sealed(bytes(length), seal(KEY, b"x", CONTEXT), CONTEXT)
