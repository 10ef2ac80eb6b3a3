"""The one JSON decoder of the API: RFC 8259 text, read one way only.

Python's ``json.loads`` is lenient where a hardened service must not be: it takes the last of duplicate
keys (a proxy or log reader that takes the first sees a different request), accepts ``NaN`` and
``Infinity``, turns ``1e309`` into infinity, guesses UTF-16 and UTF-32 from the bytes, and hands on NUL
characters and lone surrogates, which PostgreSQL refuses to store and UTF-8 cannot encode. Each of these
is refused here as invalid JSON (the API's 422), before any handler sees the body.
"""

from __future__ import annotations

import json
import math
from typing import Any

# Deeper than any request the API takes (three levels); far below the recursion limit of the parser.
MAX_DEPTH = 32


class _Refused(ValueError):
    """A reason to refuse that ``json.loads`` itself does not have."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _Refused("duplicate key")
    return found


def _constant(name: str) -> Any:
    raise _Refused("NaN and Infinity are not JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("number out of range")
    return value


def _clean_text(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False  # a lone surrogate (\ud800): not a character, and not storable
    return True


def _check(value: Any) -> None:
    """Every string (values and keys) is text, and nothing is nested deeper than MAX_DEPTH."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if not _clean_text(item):
                raise _Refused("NUL or a lone surrogate in a string")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise _Refused("nested too deeply")
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)


def loads(body: bytes) -> Any:
    """The value of a JSON body; ``json.JSONDecodeError`` (without the body in it) for anything refused."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float)
        _check(value)
    except json.JSONDecodeError as exc:
        # The same error without the document: nothing that travels on may carry the body.
        raise json.JSONDecodeError(exc.msg, "", exc.pos) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError also covers integers longer than Python converts (4,300 digits) and _Refused.
        reason = str(exc) if isinstance(exc, _Refused) else type(exc).__name__
        raise json.JSONDecodeError(reason, "", 0) from None
    return value
