"""Tampering, for every ciphertext format of service/crypto, and the parsers of typed secrets.

Where each format's "any bit flip is detected" property lives:
  seal / open_sealed (AEAD v1: incidents, messages, notes, attachment names, case details, contacts,
      sessions' server halves, statistics references)   test_crypto_aead.py
  wrap_key / unwrap_key (HPKE grants)                    test_crypto_hpke.py
  StreamSealer / open_stream (attachment blobs)          test_crypto_stream.py
  seal_with_password (staff private keys, TOTP secrets)  test_crypto_passwords.py
  wrap_for_reporter (the receipt's key)                  here
  seal_private_key (organisation keys: grants, recovery) here
  seal_address (reporters' notification addresses)      here
  sign_webhook (a MAC, not a ciphertext: a changed body, time or signature never verifies)   here
and the parsers of what people type or send: receipts and recovery keys, TOTP codes, password hashes and
the CSRF token, each of which answers "no" to anything else and never raises.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import csrf
from service.cases.contact import open_address, seal_address
from service.crypto import (
    Context,
    DecryptionError,
    InvalidReceipt,
    generate_keypair,
    new_data_key,
    normalize_receipt,
    open_private_key,
    seal_private_key,
    totp_code,
    unwrap_for_reporter,
    verify_totp,
    wrap_for_reporter,
)
from service.crypto.passwords import verify_password
from service.crypto.receipt import format_receipt
from service.crypto.recovery import RECOVERY_KEY_CHARS, new_recovery_key, normalize_recovery_key
from service.crypto.webhook import sign_webhook, verify_webhook

FAST = settings(database=None, deadline=None, max_examples=300)
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KEY = bytes(range(32))
SALT = bytes(range(32, 64))
CONTEXT = Context("reporter_key", "case-1")
RECEIPT = "ABCD-EFGH-JKMN-PQRS-TVWX"
DATA_KEY = new_data_key()
WRAPPED_FOR_REPORTER = wrap_for_reporter(DATA_KEY, RECEIPT, SALT, CONTEXT)
PRIVATE, _PUBLIC = generate_keypair()
SEALED_PRIVATE = seal_private_key(PRIVATE, KEY, Context("org_recovery", record_id="org-1"))
SEALED_ADDRESS = seal_address(KEY, "case-1", "melderin@example.org")
RECOVERY_REFUSALS = {
    "recovery key must be text",
    "recovery key contains a character that is not allowed",
    f"recovery key must have exactly {RECOVERY_KEY_CHARS} characters",
}


def flipped(data: bytes, position: int) -> bytes:
    changed = bytearray(data)
    changed[position // 8] ^= 1 << (position % 8)
    return bytes(changed)


@FAST
@given(st.integers(0, len(WRAPPED_FOR_REPORTER) * 8 - 1))
def test_any_bit_flip_of_the_reporter_key_is_detected(position: int) -> None:
    with pytest.raises(DecryptionError):
        unwrap_for_reporter(flipped(WRAPPED_FOR_REPORTER, position), RECEIPT, SALT, CONTEXT)


@FAST
@given(st.integers(0, len(SEALED_PRIVATE) * 8 - 1))
def test_any_bit_flip_of_a_sealed_organisation_key_is_detected(position: int) -> None:
    with pytest.raises(DecryptionError):
        open_private_key(flipped(SEALED_PRIVATE, position), KEY, Context("org_recovery", record_id="org-1"))


def test_the_untouched_formats_open() -> None:
    # The control: the fixtures above open, so the refusals are the flips' doing.
    assert unwrap_for_reporter(WRAPPED_FOR_REPORTER, RECEIPT, SALT, CONTEXT) == DATA_KEY
    assert open_private_key(SEALED_PRIVATE, KEY, Context("org_recovery", record_id="org-1")) == PRIVATE
    assert open_address(KEY, "case-1", SEALED_ADDRESS) == "melderin@example.org"


@FAST
@given(st.integers(0, len(SEALED_ADDRESS) * 8 - 1))
def test_any_bit_flip_of_a_notification_address_is_detected(position: int) -> None:
    with pytest.raises(DecryptionError):
        open_address(KEY, "case-1", flipped(SEALED_ADDRESS, position))


@FAST
@given(st.binary(max_size=200), st.integers(0, 2**40), st.data())
def test_a_changed_webhook_never_verifies(body: bytes, timestamp: int, data: st.DataObject) -> None:
    signature = sign_webhook(KEY, timestamp, body)
    assert verify_webhook(KEY, signature, timestamp, body, now=timestamp)
    if body:
        position = data.draw(st.integers(0, len(body) * 8 - 1))
        assert not verify_webhook(KEY, signature, timestamp, flipped(body, position), now=timestamp)
    assert not verify_webhook(KEY, signature, timestamp + 1, body, now=timestamp)
    forged = data.draw(st.text(max_size=80))
    assert forged == signature or not verify_webhook(KEY, forged, timestamp, body, now=timestamp)


# -- typed secrets -------------------------------------------------------------------------------------------


@FAST
@given(st.text(alphabet=ALPHABET, min_size=20, max_size=20), st.data())
def test_a_normalised_receipt_is_a_fixed_point_whatever_the_spelling(code: str, data: st.DataObject) -> None:
    look_alikes = {"0": "oO", "1": "iIlL"}
    typed = "".join(
        data.draw(st.sampled_from([char, char.lower(), *look_alikes.get(char, "")]))
        + data.draw(st.sampled_from(["", "-", " ", "."]))
        for char in code
    )
    assert normalize_receipt(typed) == code
    assert normalize_receipt(format_receipt(typed)) == code
    assert format_receipt(format_receipt(typed)) == format_receipt(typed)


@FAST
@given(st.text(max_size=120))
def test_any_text_is_a_recovery_key_or_refused(text: str) -> None:
    try:
        key, refusal = normalize_recovery_key(text), ""
    except InvalidReceipt as exc:
        key, refusal = "", str(exc)
    if refusal:
        assert refusal in RECOVERY_REFUSALS, "one of three fixed messages: the text is never quoted"
    else:
        assert len(key) == RECOVERY_KEY_CHARS
        assert set(key) <= set(ALPHABET)


@settings(database=None, deadline=None, max_examples=50)
@given(st.data())
def test_a_recovery_key_is_read_back_in_any_case_and_grouping(data: st.DataObject) -> None:
    key = new_recovery_key()
    typed = data.draw(st.sampled_from([key, key.lower(), key.replace("-", " "), key.replace("-", "")]))
    assert normalize_recovery_key(typed) == key.replace("-", "")


@FAST
@given(st.text(max_size=12) | st.text(alphabet=string.digits, min_size=6, max_size=6))
def test_only_the_current_totp_code_verifies(code: str) -> None:
    secret, at = bytes(range(20)), 1_800_000_000.0
    accepted = verify_totp(secret, code, at, None)
    window = {totp_code(secret, at + offset) for offset in (-30, 0, 30)}
    assert (accepted is not None) == (code in window)


@FAST
@given(st.text(max_size=200))
def test_any_stored_text_is_not_a_password_hash_that_verifies(encoded: str) -> None:
    assert verify_password("Kirchturm-Nebel-Apfelbaum-7", encoded) is False


@FAST
@given(st.text(max_size=80), st.text(max_size=80) | st.none())
def test_only_the_token_of_its_cookie_passes_csrf(cookie: str, token: str | None) -> None:
    expected = csrf.token_for(KEY, cookie) if cookie else None
    assert csrf.valid(KEY, cookie or None, token) == (token is not None and token == expected)
