"""The perpetrator identifiers as the reporter typed them, sealed with the case key (``case_file``'s
``perpetrator_ciphertext``): for the reporter and the holders of the case, never for the matching.

Part of the case file, so it lives in cases: the matching (service/matching) keeps only keyed tokens and
never opens this column; the intake seals it, the case page and a merge open it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NotRequired, TypedDict, cast

from service.crypto import Context, open_sealed, seal

PURPOSE = "perpetrator_ids"


class TypedIdentifier(TypedDict):
    """One identifier as the reporter typed it (service.matching.schemas.PerpetratorIdentifier, dumped)."""

    kind: str
    value: str
    # For a handle: the platform's code; absent or None for every other kind.
    platform: NotRequired[str | None]


def seal_typed(data_key: bytes, case_id: str, typed: Sequence[TypedIdentifier]) -> bytes | None:
    """Sealed list of {kind, value, platform}; None for none."""
    if not typed:
        return None
    return seal(data_key, json.dumps(typed, ensure_ascii=False).encode(), Context(PURPOSE, case_id=case_id))


def open_typed(data_key: bytes, case_id: str, sealed: bytes | None) -> list[TypedIdentifier]:
    if sealed is None:
        return []
    typed = json.loads(open_sealed(data_key, sealed, Context(PURPOSE, case_id=case_id)))
    return [cast(TypedIdentifier, dict(item)) for item in typed]
