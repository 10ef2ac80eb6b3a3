"""The normaliser of perpetrator identifiers (service/matching/normalise.py): one form per identity, and
different forms for different identities. Written out examples first, then properties over generated input.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.crypto import perpetrator_token
from service.matching.normalise import (
    PLATFORMS,
    Kind,
    NotAnIdentifier,
    normalise,
)

KEY = bytes(range(32))


def value(kind: str, text: str, platform: str | None = None) -> str:
    return normalise(kind, text, platform).value


# -- the example ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["@Max_M", "max_m", "MAX_M ", " @@max_m", "\u200e@Max_M\u200f", "ＭＡＸ＿Ｍ"]
)
def test_one_handle_written_many_ways_is_one_identifier(typed: str) -> None:
    assert normalise("handle", typed, "instagram") == normalise("handle", "max_m", "instagram")


def test_the_platform_is_part_of_the_identity() -> None:
    instagram = normalise("handle", "max_m", "instagram")
    tiktok = normalise("handle", "max_m", "tiktok")
    assert instagram.value == tiktok.value
    assert instagram != tiktok
    token = perpetrator_token(KEY, "handle", instagram.scope, instagram.value)
    assert token != perpetrator_token(KEY, "handle", tiktok.scope, tiktok.value)


@pytest.mark.parametrize(
    ("platform", "link"),
    [
        ("instagram", "https://www.instagram.com/Max_M/"),
        ("instagram", "instagram.com/max_m?igsh=abc"),
        ("x", "https://twitter.com/MAX_M"),
        ("x", "https://x.com/max_m/status/1"),
        ("tiktok", "https://www.tiktok.com/@Max_M"),
        ("telegram", "t.me/max_m"),
    ],
)
def test_a_profile_link_is_read_as_its_handle(platform: str, link: str) -> None:
    assert value("handle", link, platform) == "max_m"


def test_a_link_of_another_platform_is_not_taken_apart() -> None:
    assert value("handle", "https://x.com/max_m", "instagram") != "max_m"


def test_a_mastodon_handle_keeps_its_instance() -> None:
    assert value("handle", "@Max_M@social.example", "mastodon") == "max_m@social.example"
    assert value("handle", "@max_m@other.example", "mastodon") != value(
        "handle", "@max_m@social.example", "mastodon"
    )


@pytest.mark.parametrize(
    ("typed", "platform"),
    [("max m", "instagram"), ("max_m", None), ("max_m", "myspace"), ("@", "instagram"), ("   ", "x")],
)
def test_what_is_no_handle_is_refused(typed: str, platform: str | None) -> None:
    with pytest.raises(NotAnIdentifier):
        normalise("handle", typed, platform)


# -- phone numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "0171 5550123",
        "+49 171 5550123",
        "0049 (171) 555-0123",
        "+49-171-5550123",
        "01715550123",
        "０１７１ ５５５０１２３",
    ],
)
def test_phone_numbers_become_e164_with_germany_as_default(typed: str) -> None:
    assert value("phone", typed) == "+491715550123"


def test_a_foreign_number_keeps_its_country() -> None:
    assert value("phone", "+43 660 1234567") == "+436601234567"
    assert value("phone", "+43 660 1234567") != value("phone", "+49 160 1234567")


@pytest.mark.parametrize("typed", ["abc", "12", "+49", "ruf mich an"])
def test_what_is_no_phone_number_is_refused(typed: str) -> None:
    with pytest.raises(NotAnIdentifier):
        normalise("phone", typed)


# -- e-mail addresses ---------------------------------------------------------------------------------------


def test_mail_addresses_are_case_folded() -> None:
    assert value("email", " Max.Muster@Example.ORG ") == "max.muster@example.org"


def test_gmail_ignores_dots_and_tags_and_googlemail_is_gmail() -> None:
    expected = "maxmuster@gmail.com"
    for typed in ("Max.Muster@gmail.com", "maxmuster+hass@gmail.com", "m.a.x.muster@googlemail.com"):
        assert value("email", typed) == expected


def test_tags_go_only_at_providers_that_document_them() -> None:
    assert value("email", "max+hass@posteo.de") == "max@posteo.de"
    assert value("email", "max.muster+x@outlook.com") == "max.muster@outlook.com"
    # Elsewhere a plus or a dot may be another mailbox: a false match is worse than a missed one.
    assert value("email", "max+hass@example.org") == "max+hass@example.org"
    assert value("email", "max.muster@web.de") != value("email", "maxmuster@web.de")


@pytest.mark.parametrize(
    "typed", ["max", "max@", "@example.org", "max@localhost", "max muster@example.org", "+tag@gmail.com"]
)
def test_what_is_no_mail_address_is_refused(typed: str) -> None:
    with pytest.raises(NotAnIdentifier):
        normalise("email", typed)


# -- plates and names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["M-AB 123", "m ab 123", "MAB123", "M–AB·123", " m-ab-123 "])
def test_plates_lose_separators_and_case(typed: str) -> None:
    assert value("plate", typed) == "MAB123"


def test_plates_keep_umlauts_and_refuse_other_characters() -> None:
    assert value("plate", "Ö-AB 1") == "ÖAB1"
    with pytest.raises(NotAnIdentifier):
        normalise("plate", "M/AB#123")


def test_names_ignore_case_order_spacing_and_commas() -> None:
    expected = value("name", "Max Mustermann")
    for typed in ("max  mustermann", "Mustermann, Max", "MUSTERMANN MAX", "\u2068Max Mustermann\u2069"):
        assert value("name", typed) == expected
    assert value("name", "Max Mustermann") != value("name", "Moritz Mustermann")
    # Case folding, not lower(): "ß" and "SS" are one name.
    assert value("name", "Max Straße") == value("name", "MAX STRASSE")


def test_only_a_handle_takes_a_platform_and_nothing_is_too_long() -> None:
    with pytest.raises(NotAnIdentifier):
        normalise("name", "Max", "instagram")
    with pytest.raises(NotAnIdentifier):
        normalise("name", "x" * 201)
    with pytest.raises(ValueError):
        normalise("tattoo", "anchor")


# -- properties ---------------------------------------------------------------------------------------------

HANDLE_CHARS = string.ascii_letters + string.digits + "_."
handles = st.text(HANDLE_CHARS, min_size=1, max_size=30).filter(lambda text: text.strip("."))
noise = st.sampled_from(["", " ", "  ", "\u200b", "\u200e", "\t"])


@settings(max_examples=200)
@given(handle=handles, before=noise, after=noise, ats=st.integers(0, 2), upper=st.booleans())
def test_a_handle_survives_at_signs_case_and_invisible_noise(
    handle: str, before: str, after: str, ats: int, upper: bool
) -> None:
    typed = before + "@" * ats + (handle.upper() if upper else handle) + after
    assert normalise("handle", typed, "x") == normalise("handle", handle, "x")


@settings(max_examples=200)
@given(kind=st.sampled_from(list(Kind)), text=st.text(max_size=60), platform=st.sampled_from(list(PLATFORMS)))
def test_normalising_is_idempotent_and_never_fails_otherwise(kind: Kind, text: str, platform: str) -> None:
    """Any input either normalises or is refused with NotAnIdentifier (never another exception), and a
    normalised value normalises to itself (so a value stored or re-sent gives the same token)."""
    chosen = platform if kind is Kind.handle else None
    try:
        first = normalise(kind, text, chosen)
    except NotAnIdentifier:
        return
    assert first.value
    assert normalise(kind, first.value, chosen) == first


@settings(max_examples=100)
@given(first=handles, second=handles)
def test_different_handles_stay_different(first: str, second: str) -> None:
    if first.casefold() != second.casefold():
        assert normalise("handle", first, "x") != normalise("handle", second, "x")


@settings(max_examples=100)
@given(digits=st.text("0123456789", min_size=7, max_size=10))
def test_a_german_number_with_and_without_country_code_is_one_number(digits: str) -> None:
    local = "01" + digits
    try:
        national = normalise("phone", local)
    except NotAnIdentifier:
        return
    assert normalise("phone", "+49 " + local[1:]) == national
    assert normalise("phone", "0049" + local[1:]) == national
    assert national.value.startswith("+49")
