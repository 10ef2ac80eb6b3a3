"""keyed_hash and constant_time_equal."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.crypto import constant_time_equal, keyed_hash

KEY = bytes(range(32))


def test_keyed_hash_is_the_documented_hmac() -> None:
    expected = hmac.new(KEY, b"rueckhalt/keyed/v1" + b"\x00\x00\x00\x04csrf" + b"cookie", hashlib.sha256)
    assert keyed_hash(KEY, "csrf", b"cookie") == expected.digest()


def test_purposes_are_separate_domains() -> None:
    """Given the same key and message, different purposes give unrelated values, even shifted ones."""
    assert keyed_hash(KEY, "a", b"bc") != keyed_hash(KEY, "ab", b"c")
    assert keyed_hash(KEY, "csrf", b"x") != keyed_hash(KEY, "ratelimit:intake", b"x")


@settings(database=None, deadline=None, max_examples=200)
@given(st.text(min_size=1), st.binary(), st.text(min_size=1), st.binary())
def test_distinct_inputs_give_distinct_values(p1: str, m1: bytes, p2: str, m2: bytes) -> None:
    assert (keyed_hash(KEY, p1, m1) == keyed_hash(KEY, p2, m2)) == ((p1, m1) == (p2, m2))


def test_depends_on_key() -> None:
    assert keyed_hash(KEY, "csrf", b"x") != keyed_hash(bytes(32), "csrf", b"x")
    assert len(keyed_hash(KEY, "csrf", b"x")) == 32


def test_refuses_short_key_and_empty_purpose() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        keyed_hash(b"", "csrf", b"x")
    with pytest.raises(ValueError, match="purpose"):
        keyed_hash(KEY, "", b"x")


def test_constant_time_equal() -> None:
    assert constant_time_equal(b"abc", b"abc")
    assert not constant_time_equal(b"abc", b"abd")
    assert not constant_time_equal(b"abc", b"abcd")
    assert constant_time_equal(b"", b"")
