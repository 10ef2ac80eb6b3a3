"""Password policy: length, the shipped list of common passwords (case-insensitive), and its attribution."""

from __future__ import annotations

import pytest

from service.auth.passwords import (
    COMMON_PASSWORDS_FILE,
    MIN_LENGTH,
    PasswordProblem,
    common_passwords,
    new_initial_password,
    new_recovery_code,
    password_problem,
)


def test_the_shipped_list_is_large_lower_cased_and_attributed() -> None:
    words = common_passwords()
    assert len(words) >= 10_000
    assert all(word == word.lower() for word in words)
    assert {"password", "123456", "qwerty"} <= words
    notice = COMMON_PASSWORDS_FILE.with_name("common-passwords.NOTICE.md").read_text()
    assert "zxcvbn" in notice
    assert "MIT" in notice


@pytest.mark.parametrize("password", ["", "kurz", "elf-Zeichen", "x" * (MIN_LENGTH - 1)])
def test_shorter_than_12_characters_is_refused(password: str) -> None:
    assert password_problem(password) is PasswordProblem.too_short


@pytest.mark.parametrize(
    "password",
    [
        "leavemealone",
        "LeaveMeAlone",  # the list is compared case-insensitively
        "1QAZ2WSX3EDC",
        "qwerty123456",
        "password123456",  # a common password with digits tacked on
        "!!Sunshine2024!!",
    ],
)
def test_common_passwords_are_refused_in_any_case(password: str) -> None:
    assert password_problem(password) is PasswordProblem.common


@pytest.mark.parametrize("password", ["aaaaaaaaaaaa", "121212121212", "abcdabcdabcd"])
def test_long_but_trivial_passwords_are_refused(password: str) -> None:
    assert password_problem(password) is PasswordProblem.too_simple


def test_an_absurdly_long_password_is_refused() -> None:
    assert password_problem("Kirchturm " * 30) is PasswordProblem.too_long


@pytest.mark.parametrize(
    "password",
    ["Kirchturm-Nebel-Apfelbaum-7", "mein Hund heißt Bello und frisst Äpfel", "correct horse battery staple"],
)
def test_long_uncommon_passphrases_are_accepted(password: str) -> None:
    assert password_problem(password) is None


def test_generated_initial_passwords_and_recovery_codes_pass_and_differ() -> None:
    passwords = {new_initial_password() for _ in range(20)}
    assert len(passwords) == 20
    assert all(password_problem(password) is None for password in passwords)
    code = new_recovery_code()
    assert len(code) == 14
    assert code.count("-") == 2
