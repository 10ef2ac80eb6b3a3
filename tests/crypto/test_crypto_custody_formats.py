"""The formats of key custody: password seals under a pepper (formats 2 and 3), recovery shares, the recovery
key pair from its secret, and wrapped private keys. Known answers freeze what is stored for years."""

from __future__ import annotations

import hashlib
import os
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.crypto import (
    Argon2Params,
    Context,
    DecryptionError,
    InvalidReceipt,
    UnsupportedFormatError,
    combine_shares,
    generate_keypair,
    keypair_from_seed,
    open_with_password,
    open_with_password_and_pepper,
    parse_share,
    pepper_id,
    seal_with_password,
    seal_with_password_and_pepper,
    sealed_needs_reseal,
    split_secret,
    unwrap_private_key,
    wrap_legacy_seal,
    wrap_private_key,
)
from service.crypto.passwords import _seal_with_password_and_pepper_fixed
from service.crypto.shamir import Share

WEAK = Argon2Params(8192, 1, 1)
PASSWORD = "Kirchturm-Nebel-Apfelbaum-7"
CONTEXT = Context("user_private", record_id="u1")
PEPPER = bytes(range(100, 132))
OTHER_PEPPER = bytes(range(140, 172))

# -- format 2 ---------------------------------------------------------------------------------------------

KNOWN_FORMAT_2 = bytes.fromhex(
    "02000020000000000100000001000102030405060708090a0b0c0d0e0fbcc04ce7000102030405060708090a0b563f4d419b"
    "bf63abcc298eeac2eb50f591575043b11b2206885d83213f0c1bd6421077ebf3e6b482819fa7c56d695ccbb256f903fce669"
    "d74af17b7601a7acd3ec01e2297701f814e2fb2824b9006bcafbaa91ab800850872874e8458dff0c6a78e9c89a04a228418d"
    "5df598afbdbdc0"
)


def test_format_2_known_answer() -> None:
    sealed = _seal_with_password_and_pepper_fixed(
        PASSWORD, bytes(range(96)), CONTEXT, PEPPER, WEAK, bytes(range(16)), bytes(range(12))
    )
    assert sealed == KNOWN_FORMAT_2
    assert open_with_password_and_pepper(PASSWORD, KNOWN_FORMAT_2, CONTEXT, (PEPPER,)) == bytes(range(96))


def test_format_2_needs_the_password_the_pepper_and_the_context() -> None:
    sealed = seal_with_password_and_pepper(PASSWORD, b"key", CONTEXT, PEPPER, WEAK)
    assert open_with_password_and_pepper(PASSWORD, sealed, CONTEXT, (OTHER_PEPPER, PEPPER)) == b"key"
    with pytest.raises(UnsupportedFormatError, match="pepper"):
        open_with_password_and_pepper(PASSWORD, sealed, CONTEXT, (OTHER_PEPPER,))
    with pytest.raises(DecryptionError):
        open_with_password_and_pepper(PASSWORD + "!", sealed, CONTEXT, (PEPPER,))
    with pytest.raises(DecryptionError):
        open_with_password_and_pepper(PASSWORD, sealed, Context("user_private", record_id="u2"), (PEPPER,))
    # Read as format 1 (the password alone): refused outright.
    with pytest.raises(UnsupportedFormatError):
        open_with_password(PASSWORD, sealed, CONTEXT)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=255))
def test_format_2_any_changed_byte_fails(position: int, flip: int) -> None:
    sealed = bytearray(KNOWN_FORMAT_2)
    sealed[position % len(sealed)] ^= flip
    with pytest.raises((DecryptionError, UnsupportedFormatError)):
        open_with_password_and_pepper(PASSWORD, bytes(sealed), CONTEXT, (PEPPER,))


def test_reseal_is_asked_for_another_pepper_other_parameters_and_the_old_formats() -> None:
    current = seal_with_password_and_pepper(PASSWORD, b"k", CONTEXT, PEPPER, WEAK)
    assert not sealed_needs_reseal(current, PEPPER, WEAK)
    assert sealed_needs_reseal(current, OTHER_PEPPER, WEAK)
    assert sealed_needs_reseal(current, PEPPER, Argon2Params(16384, 1, 1))
    legacy = seal_with_password(PASSWORD, b"k", CONTEXT, WEAK)
    assert sealed_needs_reseal(legacy, PEPPER, WEAK)
    assert sealed_needs_reseal(wrap_legacy_seal(legacy, CONTEXT, PEPPER), PEPPER, WEAK)


def test_format_3_wraps_format_1_under_the_pepper() -> None:
    legacy = seal_with_password(PASSWORD, b"old key", CONTEXT, WEAK)
    wrapped = wrap_legacy_seal(legacy, CONTEXT, PEPPER)
    assert wrapped[0] == 3
    assert legacy not in wrapped
    assert open_with_password_and_pepper(PASSWORD, wrapped, CONTEXT, (PEPPER,)) == b"old key"
    with pytest.raises(UnsupportedFormatError):
        open_with_password_and_pepper(PASSWORD, wrapped, CONTEXT, (OTHER_PEPPER,))
    with pytest.raises(DecryptionError):
        open_with_password_and_pepper("falsch-falsch-falsch", wrapped, CONTEXT, (PEPPER,))
    with pytest.raises(ValueError, match="format v1"):
        wrap_legacy_seal(wrapped, CONTEXT, PEPPER)


def test_the_pepper_id_is_stable_and_short_peppers_are_refused() -> None:
    assert pepper_id(PEPPER) == pepper_id(bytes(PEPPER))
    assert pepper_id(PEPPER) != pepper_id(OTHER_PEPPER)
    with pytest.raises(ValueError):
        pepper_id(b"short")


# -- recovery shares -----------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.integers(min_value=2, max_value=6).flatmap(
        lambda k: st.tuples(st.just(k), st.integers(min_value=k, max_value=8))
    ),
    st.randoms(use_true_random=False),
)
def test_any_k_shares_give_the_secret_back(secret: bytes, k_n: tuple[int, int], rnd: object) -> None:
    k, n = k_n
    shares = split_secret(secret, k, n)
    assert len({share.x for share in shares}) == n
    chosen = rnd.sample(shares, k)  # type: ignore[attr-defined]
    assert combine_shares(chosen) == secret
    assert combine_shares([parse_share(share.encode()) for share in chosen]) == secret


def test_one_share_of_two_says_nothing_about_the_secret() -> None:
    """For k = 2 every byte of a share is uniform whatever the secret: the distributions of a byte of the
    first share, over many splits of two very different secrets, are the same (and near uniform)."""
    runs = 4000
    counts = {}
    for secret in (bytes(32), bytes([255]) * 32):
        counts[secret] = Counter(split_secret(secret, 2, 3)[0].y[0] for _ in range(runs))
    for counter in counts.values():
        # 256 values, 4000 draws: a uniform byte has no value more than ~45 times (p < 1e-6).
        assert max(counter.values()) < 50
        assert len(counter) > 230


def test_fewer_than_k_mixed_or_repeated_shares_are_refused() -> None:
    shares = split_secret(os.urandom(32), 3, 5)
    with pytest.raises(ValueError, match="3 shares are needed"):
        combine_shares(shares[:2])
    with pytest.raises(ValueError, match="twice"):
        combine_shares([shares[0], shares[0], shares[1]])
    other = split_secret(os.urandom(32), 2, 3)
    with pytest.raises(ValueError, match="different splits"):
        combine_shares([shares[0], other[1], shares[2]])


def test_a_share_reads_back_forgivingly_and_names_a_typo() -> None:
    share = split_secret(os.urandom(32), 2, 3)[1]
    text = share.encode()
    assert len(text.replace("-", "")) == 60
    assert parse_share(text.lower().replace("-", " ").replace("0", "o")) == share
    typo = ("1" if text[5] != "1" else "2").join((text[:5], text[6:]))
    with pytest.raises(InvalidReceipt, match="typing error"):
        parse_share(typo)
    with pytest.raises(InvalidReceipt):
        parse_share(text[:-2])
    assert Share(2, 1, bytes(32)).encode() != Share(2, 2, bytes(32)).encode()


# -- recovery key pair and wrapped private keys --------------------------------------------------------------


def test_the_recovery_key_pair_follows_from_its_secret_known_answer() -> None:
    private, public = keypair_from_seed(bytes(range(32)))
    assert hashlib.sha256(public.raw).hexdigest() == (
        "95e36965f3f2f357a30c5abf811a825036066b15df5bd82cabfbda598d5ffd3a"
    )
    assert hashlib.sha256(private.raw).hexdigest() == (
        "88506ded3ad1104858af0aed01a8b04de09dbf9996e177ecf306656d35549e3e"
    )
    assert keypair_from_seed(bytes(range(1, 33)))[1] != public
    with pytest.raises(ValueError):
        keypair_from_seed(b"short")


def test_a_wrapped_private_key_opens_only_for_its_recipient_and_context() -> None:
    epoch_key, _ = generate_keypair()
    recipient, recipient_public = generate_keypair()
    other, _ = generate_keypair()
    context = Context("org_private", record_id="o1", field="recovery#2")
    wrapped = wrap_private_key(epoch_key, recipient_public, context)
    assert unwrap_private_key(wrapped, recipient, context) == epoch_key
    with pytest.raises(DecryptionError):
        unwrap_private_key(wrapped, other, context)
    with pytest.raises(DecryptionError):
        unwrap_private_key(wrapped, recipient, Context("org_private", record_id="o1", field="recovery#3"))
    with pytest.raises(UnsupportedFormatError):
        unwrap_private_key(b"\x09" + wrapped[1:], recipient, context)
