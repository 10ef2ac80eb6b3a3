"""The parsers of operator data: a damaged policy file is refused with a PolicyFileError that names the
problems (what `rueckhalt policy check` prints), never with a crash in the middle of loading; and a secret
from the environment is 32 random bytes or a ConfigurationError.

Each policy file of policies/ is damaged at a random place: a key removed, a value replaced by something of
another shape, a list emptied.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from service.config import PROJECT_ROOT, ConfigurationError, _decode_secret
from service.retention.policy import parse_retention
from service.routing.loader import parse_policy
from service.statistics.policy import parse_statistics_policy
from service.taxonomy import PolicyFileError
from service.taxonomy.loader import parse_taxonomy

POLICIES = PROJECT_ROOT / "policies"
PARSERS: dict[str, Callable[[object, Path], object]] = {
    "routing.yaml": parse_policy,
    "taxonomy.yaml": parse_taxonomy,
    "retention.yaml": lambda raw, file: parse_retention(raw, file, "0" * 64),
    "statistics.yaml": parse_statistics_policy,
}
ORIGINALS = {name: yaml.safe_load((POLICIES / name).read_text(encoding="utf-8")) for name in PARSERS}

odd_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def damaged(original: object, data: st.DataObject) -> object:
    """The file with one place changed: walk down at random, then remove, replace or empty what is there."""
    raw = copy.deepcopy(original)
    parent: Any = None
    key: Any = None
    node: Any = raw
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(
            st.sampled_from(sorted(node, key=str) if isinstance(node, dict) else range(len(node)))
        )
        parent, node = node, node[key]
    if parent is None:
        return data.draw(odd_values)
    action = data.draw(st.sampled_from(["remove", "replace", "empty"]))
    if action == "remove":
        del parent[key]
    elif action == "replace":
        parent[key] = data.draw(odd_values)
    else:
        parent[key] = type(node)() if isinstance(node, dict | list | str) else None
    return raw


def test_the_files_as_shipped_parse() -> None:
    for name, parse in PARSERS.items():
        parse(ORIGINALS[name], POLICIES / name)


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(database=None, deadline=None, max_examples=150)
@given(data=st.data())
def test_a_damaged_policy_file_is_refused_by_name_or_still_valid(name: str, data: st.DataObject) -> None:
    raw = damaged(ORIGINALS[name], data)
    problems: tuple[object, ...] = ("parsed",)
    try:
        PARSERS[name](raw, POLICIES / name)
    except PolicyFileError as exc:
        problems = exc.problems
    assert problems, "a refusal names what is wrong"


SECRET_REFUSALS = {
    "RUECKHALT_SESSION_KEY must be at least 32 random bytes, hex or base64 encoded",
    "RUECKHALT_SESSION_KEY is not random (too few distinct bytes)",
}


@settings(database=None, deadline=None, max_examples=300)
@given(st.text(max_size=120) | st.binary(min_size=0, max_size=64).map(bytes.hex))
def test_a_secret_is_32_random_bytes_or_refused(text: str) -> None:
    try:
        value, refusal = _decode_secret("session_key", text), ""
    except ConfigurationError as exc:
        value, refusal = b"", str(exc)
    if refusal:
        assert refusal in SECRET_REFUSALS, "one of two fixed messages: the secret is never quoted"
    else:
        assert len(value) >= 32
        assert len(set(value)) >= 8
