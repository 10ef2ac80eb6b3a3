"""Perpetrator identifiers and matches as the pages show them (labels only; values are escaped and isolated
by the templates' ``user_text``)."""

from __future__ import annotations

from collections.abc import Sequence

from service.cases.identifiers import TypedIdentifier
from service.i18n import Translator
from service.matching.normalise import PLATFORM_NAMES


def identifier_items(typed: Sequence[TypedIdentifier], t: Translator) -> list[dict[str, str]]:
    """Each identifier as typed with the label of its kind (and a handle's platform)."""
    items = []
    for item in typed:
        kind = t(f"matching.kind.{item['kind']}")
        platform = item.get("platform")
        if platform:
            name = (
                t("matching.platform.other")
                if platform == "other"
                else PLATFORM_NAMES.get(platform, platform)
            )
            kind = f"{kind} ({name})"
        items.append({"kind": kind, "value": str(item["value"])})
    return items


def kind_labels(kinds: tuple[str, ...], t: Translator) -> str:
    return ", ".join(t(f"matching.kind.{kind}") for kind in kinds)
