"""Perpetrator identifiers as a reporter types them, brought to one form per identity.

Two reporters who name the same account write it differently (``@Max_M``, ``max_m``, ``MAX_M `` with a space
from copying); the token must be the same for all of them, and different for different people. The rules,
per kind (docs/matching.md says why each is as it is):

- everything: Unicode NFKC (full-width and compatibility letters become plain ones), format characters
  removed (messaging apps wrap names in bidi marks and zero-width joiners; they are invisible and would make
  two equal names differ), white space collapsed and stripped.
- name: case folded, commas and full stops read as spaces, the words sorted ("Mustermann, Max" is "Max
  Mustermann").
- handle: on a platform (part of the token: "max_m" on Instagram and on TikTok are two accounts), case
  folded (every listed platform treats handles case-insensitively), leading ``@`` removed, a profile link
  of the platform read as its handle.
- phone: E.164 with ``phonenumbers``, German numbers without a country code; what is not a valid number (by
  the library's numbering plans) is refused.
- e-mail: case folded (local part too: every large provider ignores case, and the form is no place for the
  rare one that does not); dots and ``+tags`` removed in the local part only for the providers listed in
  ``PLUS_PROVIDERS``/``DOTLESS_PROVIDERS``, which document that they deliver such variants to one mailbox.
  Elsewhere a ``+`` or a dot may be part of a different mailbox, and a false match (two people's cases
  linked) is worse than a missed one.
- plate: upper case, without spaces, hyphens and other separators ("M-AB 123" is "MAB123").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers


class Kind(StrEnum):
    name = "name"
    handle = "handle"
    phone = "phone"
    email = "email"
    plate = "plate"


# The platforms a handle can be given for, with the hosts of their profile links. "other" takes any handle
# (as typed, normalised like the rest); two "other" handles match only if both say "other".
PLATFORMS: dict[str, tuple[str, ...]] = {
    "instagram": ("instagram.com",),
    "x": ("x.com", "twitter.com"),
    "facebook": ("facebook.com", "fb.com"),
    "tiktok": ("tiktok.com",),
    "telegram": ("t.me", "telegram.me"),
    "youtube": ("youtube.com",),
    "threads": ("threads.net", "threads.com"),
    "bluesky": ("bsky.app",),
    "mastodon": (),
    "other": (),
}

# What the form shows for each platform ("other" is translated by the page).
PLATFORM_NAMES = {
    "instagram": "Instagram",
    "x": "X (Twitter)",
    "facebook": "Facebook",
    "tiktok": "TikTok",
    "telegram": "Telegram",
    "youtube": "YouTube",
    "threads": "Threads",
    "bluesky": "Bluesky",
    "mastodon": "Mastodon",
    "other": "other",
}

# Providers that document sub-addressing with "+": "name+tag@" reaches "name@".
PLUS_PROVIDERS = frozenset(
    {
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "posteo.de",
        "mailbox.org",
        "proton.me",
        "protonmail.com",
        "fastmail.com",
    }
)
# Providers that ignore dots in the local part ("m.a.x@" is "max@").
DOTLESS_PROVIDERS = frozenset({"gmail.com"})
# One mailbox under two domains.
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}

MAX_VALUE_CHARS = 200
DEFAULT_REGION = "DE"

_SPACES = re.compile(r"\s+")
_PLATE_SEPARATORS = re.compile(r"[\s\-‐-―−_.:·•/]+")
_PLATE_CHARS = re.compile(r"^[A-Z0-9ÄÖÜ]+$")


class NotAnIdentifier(ValueError):
    """The value cannot be one of its kind (an impossible phone number, an address without a domain)."""


@dataclass(frozen=True)
class Identifier:
    """One normalised identifier: what the token is computed from."""

    kind: Kind
    # The handle's platform; "" for every other kind.
    scope: str
    value: str


def _clean(text: str) -> str:
    """NFKC, format characters (Unicode category Cf) removed, white space collapsed and stripped."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    return _SPACES.sub(" ", text).strip()


def _name(text: str) -> str:
    words = _clean(text).casefold().replace(",", " ").replace(".", " ").split()
    return " ".join(sorted(words))


def _handle(text: str, platform: str) -> str:
    value = _clean(text).casefold()
    value = re.sub(r"^https?://", "", value)
    for host in PLATFORMS[platform]:
        for prefix in (f"www.{host}/", f"m.{host}/", f"{host}/"):
            if value.startswith(prefix):
                value = value.removeprefix(prefix).split("/")[0].split("?")[0]
                break
    value = value.lstrip("@").strip()
    if " " in value:
        raise NotAnIdentifier("a handle has no spaces")
    return value


def _phone(text: str) -> str:
    try:
        number = phonenumbers.parse(_clean(text), DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise NotAnIdentifier("not a phone number") from None
    # Valid, not only possible: a possible number may be two digits ("12"), a token anyone could match.
    if not phonenumbers.is_valid_number(number):
        raise NotAnIdentifier("not a phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(text: str) -> str:
    value = _clean(text).casefold()
    local, at, domain = value.rpartition("@")
    domain = domain.rstrip(".")
    if not at or not local or "." not in domain or " " in value or "@" in local:
        raise NotAnIdentifier("not an e-mail address")
    domain = DOMAIN_ALIASES.get(domain, domain)
    if domain in PLUS_PROVIDERS:
        local = local.split("+", 1)[0]
    if domain in DOTLESS_PROVIDERS:
        local = local.replace(".", "")
    if not local:
        raise NotAnIdentifier("not an e-mail address")
    return f"{local}@{domain}"


def _plate(text: str) -> str:
    value = _PLATE_SEPARATORS.sub("", _clean(text).upper())
    if not _PLATE_CHARS.match(value):
        raise NotAnIdentifier("not a vehicle plate")
    return value


def normalise(kind: Kind | str, value: str, platform: str | None = None) -> Identifier:
    """The normalised identifier, or NotAnIdentifier (also for one that is empty once normalised)."""
    kind = Kind(kind)
    if len(value) > MAX_VALUE_CHARS:
        raise NotAnIdentifier("too long")
    scope = ""
    if kind is Kind.handle:
        if platform not in PLATFORMS:
            raise NotAnIdentifier("a handle needs its platform")
        scope = platform
        result = _handle(value, platform)
    elif platform:
        raise NotAnIdentifier("only a handle has a platform")
    elif kind is Kind.name:
        result = _name(value)
    elif kind is Kind.phone:
        result = _phone(value)
    elif kind is Kind.email:
        result = _email(value)
    else:
        result = _plate(value)
    if not result:
        raise NotAnIdentifier("empty")
    return Identifier(kind, scope, result)
