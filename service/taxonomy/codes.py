"""The grammar of incident type codes, shared by the taxonomy loader and the routing engine.

Incident type codes are ``<group letter><number><optional sub-letter>``: ``D`` (group), ``A3`` (type),
``A3a`` (sub-type). The routing engine is a pure function of the policy and the report's facts, so it cannot
ask the taxonomy which codes lie below ``A3``; it reads that from the code itself. The taxonomy loader
refuses codes that break the grammar, so both always agree. Plain string prefixes would be wrong here:
``A1`` is a prefix of ``A10`` but not its parent.
"""

from __future__ import annotations

import re
from typing import NamedTuple

TYPE_CODE_PATTERN = r"^[A-Z](?:[0-9]+[a-z]?)?$"
_PARTS = re.compile(r"^(?P<group>[A-Z])(?:(?P<number>[0-9]+)(?P<sub>[a-z])?)?$")


class TypeCodeParts(NamedTuple):
    group: str
    number: str | None
    sub: str | None

    @property
    def depth(self) -> int:
        """0 for a group (``A``), 1 for a type (``A3``), 2 for a sub-type (``A3a``)."""
        return 0 if self.number is None else 1 if self.sub is None else 2


def parse_type_code(code: str) -> TypeCodeParts | None:
    match = _PARTS.match(code)
    if match is None:
        return None
    return TypeCodeParts(match["group"], match["number"], match["sub"])


def type_code_matches(code: str, selector: str) -> bool:
    """True if ``code`` is ``selector`` or lies below it: ``A3a`` matches ``A3`` and ``A``, not ``A1``."""
    parts = parse_type_code(code)
    wanted = parse_type_code(selector)
    if parts is None or wanted is None:
        return False
    if parts.group != wanted.group:
        return False
    if wanted.number is not None and parts.number != wanted.number:
        return False
    return wanted.sub is None or parts.sub == wanted.sub


def channel_matches(channel: str, selector: str) -> bool:
    """``in_person.home`` matches ``in_person`` and itself; sub-codes carry their parent and a dot."""
    return channel == selector or channel.startswith(selector + ".")
