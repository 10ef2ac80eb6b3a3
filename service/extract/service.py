"""The classification columns of a statistics row: written at intake, rewritten on reclassification."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from service.taxonomy import Taxonomy


class Classification(TypedDict):
    """The classification columns of the extract row, by column name (set on the row as they are)."""

    primary_type: str
    type_codes: list[str]
    severity_group: int


def classification(taxonomy: Taxonomy, type_codes: list[str]) -> Classification:
    ordered = sorted(type_codes, key=lambda code: (taxonomy.severity_of([code]), code))
    return {
        "primary_type": ordered[0],
        "type_codes": sorted(type_codes),
        "severity_group": taxonomy.severity_of(type_codes),
    }


def answers_of(codes: Iterable[str]) -> list[str]:
    """A KoMo answer as the statistics row keeps it: top-level codes only, each once, sorted.

    A child carries its parent's code as a prefix ("psychological.sleep" is "psychological"): the
    catalogue counts the parents, and the row says no more than the catalogue needs (clear-columns.md).
    """
    return sorted({code.split(".", 1)[0] for code in codes})
