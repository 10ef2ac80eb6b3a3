"""wrap_key / unwrap_key: data keys wrapped to ML-KEM-768 + X25519 key pairs with HPKE."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.crypto import (
    Context,
    CryptoError,
    DecryptionError,
    PrivateKey,
    PublicKey,
    UnsupportedFormatError,
    generate_keypair,
    new_data_key,
    open_private_key,
    seal_private_key,
    unwrap_key,
    wrap_key,
)

FAST = settings(database=None, deadline=None, max_examples=150)
PRIVATE, PUBLIC = generate_keypair()
DATA_KEY = bytes(range(32))
CONTEXT = Context("case_key", "case-1", "", "org-1")
WRAPPED = wrap_key(DATA_KEY, PUBLIC, CONTEXT)


def test_key_sizes() -> None:
    assert len(PUBLIC.raw) == 1184 + 32
    assert len(PRIVATE.raw) == 64 + 32


def test_round_trip() -> None:
    private, public = generate_keypair()
    key = new_data_key()
    assert unwrap_key(wrap_key(key, public, CONTEXT), private, CONTEXT) == key


def test_wrapped_key_layout() -> None:
    """Given one wrapped 32-byte key, it is the version byte plus the 1,168 bytes HPKE produces."""
    assert WRAPPED[0] == 1
    assert len(WRAPPED) == 1 + 1168


def test_wrapping_is_randomised() -> None:
    assert wrap_key(DATA_KEY, PUBLIC, CONTEXT) != WRAPPED


def test_public_key_is_derived_from_the_private_key() -> None:
    assert PRIVATE.public_key() == PUBLIC
    assert PublicKey.from_bytes(PUBLIC.raw) == PUBLIC
    assert PrivateKey.from_bytes(PRIVATE.raw) == PRIVATE


def test_key_pairs_are_distinct() -> None:
    assert len({generate_keypair()[1].raw for _ in range(5)}) == 5


def test_private_key_repr_hides_the_bytes() -> None:
    for text in (repr(PRIVATE), str(PRIVATE), f"{PRIVATE!r}", repr([PRIVATE])):
        assert PRIVATE.raw.hex() not in text
        assert repr(PRIVATE.raw)[2:20] not in text
        assert "secret" in text


def test_private_key_survives_pickling() -> None:
    """Given a private key passed between processes, it still opens what was wrapped to it."""
    copy = pickle.loads(pickle.dumps(PRIVATE))
    assert unwrap_key(WRAPPED, copy, CONTEXT) == DATA_KEY


@pytest.mark.parametrize("length", [0, 1215, 1217, 32])
def test_public_key_of_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(CryptoError, match="1216 bytes"):
        PublicKey.from_bytes(bytes(length))


def test_malformed_mlkem_public_key_is_refused() -> None:
    """Given ML-KEM coefficients out of range, the public key is refused, not used."""
    with pytest.raises(CryptoError, match="malformed"):
        PublicKey.from_bytes(b"\xff" * 1184 + PUBLIC.raw[1184:])


@pytest.mark.parametrize("length", [0, 64, 95, 97])
def test_private_key_of_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(CryptoError, match="96 bytes"):
        PrivateKey.from_bytes(bytes(length))


def test_wrong_private_key_fails() -> None:
    other, _ = generate_keypair()
    with pytest.raises(DecryptionError):
        unwrap_key(WRAPPED, other, CONTEXT)


@pytest.mark.parametrize("field", ["purpose", "case_id", "field", "record_id"])
def test_any_other_context_field_fails(field: str) -> None:
    other = dataclasses.replace(CONTEXT, **{field: getattr(CONTEXT, field) + "x"})
    with pytest.raises(DecryptionError):
        unwrap_key(WRAPPED, PRIVATE, other)


def test_grant_moved_to_another_organisation_row_fails() -> None:
    """Given organisation 1's grant copied into organisation 2's row, it does not unwrap."""
    with pytest.raises(DecryptionError):
        unwrap_key(WRAPPED, PRIVATE, Context("case_key", "case-1", "", "org-2"))


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_unknown_version_is_refused_clearly(version: int) -> None:
    with pytest.raises(UnsupportedFormatError, match=f"version {version}"):
        unwrap_key(bytes([version]) + WRAPPED[1:], PRIVATE, CONTEXT)


@pytest.mark.parametrize("keep", [0, 1, 100, 1121, 1168])
def test_truncated_wrapped_key_fails(keep: int) -> None:
    with pytest.raises(DecryptionError):
        unwrap_key(WRAPPED[:keep], PRIVATE, CONTEXT)


def test_appended_bytes_fail() -> None:
    with pytest.raises(DecryptionError):
        unwrap_key(WRAPPED + b"\x00", PRIVATE, CONTEXT)


@FAST
@given(st.integers(0, len(WRAPPED) * 8 - 1))
def test_any_bit_flip_is_detected(position: int) -> None:
    """Given a wrapped key with one bit flipped (version, KEM encapsulation or ciphertext), unwrap fails."""
    tampered = bytearray(WRAPPED)
    tampered[position // 8] ^= 1 << (position % 8)
    with pytest.raises(DecryptionError):
        unwrap_key(bytes(tampered), PRIVATE, CONTEXT)


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_only_32_byte_data_keys_are_wrapped(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        wrap_key(bytes(length), PUBLIC, CONTEXT)


def test_sealed_private_key_round_trip() -> None:
    wrapping_key = new_data_key()
    context = Context("org_private", record_id="org-1", field="member:user-1")
    sealed = seal_private_key(PRIVATE, wrapping_key, context)
    assert PRIVATE.raw not in sealed
    opened = open_private_key(sealed, wrapping_key, context)
    assert opened == PRIVATE
    assert unwrap_key(WRAPPED, opened, CONTEXT) == DATA_KEY


def test_sealed_private_key_refuses_wrong_key_and_context() -> None:
    wrapping_key = new_data_key()
    context = Context("org_private", record_id="org-1", field="recovery")
    sealed = seal_private_key(PRIVATE, wrapping_key, context)
    with pytest.raises(DecryptionError):
        open_private_key(sealed, new_data_key(), context)
    with pytest.raises(DecryptionError):
        open_private_key(sealed, wrapping_key, Context("org_private", record_id="org-2", field="recovery"))
