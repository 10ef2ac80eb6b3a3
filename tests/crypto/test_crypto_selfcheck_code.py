"""The self-check code (docs/crypto-formats.md, "Self-check code"): a known answer for the stored format, the
forgiving input of a receipt, and a domain of its own for the look-up."""

from __future__ import annotations

import pytest

from service.crypto import DecryptionError, InvalidReceipt, receipt_lookup
from service.crypto.selfcheck_code import (
    _seal_answers_with_nonce,
    new_selfcheck_code,
    normalize_selfcheck_code,
    open_answers,
    selfcheck_lookup,
)

b = bytes.fromhex
# Never regenerate: rows kept under a code depend on it.
PEPPER = b("32333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f5051")
CODE = "ABCD-EFGH-JKMN-PQRS-TVWX"
LOOKUP = b("1d5a70ad2eba7560e5c8fceb1b7295cb7d19f4bf4290fbacf2478d2187f29fee")
SALT = b("969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5")
NONCE = b("6465666768696a6b6c6d6e6f")
PLAINTEXT = (
    b'{"v": 1, "takes": [{"month": "2027-02", "answers": {"integrationskonzept": "partly"}, '
    b'"note": "Hauptamt"}]}'
)
SEALED = b(
    "016465666768696a6b6c6d6e6fd840a0a9ee8c30d5a6f75c7fc084d83dce6cabfc891ea262352add8bdfc61e5281d356c1ff"
    "d734769874c9671dfbbb68701bc8944adbc76e91035b0378847226e55eb56d6e74f64e27eca9063ecf0ab6c738c081b0169136"
    "f084f67124df1e893ea8276588ca434698108b318fe6919f69dd23e747705ac89b5236"
)


def test_known_answer() -> None:
    assert selfcheck_lookup(PEPPER, CODE) == LOOKUP
    assert _seal_answers_with_nonce(PLAINTEXT, CODE, SALT, LOOKUP, NONCE) == SEALED
    assert open_answers(SEALED, CODE, SALT, LOOKUP) == PLAINTEXT


def test_typed_back_as_forgivingly_as_a_receipt() -> None:
    assert open_answers(SEALED, "abcd efgh jkmn pqrs tvwx", SALT, LOOKUP) == PLAINTEXT
    assert selfcheck_lookup(PEPPER, "abcd.efgh-jkmn_pqrs tvwx") == LOOKUP
    assert normalize_selfcheck_code("O1IL-0000-0000-0000-0000") == "0111" + "0" * 16
    for bad in ("ABCD", "ABCD-EFGH-JKMN-PQRS-TVWU", "ÄBCD-EFGH-JKMN-PQRS-TVWX", CODE + "X"):
        with pytest.raises(InvalidReceipt):
            normalize_selfcheck_code(bad)


def test_a_wrong_code_another_row_or_a_receipt_opens_nothing() -> None:
    with pytest.raises(DecryptionError):
        open_answers(SEALED, "ABCD-EFGH-JKMN-PQRS-TVWY", SALT, LOOKUP)
    with pytest.raises(DecryptionError):
        open_answers(SEALED, CODE, SALT, b"\x01" * 32)  # copied to another row
    # The same characters as a receipt and as a code: unrelated look-ups.
    assert receipt_lookup(PEPPER, CODE) != selfcheck_lookup(PEPPER, CODE)


def test_new_codes_are_100_bits_in_groups_of_four() -> None:
    codes = {new_selfcheck_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert normalize_selfcheck_code(code) == code.replace("-", "")
        assert [len(group) for group in code.split("-")] == [4, 4, 4, 4, 4]
