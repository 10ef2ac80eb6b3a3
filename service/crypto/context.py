"""What a ciphertext is bound to: its associated data."""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields

_PREFIX = b"rueckhalt/ctx/v1"


@dataclass(frozen=True)
class Context:
    """Where a ciphertext belongs; a ciphertext opened under any other context fails.

    Changing the field order or the encoding breaks every stored ciphertext: add new fields at the end
    and bump the prefix instead.
    """

    purpose: str
    case_id: str = ""
    field: str = ""
    record_id: str = ""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, str):
                raise TypeError(f"Context.{item.name} must be str")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"Context.{item.name} is not encodable as UTF-8") from None
        if not self.purpose:
            raise ValueError("Context.purpose must not be empty")

    def encode(self) -> bytes:
        # Length prefixes make the encoding injective: ("ab", "c") and ("a", "bc") never collide.
        parts = [_PREFIX]
        for value in (self.purpose, self.case_id, self.field, self.record_id):
            data = value.encode("utf-8")
            parts.append(struct.pack(">I", len(data)))
            parts.append(data)
        return b"".join(parts)
