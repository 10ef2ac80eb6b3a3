"""Password policy for staff accounts (docs/security.md, "Passwords").

A staff password unlocks the key that opens cases, so it has to survive an offline guess against a stolen
sealed key: at least 12 characters, not one of the 30,000 most common passwords (common-passwords.txt,
see common-passwords.NOTICE.md), and not such a password with digits or symbols tacked on. No composition
rules ("one capital, one digit"): they push people to Passwort1! rather than to long passphrases.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from service.crypto.receipt import group, random_code

MIN_LENGTH = 12
# Far above any passphrase; it only keeps a megabyte "password" from reaching Argon2.
MAX_LENGTH = 256
# "aaaaaaaaaaaa" or "121212121212" passes the length rule but is among the first guesses of any cracker.
MIN_DISTINCT_CHARACTERS = 5
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt")
# 20 characters of 5 bits: 100 bits, shown in groups of four like a receipt.
INITIAL_PASSWORD_CHARS = 20
_STRIP = "0123456789!?.,;:-_+*#~/\\|@$%&=()[]{}<>'\"`^ \t"


class PasswordProblem(StrEnum):
    """Why a password is refused; the values are i18n keys below ``password.``."""

    too_short = "too_short"
    too_long = "too_long"
    common = "common"
    too_simple = "too_simple"
    # Not about the new password itself, but refused by the same forms:
    unchanged = "unchanged"
    current_wrong = "current_wrong"
    mismatch = "mismatch"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip())


def _normalised(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def password_problem(password: str) -> PasswordProblem | None:
    """None for an acceptable password, else the first reason to refuse it."""
    text = _normalised(password)
    if len(text) < MIN_LENGTH:
        return PasswordProblem.too_short
    if len(text) > MAX_LENGTH:
        return PasswordProblem.too_long
    folded = text.casefold()
    if len(set(folded)) < MIN_DISTINCT_CHARACTERS:
        return PasswordProblem.too_simple
    common = common_passwords()
    core = folded.strip(_STRIP)
    if folded in common or (core and core in common):
        return PasswordProblem.common
    return None


def new_initial_password() -> str:
    """A random initial password (100 bits) that an operator hands over; it must be changed at first use."""
    return group(random_code(INITIAL_PASSWORD_CHARS)).lower()


def new_recovery_code() -> str:
    """A single-use second factor for a lost phone: 12 characters, 60 bits, grouped as XXXX-XXXX-XXXX.

    60 bits suffice because a recovery code is only checked online, after the rate limits, and stored
    as a keyed hash that a database dump alone cannot test guesses against.
    """
    return group(random_code(12))
