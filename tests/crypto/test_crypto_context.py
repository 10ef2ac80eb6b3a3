"""Context: the canonical encoding every ciphertext's associated data is built from."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.crypto import Context

FAST = settings(database=None, deadline=None, max_examples=300)
contexts = st.builds(Context, st.text(min_size=1), st.text(), st.text(), st.text())


@FAST
@given(contexts, contexts)
def test_encoding_is_injective(a: Context, b: Context) -> None:
    """Given two contexts, their encodings are equal exactly when the contexts are."""
    assert (a.encode() == b.encode()) == (a == b)


def test_field_boundaries_cannot_be_shifted() -> None:
    """Given fields whose concatenation is equal, the length prefixes still tell them apart."""
    assert Context("a", "bc").encode() != Context("ab", "c").encode()
    assert Context("x", "", "ab").encode() != Context("x", "ab", "").encode()
    assert Context("x", record_id="1").encode() != Context("x", field="1").encode()


def test_encoding_starts_with_the_domain_prefix() -> None:
    assert Context("incident").encode().startswith(b"rueckhalt/ctx/v1")


def test_positional_order_is_purpose_case_field_record() -> None:
    assert Context("p", "c", "f", "r") == Context(purpose="p", case_id="c", field="f", record_id="r")


def test_context_is_immutable() -> None:
    context = Context("incident", "case")
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.case_id = "other"  # type: ignore[misc]


def test_empty_purpose_is_refused() -> None:
    with pytest.raises(ValueError, match="purpose"):
        Context("")


def test_non_text_fields_are_refused() -> None:
    with pytest.raises(TypeError):
        Context("incident", case_id=7)  # type: ignore[arg-type]


def test_unencodable_text_is_refused() -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        Context("incident", record_id="\ud800")
