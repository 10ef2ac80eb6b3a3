"""Receipts, the reporter's key, and organisation recovery keys."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections import Counter

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from service.crypto import (
    RECEIPT_CHARS,
    Context,
    DecryptionError,
    InvalidReceipt,
    generate_keypair,
    new_data_key,
    new_receipt,
    new_recovery_key,
    new_salt,
    normalize_receipt,
    open_private_key,
    open_sealed,
    receipt_lookup,
    recovery_wrapping_key,
    seal_private_key,
    unwrap_for_reporter,
    unwrap_key,
    wrap_for_reporter,
    wrap_key,
)
from service.crypto import format_receipt as fmt
from service.crypto.receipt import CROCKFORD_ALPHABET, random_code

FAST = settings(database=None, deadline=None, max_examples=300)
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PEPPER = bytes(range(32))
RECEIPT = "ABCD-EFGH-JKMN-PQRS-TVWX"
CONTEXT = Context("reporter_key", "case-1")
# Every message normalize_receipt may raise; none of them can contain what was typed.
REFUSALS = {"receipt contains a character that is not allowed", "receipt must have exactly 20 characters"}

codes = st.text(alphabet=ALPHABET, min_size=RECEIPT_CHARS, max_size=RECEIPT_CHARS)
SPELLINGS = {"0": "0Oo", "1": "1IiLl"}


@st.composite
def typed_variants(draw: st.DrawFn, code: str) -> str:
    """The code as a person might type it: any case, O for 0, I or L for 1, separators anywhere."""
    out = []
    for char in code:
        out.append(draw(st.sampled_from(SPELLINGS.get(char, char + char.lower()))))
        out.append(draw(st.sampled_from(["", "", "", " ", "-", ".", "_", "  ", " - ", "\t"])))
    return draw(st.sampled_from(["", " ", "\n"])) + "".join(out)


def assert_refused(text: str) -> None:
    with pytest.raises(InvalidReceipt) as caught:
        normalize_receipt(text)
    assert str(caught.value) in REFUSALS


def test_new_receipt_shape() -> None:
    receipt = new_receipt()
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}", receipt)
    assert normalize_receipt(receipt) == receipt.replace("-", "")
    assert RECEIPT_CHARS == 20


def test_new_receipts_differ_and_use_the_whole_alphabet() -> None:
    receipts = [normalize_receipt(new_receipt()) for _ in range(400)]
    assert len(set(receipts)) == 400
    assert set("".join(receipts)) == set(ALPHABET)


@FAST
@given(st.data())
def test_every_typed_variant_normalises_to_the_receipt(data: st.DataObject) -> None:
    code = data.draw(codes)
    typed = data.draw(typed_variants(code))
    assert normalize_receipt(typed) == code
    assert fmt(typed) == "-".join(code[i : i + 4] for i in range(0, 20, 4))


@FAST
@given(codes, st.integers(0, 19), st.sampled_from([*"Uu!#/+ÖöıİßÅ٣０", "\x00", "\u200b"]))
def test_a_foreign_character_is_refused(code: str, position: int, foreign: str) -> None:
    """Given a valid receipt with U, punctuation or a non-ASCII look-alike in it, it is refused."""
    assert_refused(code[:position] + foreign + code[position:])
    assert_refused(code[:position] + foreign + code[position + 1 :])


@FAST
@given(codes, st.integers(1, 19))
def test_wrong_length_is_refused(code: str, cut: int) -> None:
    assert_refused(code[:cut])
    assert_refused(code + code[:cut])
    assert_refused(code + "0")


@FAST
@given(st.text(max_size=60))
def test_arbitrary_text_is_refused_or_canonical(text: str) -> None:
    """Given any text, normalize_receipt returns a canonical receipt or refuses without echoing."""
    try:
        result, refusal = normalize_receipt(text), ""
    except InvalidReceipt as exc:
        result, refusal = "", str(exc)
    if refusal:
        assert refusal in REFUSALS
    else:
        assert len(result) == 20
        assert set(result) <= set(ALPHABET)


def test_empty_and_separator_only_text_is_refused() -> None:
    for text in ("", "    ", "----", "-" * 40):
        assert_refused(text)


def test_huge_input_is_refused_without_echo() -> None:
    assert_refused("A" * 100_000)


def test_receipt_lookup_is_the_documented_hmac() -> None:
    expected = hmac.new(PEPPER, b"rueckhalt/receipt-lookup/v1" + b"ABCDEFGHJKMNPQRSTVWX", hashlib.sha256)
    assert receipt_lookup(PEPPER, RECEIPT) == expected.digest()


def test_receipt_lookup_ignores_formatting() -> None:
    variants = [RECEIPT, RECEIPT.lower(), RECEIPT.replace("-", " "), RECEIPT.replace("-", "")]
    assert len({receipt_lookup(PEPPER, variant) for variant in variants}) == 1
    assert len(receipt_lookup(PEPPER, RECEIPT)) == 32


def test_receipt_lookup_depends_on_pepper_and_receipt() -> None:
    assert receipt_lookup(PEPPER, RECEIPT) != receipt_lookup(bytes(32), RECEIPT)
    assert receipt_lookup(PEPPER, RECEIPT) != receipt_lookup(PEPPER, "ABCD-EFGH-JKMN-PQRS-TVWY")


def test_receipt_lookup_refuses_a_short_pepper_and_invalid_receipts() -> None:
    with pytest.raises(ValueError, match="pepper"):
        receipt_lookup(b"short", RECEIPT)
    with pytest.raises(InvalidReceipt):
        receipt_lookup(PEPPER, "ABCD")


def test_new_salt() -> None:
    assert len(new_salt()) == 32
    assert new_salt() != new_salt()


def test_reporter_wrap_round_trip_with_any_typed_variant() -> None:
    data_key, salt = new_data_key(), new_salt()
    wrapped = wrap_for_reporter(data_key, RECEIPT, salt, CONTEXT)
    for typed in (RECEIPT, RECEIPT.lower(), " abcd efgh jkmn pqrs tvwx ", RECEIPT.replace("-", "")):
        assert unwrap_for_reporter(wrapped, typed, salt, CONTEXT) == data_key


def test_reporter_key_is_the_documented_hkdf() -> None:
    """Given the wrapped key, it is seal() under HKDF(receipt, salt, reporter info)."""
    data_key, salt = new_data_key(), new_salt()
    wrapped = wrap_for_reporter(data_key, RECEIPT, salt, CONTEXT)
    key = HKDF(hashes.SHA256(), 32, salt, b"rueckhalt/reporter-key/v1").derive(b"ABCDEFGHJKMNPQRSTVWX")
    assert open_sealed(key, wrapped, CONTEXT) == data_key


def test_reporter_wrap_refuses_wrong_receipt_salt_and_context() -> None:
    data_key, salt = new_data_key(), new_salt()
    wrapped = wrap_for_reporter(data_key, RECEIPT, salt, CONTEXT)
    with pytest.raises(DecryptionError):
        unwrap_for_reporter(wrapped, "ABCD-EFGH-JKMN-PQRS-TVWY", salt, CONTEXT)
    with pytest.raises(DecryptionError):
        unwrap_for_reporter(wrapped, RECEIPT, new_salt(), CONTEXT)
    for field in ("purpose", "case_id", "field", "record_id"):
        other = dataclasses.replace(CONTEXT, **{field: getattr(CONTEXT, field) + "x"})
        with pytest.raises(DecryptionError):
            unwrap_for_reporter(wrapped, RECEIPT, salt, other)


def test_reporter_wrap_refuses_truncation_and_unknown_versions() -> None:
    salt = new_salt()
    wrapped = wrap_for_reporter(new_data_key(), RECEIPT, salt, CONTEXT)
    for bad in (wrapped[:-1], wrapped[:13], b"", b"\x02" + wrapped[1:]):
        with pytest.raises(DecryptionError):
            unwrap_for_reporter(bad, RECEIPT, salt, CONTEXT)


def test_dummy_unwrap_for_unknown_receipts_fails_cleanly() -> None:
    """Given the constant dummy the intake unwraps for an unknown receipt, it fails as DecryptionError."""
    with pytest.raises(DecryptionError):
        unwrap_for_reporter(b"\x01" + b"\x00" * 60, "0" * 20, b"\x00" * 32, Context("reporter_key", "-"))


def test_reporter_wrap_refuses_short_salt() -> None:
    with pytest.raises(ValueError, match="salt"):
        wrap_for_reporter(new_data_key(), RECEIPT, b"salt", CONTEXT)


# -- recovery keys ----------------------------------------------------------------------------------------


def test_new_recovery_key_shape() -> None:
    key = new_recovery_key()
    groups = key.split("-")
    assert len(groups) == 13
    assert all(len(group) == 4 and set(group) <= set(ALPHABET) for group in groups)
    assert new_recovery_key() != key


def test_recovery_wrapping_key_tolerates_typing_like_receipts() -> None:
    key = new_recovery_key()
    typed = key.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert recovery_wrapping_key(typed) == recovery_wrapping_key(key)
    assert len(recovery_wrapping_key(key)) == 32


def test_recovery_wrapping_key_is_the_documented_hkdf() -> None:
    key = new_recovery_key()
    expected = HKDF(hashes.SHA256(), 32, None, b"rueckhalt/recovery/v1").derive(key.replace("-", "").encode())
    assert recovery_wrapping_key(key) == expected


def test_recovery_wrapping_keys_differ() -> None:
    assert recovery_wrapping_key(new_recovery_key()) != recovery_wrapping_key(new_recovery_key())


@pytest.mark.parametrize("text", ["", "ABCD", RECEIPT, "0" * 51, "0" * 53, "U" * 52])
def test_malformed_recovery_key_is_refused_without_echo(text: str) -> None:
    with pytest.raises(InvalidReceipt) as caught:
        recovery_wrapping_key(text)
    assert text not in str(caught.value) or text == ""
    assert "recovery key" in str(caught.value)


def test_organisation_recovery_flow() -> None:
    """Given an organisation set up with a printed recovery key, the key typed back opens its cases."""
    private, public = generate_keypair()
    recovery_key = new_recovery_key()
    context = Context("org_private", record_id="org-1", field="recovery")
    sealed = seal_private_key(private, recovery_wrapping_key(recovery_key), context)
    case_key = new_data_key()
    grant = wrap_key(case_key, public, Context("case_key", "case-1", "", "org-1"))

    typed = recovery_key.lower().replace("-", "  ")
    restored = open_private_key(sealed, recovery_wrapping_key(typed), context)
    assert unwrap_key(grant, restored, Context("case_key", "case-1", "", "org-1")) == case_key
    with pytest.raises(DecryptionError):
        open_private_key(sealed, recovery_wrapping_key(new_recovery_key()), context)


def test_every_position_of_a_code_is_uniform_over_the_alphabet() -> None:
    # 5 bits per character cut from one random integer: a slip in the shifts would fix or bias a position.
    codes = [random_code(20) for _ in range(16_000)]
    expected = len(codes) / 32
    for position in range(20):
        counts = Counter(code[position] for code in codes)
        chi_square = sum((counts[char] - expected) ** 2 / expected for char in CROCKFORD_ALPHABET)
        # 31 degrees of freedom: 80 is exceeded by chance about once in a million.
        assert chi_square < 80, (position, chi_square)
