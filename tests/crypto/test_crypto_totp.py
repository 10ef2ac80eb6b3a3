"""TOTP (RFC 6238): known answers, the ±1 step window, and replay refusal."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from service.crypto import (
    new_totp_secret,
    totp_code,
    totp_secret_base32,
    totp_secret_from_base32,
    totp_uri,
    verify_totp,
)

# RFC 6238 appendix B, SHA-1 seed; the 8-digit answers there end in these 6 digits (RFC 4226 truncation).
RFC_SECRET = b"12345678901234567890"
RFC_VECTORS = [
    (59, "287082"),
    (1111111109, "081804"),
    (1111111111, "050471"),
    (1234567890, "005924"),
    (2000000000, "279037"),
]
NOW = 1_700_000_000.0


@pytest.mark.parametrize(("at", "expected"), RFC_VECTORS)
def test_codes_match_rfc_6238(at: int, expected: str) -> None:
    assert totp_code(RFC_SECRET, at) == expected
    assert verify_totp(RFC_SECRET, expected, at, None) == at // 30


def test_secret_is_160_random_bits_and_round_trips_through_base32() -> None:
    first, second = new_totp_secret(), new_totp_secret()
    assert len(first) == 20
    assert first != second
    text = totp_secret_base32(first)
    assert "=" not in text
    assert totp_secret_from_base32(text.lower()) == first
    assert totp_secret_from_base32(" ".join([text[:8], text[8:]])) == first


def test_uri_names_issuer_account_and_parameters() -> None:
    secret = new_totp_secret()
    uri = totp_uri(secret, "beraterin@example.org", "Rückhalt")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert unquote(parts.path) == "/Rückhalt:beraterin@example.org"
    query = parse_qs(parts.query)
    assert query["secret"] == [totp_secret_base32(secret)]
    assert query["issuer"] == ["Rückhalt"]
    assert query["digits"] == ["6"]
    assert query["period"] == ["30"]


def test_neighbouring_steps_are_accepted_and_further_ones_refused() -> None:
    """Given a phone 30 s off, the code still works; 60 s off, it does not."""
    secret = new_totp_secret()
    step = int(NOW) // 30
    for offset in (-1, 0, 1):
        code = totp_code(secret, NOW + offset * 30)
        assert verify_totp(secret, code, NOW, None) == step + offset
    for offset in (-2, 2):
        assert verify_totp(secret, totp_code(secret, NOW + offset * 30), NOW, None) is None


def test_a_used_code_is_refused_a_second_time() -> None:
    """Given a code that was accepted, when it is sent again (or an older one), then it is refused."""
    secret = new_totp_secret()
    code = totp_code(secret, NOW)
    step = verify_totp(secret, code, NOW, None)
    assert step is not None
    assert verify_totp(secret, code, NOW, step) is None
    assert verify_totp(secret, code, NOW + 10, step) is None
    assert verify_totp(secret, totp_code(secret, NOW - 30), NOW, step) is None
    # The next step's code is still good.
    assert verify_totp(secret, totp_code(secret, NOW + 30), NOW + 30, step) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", " 12345", "123 45"])
def test_malformed_codes_are_refused(code: str) -> None:
    assert verify_totp(new_totp_secret(), code, NOW, None) is None


def test_another_secret_does_not_verify() -> None:
    code = totp_code(new_totp_secret(), NOW)
    assert verify_totp(new_totp_secret(), code, NOW, None) is None
