"""service.strict_json, the API's one JSON decoder: what RFC 8259 allows comes back unchanged, everything
else is a JSONDecodeError that does not carry the body, and nothing else is ever raised."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.strict_json import MAX_DEPTH, loads

FAST = settings(database=None, deadline=None, max_examples=300)

# Text as a person writes it: any code point but the surrogates (not characters) and NUL (refused).
texts = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts
# At most eight levels: far inside MAX_DEPTH, deep enough to mix objects and lists every way.
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=30,
)


def refused(body: bytes) -> json.JSONDecodeError:
    with pytest.raises(json.JSONDecodeError) as caught:
        loads(body)
    assert caught.value.doc == "", "the error never carries the body"
    return caught.value


@FAST
@given(values, st.booleans())
def test_what_json_allows_comes_back_unchanged(value: object, ascii_only: bool) -> None:
    assert loads(json.dumps(value, ensure_ascii=ascii_only).encode()) == value


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_are_a_value_or_invalid_json(body: bytes) -> None:
    error: json.JSONDecodeError | None = None
    try:
        loads(body)
    except json.JSONDecodeError as exc:
        error = exc
    assert error is None or error.doc == ""


@FAST
@given(st.dictionaries(texts, values, min_size=1, max_size=4), st.data())
def test_a_duplicate_key_at_any_place_is_refused(obj: dict[str, object], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(obj)))
    body = json.dumps(obj)[:-1] + f", {json.dumps(key)}: {json.dumps(data.draw(values))}}}"
    wrapped = data.draw(st.integers(0, 3))
    refused((("[" * wrapped) + body + ("]" * wrapped)).encode())


@FAST
@given(texts, texts)
def test_nul_anywhere_in_a_string_or_a_key_is_refused(before: str, after: str) -> None:
    hostile = before + "\x00" + after
    refused(json.dumps({"description": hostile}).encode())
    refused(json.dumps({hostile: 1}).encode())
    refused(json.dumps([[{"a": [hostile]}]]).encode())


@FAST
@given(st.integers(0xD800, 0xDFFF), texts)
def test_a_lone_surrogate_is_refused(code: int, text: str) -> None:
    escaped = json.dumps(text)[:-1] + f"\\u{code:04x}" + '"'
    refused(f'{{"description": {escaped}}}'.encode())


@given(st.integers(1, MAX_DEPTH))
def test_nesting_up_to_the_limit_is_read_and_deeper_is_refused(depth: int) -> None:
    assert loads(b"[" * depth + b"]" * depth) is not None
    refused(b"[" * (depth + MAX_DEPTH) + b"]" * (depth + MAX_DEPTH))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e309", "-1e400"])
def test_numbers_that_are_not_finite_are_refused(constant: str) -> None:
    refused(f'{{"n": {constant}}}'.encode())
    assert loads(b'{"n": 1e-400}') == {"n": 0.0}


@pytest.mark.parametrize(
    "body",
    [
        "{}".encode("utf-16"),
        "\ufeff{}".encode(),
        b'{"a": "\xff"}',
        b'{"a": "\xc0\xbc"}',
        b'{"a": "\xed\xa0\x80"}',
        b"[" * 100_000,
        b'{"n": ' + b"9" * 5000 + b"}",
        b"{} {}",
        b"",
    ],
)
def test_what_python_reads_leniently_or_crashes_on_is_invalid_json(body: bytes) -> None:
    refused(body)


def test_numbers_keep_their_kind() -> None:
    value = loads(b'{"i": 18446744073709551616, "f": -0.0, "e": 2.5e3}')
    assert value == {"i": 2**64, "f": -0.0, "e": 2500.0}
    assert isinstance(value["i"], int)
    assert math.copysign(1, value["f"]) == -1
