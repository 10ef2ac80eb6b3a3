"""Public releases: differentially private tables K1-K5 (docs/statistics.md, ``policies/statistics.yaml``).

Privacy unit is the reporter-year, pure epsilon-DP. Each table is one OpenDP discrete-Laplace measurement
over a fixed-domain integer vector; its scale is sensitivity / epsilon and OpenDP's own privacy map is
checked against the table's share before any noise is drawn, so a policy and the code cannot drift apart
unnoticed. The tables see disjoint noise and their epsilons add up (sequential composition).

Why the pieces look as they do:
- Noise comes from OpenDP only (exact discrete Laplace on integers). This module imports no ``random`` or
  ``numpy.random``: floating-point samplers leak through their low bits, and a structure test checks that
  nothing on this path imports one.
- Contribution bounding happens here, before aggregation, in receipt order, per reporter and depending only on
  that reporter's rows: adding or removing one reporter changes nothing else, which is what makes the declared
  sensitivities true. Report counts count an event that counsellors linked (rows sharing an ``event_key``)
  once per cell; a reporter's removal still lowers each cell by at most their own kept rows. Land and office
  are counted once per reporter-year (the first in receipt order) even though a pseudonym belongs to one case,
  because the guarantee must not rest on the data.
- Domains are fixed (every month, Land and code of the taxonomy, zeros included).
- Raw noisy values may be negative and are kept for downloads (clamping biases sums); ``value`` clamps to
  zero for display.

Everything here is a pure function of its inputs apart from OpenDP's noise. Spending the budget, storing
the release before anyone sees it and never re-noising are the ledger's job, outside this module.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, TypedDict

from service.statistics.domains import Domains, months_of, office_cell
from service.statistics.policy import Dimension, Measure, PublicPolicy, PublicTable
from service.statistics.rows import ExtractRow


@functools.cache
def _opendp() -> Any:
    """OpenDP, imported on first use: only releases (CLI) measure; the api process reads stored releases
    and need not carry the library (about 40 MB of RSS)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


class Measurement(Protocol):
    """What this module uses of an OpenDP measurement (OpenDP ships no type information for its prelude)."""

    def __call__(self, arg: list[int], /) -> list[int]: ...

    def map(self, d_in: int, /) -> float: ...


# OpenDP rounds its privacy map up; a table at exactly its share must not be refused for 1e-16.
_MAP_SLACK = 1e-9


class PublicCellJson(TypedDict):
    key: str
    value: int
    raw: int
    half_width: int


class PublicTableJson(TypedDict):
    id: str
    measure: str
    by: str
    sensitivity: int
    epsilon: float
    scale: float
    cells: list[PublicCellJson]


class PublicReleaseJson(TypedDict):
    """The stored release (``PublicReleaseRecord.payload``): exactly what ``PublicRelease.as_json`` writes,
    and what the API, the downloads and the open data hand out."""

    version: Literal[1]
    year: int
    privacy_unit: str
    epsilon_spent: float
    epsilon_by_table: dict[str, float]
    interval_confidence: float
    tables: list[PublicTableJson]


@dataclass(frozen=True, slots=True)
class PublicCell:
    key: str
    value: int  # what the knowledge base shows: the noisy count, negatives shown as 0
    raw: int  # the noisy count as drawn, possibly negative: for downloads and for sums
    half_width: int  # the interval value +- half_width holds the true count with the policy's confidence


def shown_interval(value: int, half_width: int) -> tuple[int, int]:
    """The interval shown with a published figure (the page, the open-data CSVs): value +- half_width,
    the lower end no lower than 0 as the figure itself."""
    return max(0, value - half_width), value + half_width


@dataclass(frozen=True, slots=True)
class PublicTableRelease:
    id: str
    measure: str
    by: str
    sensitivity: int
    epsilon: float
    scale: float
    cells: tuple[PublicCell, ...]


@dataclass(frozen=True, slots=True)
class PublicRelease:
    year: int
    privacy_unit: str
    epsilon_spent: float
    interval_confidence: float
    tables: tuple[PublicTableRelease, ...]

    def table(self, table_id: str) -> PublicTableRelease:
        for table in self.tables:
            if table.id == table_id:
                return table
        raise KeyError(f"no table {table_id!r} in this release")

    def epsilon_by_table(self) -> dict[str, float]:
        return {table.id: table.epsilon for table in self.tables}

    def as_json(self) -> PublicReleaseJson:
        """The JSON document: what the release store keeps and the public export reads."""
        return {
            "version": 1,
            "year": self.year,
            "privacy_unit": self.privacy_unit,
            "epsilon_spent": self.epsilon_spent,
            "epsilon_by_table": self.epsilon_by_table(),
            "interval_confidence": self.interval_confidence,
            "tables": [
                {
                    "id": table.id,
                    "measure": table.measure,
                    "by": table.by,
                    "sensitivity": table.sensitivity,
                    "epsilon": table.epsilon,
                    "scale": table.scale,
                    "cells": [
                        {"key": c.key, "value": c.value, "raw": c.raw, "half_width": c.half_width}
                        for c in table.cells
                    ],
                }
                for table in self.tables
            ],
        }

    @classmethod
    def from_json(cls, data: PublicReleaseJson) -> PublicRelease:
        return cls(
            year=int(data["year"]),
            privacy_unit=str(data["privacy_unit"]),
            epsilon_spent=float(data["epsilon_spent"]),
            interval_confidence=float(data["interval_confidence"]),
            tables=tuple(
                PublicTableRelease(
                    id=str(table["id"]),
                    measure=str(table["measure"]),
                    by=str(table["by"]),
                    sensitivity=int(table["sensitivity"]),
                    epsilon=float(table["epsilon"]),
                    scale=float(table["scale"]),
                    cells=tuple(
                        PublicCell(str(c["key"]), int(c["value"]), int(c["raw"]), int(c["half_width"]))
                        for c in table["cells"]
                    ),
                )
                for table in data["tables"]
            ),
        )


def domain_of(dimension: Dimension, year: int, domains: Domains) -> tuple[str, ...]:
    """The fixed public domain of a dimension: every month of the year, every Land, every code."""
    match dimension:
        case Dimension.month:
            return months_of(year)
        case Dimension.type:
            return domains.types
        case Dimension.land:
            return domains.lands
        case Dimension.office:
            return domains.offices
        case Dimension.channel:
            return domains.channels
        case Dimension.severity:
            return domains.severities


_CELL_OF: dict[Dimension, Callable[[ExtractRow], str]] = {
    Dimension.month: lambda row: row.receipt_month,
    Dimension.type: lambda row: row.primary_type,
    Dimension.land: lambda row: row.land,
    Dimension.office: lambda row: office_cell(row.office),
    Dimension.channel: lambda row: row.channel,
    Dimension.severity: lambda row: str(row.severity_group),
}


def _receipt_order(row: ExtractRow) -> tuple[str, str, str, str, str]:
    """Receipt order within a reporter. The extract keeps only the month (no exact time, deliberately), so
    ties within a month are broken by the row's content: deterministic and a function of that reporter's
    rows alone, which is all the bound's stability needs."""
    return (
        row.receipt_month,
        row.incident_month or "",
        row.primary_type,
        row.channel,
        ",".join(row.type_codes),
    )


def bounded_counts(
    rows: Iterable[ExtractRow],
    year: int,
    policy: PublicPolicy,
    domains: Domains,
    *,
    bounded: bool = True,
) -> dict[str, tuple[int, ...]]:
    """Exact counts per table over its fixed domain after contribution bounding (the deterministic half of
    the mechanism). ``bounded=False`` exists only for the audit's negative control."""
    by_reporter: dict[str, list[ExtractRow]] = {}
    for row in rows:
        if row.year == year:
            by_reporter.setdefault(row.reporter_pseudonym, []).append(row)
    counts: dict[str, tuple[int, ...]] = {}
    for table in policy.tables:
        domain = domain_of(table.by, year, domains)
        index = {key: position for position, key in enumerate(domain)}
        cell_of = _CELL_OF[table.by]
        # What each cell counts: one entry per reporter (persons), per report, or per linked event.
        seen: list[set[object]] = [set() for _ in domain]
        for pseudonym, reporter_rows in by_reporter.items():
            ordered = sorted(reporter_rows, key=_receipt_order)
            for position, (key, row) in enumerate(_contributions(table, policy, ordered, cell_of, bounded)):
                try:
                    cell = seen[index[key]]
                except KeyError:
                    # A code outside the fixed domain would be a data-dependent cell: refuse, do not drop.
                    raise ValueError(f"{table.id}: {table.by} value outside the public domain") from None
                cell.add(row.event_key or (pseudonym, position))
        counts[table.id] = tuple(len(cell) for cell in seen)
    return counts


def _contributions(
    table: PublicTable,
    policy: PublicPolicy,
    ordered: Sequence[ExtractRow],
    cell_of: Callable[[ExtractRow], str],
    bounded: bool,
) -> list[tuple[str, ExtractRow]]:
    """The cells one reporter adds to, each with the row that adds, in receipt order and within the policy's
    bounds. A report count adds the row's event once per cell (``bounded_counts``): an event that several
    reporters' rows of one cell share counts once there. That keeps the sensitivities: removing a reporter
    removes at most their kept rows, and each of those lowers one cell by at most one."""
    if table.measure is Measure.reports:
        kept = ordered[: policy.bounds.reports_per_reporter] if bounded else ordered
        return [(cell_of(row), row) for row in kept]
    first_in_cell: dict[str, ExtractRow] = {}
    for row in ordered:
        first_in_cell.setdefault(cell_of(row), row)
    # Persons: the reporter once per cell, never an event (a person affected is a person).
    firsts = [(cell, replace(row, event_key=None)) for cell, row in first_in_cell.items()]
    if not bounded:
        return firsts
    if table.by is Dimension.month:
        return firsts[: policy.bounds.months_per_reporter]
    return firsts[:1]  # Land, office: one cell per reporter-year


@functools.lru_cache(maxsize=64)
def _measurement(size: int, scale: float) -> Measurement:
    dp = _opendp()
    space = dp.vector_domain(dp.atom_domain(T="i64"), size=size), dp.l1_distance(T="i64")
    measurement: Measurement = dp.m.make_laplace(*space, scale=scale)
    return measurement


def checked_measurement(table: PublicTable, size: int) -> Measurement:
    """The OpenDP measurement of a table, refused unless OpenDP's map confirms its epsilon share."""
    return _checked_measurement(table.id, size, table.scale, table.sensitivity, table.epsilon)


# The map is a pure function of the measurement and the sensitivity: asked once per table shape, not on every
# draw (it cost a third of each noisy_counts call, the empirical DP audits draw 12,000 times). A refusal is an
# exception, which lru_cache does not store: a refused table is refused on every call.
@functools.lru_cache(maxsize=64)
def _checked_measurement(
    table_id: str, size: int, scale: float, sensitivity: int, epsilon: float
) -> Measurement:
    measurement = _measurement(size, scale)
    spent = float(measurement.map(sensitivity))
    if spent > epsilon * (1 + _MAP_SLACK):
        raise ValueError(f"{table_id}: OpenDP reports epsilon {spent} above the table's share {epsilon}")
    return measurement


def noisy_counts(counts: dict[str, tuple[int, ...]], policy: PublicPolicy) -> dict[str, tuple[int, ...]]:
    """The randomised half of the mechanism: discrete Laplace noise on each bounded table."""
    noisy: dict[str, tuple[int, ...]] = {}
    for table in policy.tables:
        vector = counts[table.id]
        measurement = checked_measurement(table, len(vector))
        noisy[table.id] = tuple(int(value) for value in measurement(list(vector)))
    return noisy


def interval_half_width(scale: float, confidence: float) -> int:
    """Smallest k with P(|Z| <= k) >= confidence for discrete Laplace Z (P(z) proportional to e^(-|z|/scale)).

    P(|Z| > k) = 2 e^(-(k+1)/scale) / (1 + e^(-1/scale)); solved for k, then nudged against rounding.
    Deterministic arithmetic about the noise, not noise.
    """
    alpha = 1 - confidence

    def tail(k: int) -> float:
        return 2 * math.exp(-(k + 1) / scale) / (1 + math.exp(-1 / scale))

    k = max(0, math.ceil(-scale * math.log(alpha * (1 + math.exp(-1 / scale)) / 2) - 1))
    while k > 0 and tail(k - 1) <= alpha:
        k -= 1
    while tail(k) > alpha:
        k += 1
    return k


def release(rows: Iterable[ExtractRow], year: int, policy: PublicPolicy, domains: Domains) -> PublicRelease:
    """The public tables of ``year`` with noise drawn once; the caller stores them before anyone sees them."""
    counts = bounded_counts(rows, year, policy, domains)
    noisy = noisy_counts(counts, policy)
    tables: list[PublicTableRelease] = []
    for table in policy.tables:
        half_width = interval_half_width(table.scale, policy.interval_confidence)
        domain = domain_of(table.by, year, domains)
        cells = tuple(
            PublicCell(key=key, value=max(raw, 0), raw=raw, half_width=half_width)
            for key, raw in zip(domain, noisy[table.id], strict=True)
        )
        tables.append(
            PublicTableRelease(
                id=table.id,
                measure=table.measure.value,
                by=table.by.value,
                sensitivity=table.sensitivity,
                epsilon=table.epsilon,
                scale=table.scale,
                cells=cells,
            )
        )
    return PublicRelease(
        year=year,
        privacy_unit=policy.privacy_unit,
        epsilon_spent=policy.epsilon_of_tables,
        interval_confidence=policy.interval_confidence,
        tables=tuple(tables),
    )
