"""The classification columns of a statistics row: written at intake, rewritten on reclassification."""

from __future__ import annotations

from typing import Any

from service.taxonomy import Taxonomy


def classification(taxonomy: Taxonomy, type_codes: list[str]) -> dict[str, Any]:
    ordered = sorted(type_codes, key=lambda code: (taxonomy.severity_of([code]), code))
    return {
        "primary_type": ordered[0],
        "type_codes": sorted(type_codes),
        "severity_group": taxonomy.severity_of(type_codes),
    }
