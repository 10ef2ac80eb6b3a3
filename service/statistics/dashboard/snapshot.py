"""A coordinator dashboard snapshot as data: what was shown, cell by cell, and whether the gate passed.

Snapshots are persisted (as the JSON of ``as_json``) and handed back to the next snapshot's gate: what a
coordinator has seen once stays known, so every later release is checked together with all earlier ones.
A snapshot therefore stores exactly what was displayed and nothing else; in particular no hidden value,
so a stored snapshot can be shown again without another check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypedDict

Key = tuple[str, ...]

# How an unbounded interval (the attacker cannot bound a hidden number from above: the width is infinite)
# is written: JSON has no infinity, and PostgreSQL refuses the "Infinity" that Python would write.
UNBOUNDED = "unbounded"


def _width_to_json(width: float | None) -> float | str | None:
    return UNBOUNDED if width is not None and math.isinf(width) else width


def _width_from_json(value: float | str | None) -> float | None:
    if value is None:
        return None
    return math.inf if value == UNBOUNDED else float(value)


class CellJson(TypedDict):
    key: list[str]
    status: str  # a CellStatus value
    persons: int | None
    reports: int | None


class TableJson(TypedDict):
    id: str
    dimensions: list[str]
    cells: list[CellJson]


class GateJson(TypedDict):
    passed: bool
    hidden_numbers: int
    failing: int
    narrowest_width: float | str | None  # UNBOUNDED for an infinite width
    lp_solved: int


class SnapshotJson(TypedDict):
    """The stored snapshot (``StatisticsSnapshot.payload``): exactly what ``Snapshot.as_json`` writes."""

    version: Literal[1]
    as_of: str
    revision: bool
    released: bool
    gate: GateJson
    tables: list[TableJson]


class CellStatus(StrEnum):
    published = "published"  # persons and reports shown
    primary = "primary"  # 1-4 reporters: shown as "< 5", nothing else
    dominance = "dominance"  # one reporter contributes over half the reports: persons shown, reports hidden
    secondary = "secondary"  # hidden to protect another cell: nothing shown


@dataclass(frozen=True, slots=True)
class SnapshotCell:
    key: Key
    status: CellStatus
    persons: int | None  # None when hidden
    reports: int | None

    def display(self, measure: str) -> str:
        """What the dashboard prints for a measure: the number, "< 5" or a dash."""
        value = self.persons if measure == "persons" else self.reports
        if value is not None:
            return str(value)
        return "< 5" if self.status is CellStatus.primary else "–"


@dataclass(frozen=True, slots=True)
class SnapshotTable:
    id: str
    dimensions: tuple[str, ...]
    cells: tuple[SnapshotCell, ...]

    def cell(self, key: Key) -> SnapshotCell:
        for cell in self.cells:
            if cell.key == key:
                return cell
        raise KeyError(key)


@dataclass(frozen=True, slots=True)
class GateSummary:
    passed: bool
    hidden_numbers: int  # hidden numbers checked, across this and all earlier snapshots of the year
    failing: int
    narrowest_width: float | None  # the attacker's narrowest interval on a hidden number
    lp_solved: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    as_of: str  # "YYYY-MM": the last month the snapshot covers
    revision: bool  # past months recomputed (a revision point) or frozen as previously shown
    released: bool  # False: the gate failed and the snapshot must not be shown
    tables: tuple[SnapshotTable, ...]
    gate: GateSummary

    @property
    def year(self) -> int:
        return int(self.as_of[:4])

    def table(self, table_id: str) -> SnapshotTable:
        for table in self.tables:
            if table.id == table_id:
                return table
        raise KeyError(table_id)

    def as_json(self) -> SnapshotJson:
        return {
            "version": 1,
            "as_of": self.as_of,
            "revision": self.revision,
            "released": self.released,
            "gate": {
                "passed": self.gate.passed,
                "hidden_numbers": self.gate.hidden_numbers,
                "failing": self.gate.failing,
                "narrowest_width": _width_to_json(self.gate.narrowest_width),
                "lp_solved": self.gate.lp_solved,
            },
            "tables": [
                {
                    "id": table.id,
                    "dimensions": list(table.dimensions),
                    "cells": [
                        {
                            "key": list(c.key),
                            "status": c.status.value,
                            "persons": c.persons,
                            "reports": c.reports,
                        }
                        for c in table.cells
                    ],
                }
                for table in self.tables
            ],
        }

    @classmethod
    def from_json(cls, data: SnapshotJson) -> Snapshot:
        if data.get("version") != 1:
            raise ValueError("unknown snapshot version")
        gate = data["gate"]
        return cls(
            as_of=str(data["as_of"]),
            revision=bool(data["revision"]),
            released=bool(data["released"]),
            gate=GateSummary(
                passed=bool(gate["passed"]),
                hidden_numbers=int(gate["hidden_numbers"]),
                failing=int(gate["failing"]),
                narrowest_width=_width_from_json(gate["narrowest_width"]),
                lp_solved=int(gate["lp_solved"]),
            ),
            tables=tuple(
                SnapshotTable(
                    id=str(table["id"]),
                    dimensions=tuple(str(d) for d in table["dimensions"]),
                    cells=tuple(
                        SnapshotCell(
                            key=tuple(str(part) for part in c["key"]),
                            status=CellStatus(c["status"]),
                            persons=None if c["persons"] is None else int(c["persons"]),
                            reports=None if c["reports"] is None else int(c["reports"]),
                        )
                        for c in table["cells"]
                    ),
                )
                for table in data["tables"]
            ),
        )
