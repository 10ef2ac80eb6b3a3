"""The coordinator catalogue: a fixed set of exact tables at national and Land level (docs/statistics.md).

No free filtering: these tables are all a coordinator can see, so the release gate can reason about every
number they contain. Every table has a fixed domain (each month, quarter, Land and code, zeros included).

Type is the taxonomy's group letter (A-D, X) of the report's primary type, not the leaf code. At about
2,400 reports a year a leaf-code breakdown by quarter or by office would consist mostly of cells with one to
four reporters, i.e. mostly of suppression; the severity-group table already carries the "how grave"
information the leaf codes add, and the public release (K2) has every leaf code with noise. Counting the
primary type only (one cell per report) keeps the tables additive: the types of a quarter add up to its
reports, which is what the reader expects and what the gate's attacker model relies on.

Periods: monthly national figures; quarter tables for completed quarters; year tables as "year to date
through the last completed quarter" (``year_through`` = "2025-Q2"), so they change only at quarter ends,
the revision points of the dashboard.

The optional KoMo questions of the form (presumed motive, bias, trigger topic, consequences, e.g.
"considered resigning") have a year table each, national × year to date × top-level code. They are
multi-select: a report counts in every cell it named, or in "not stated" if it named none, so these tables
do not add up to the reports. Only the first incident of a report carries the answers (a further incident
was not asked), so each of their cells counts distinct reports, and its persons equal its reports.

Each cell keeps its report count, its number of distinct reporters (persons affected) and the top
reporter's report count, which is what the primary and dominance rules need.

An event that several people reported (incidents that counsellors linked as the same event, sharing an
``event_key``) is one report: it counts in the cells of its first row (the earliest receipt month, then a
fixed order), so the tables stay additive; every reporter of it still counts among the persons affected in
the cells of their own row. Such a cell may hold more persons than reports (two council members threatened in
one meeting: 2 persons, 1 report), and a cell may hold a person and no report; the release gate knows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from service.statistics.domains import (
    ANSWER_DIMENSIONS,
    NOT_STATED,
    Domains,
    months_of,
    office_cell,
    quarter_of,
)
from service.statistics.rows import ExtractRow

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TableSpec:
    id: str
    dimensions: tuple[str, ...]


NATIONAL_MONTH = TableSpec("national_month", ("month",))
NATIONAL_QUARTER_TYPE = TableSpec("national_quarter_type", ("quarter", "type_group"))
NATIONAL_QUARTER_OFFICE = TableSpec("national_quarter_office", ("quarter", "office"))
NATIONAL_QUARTER_CHANNEL = TableSpec("national_quarter_channel", ("quarter", "channel"))
NATIONAL_QUARTER_SEVERITY = TableSpec("national_quarter_severity", ("quarter", "severity"))
LAND_QUARTER = TableSpec("land_quarter", ("land", "quarter"))
LAND_YEAR_SEVERITY = TableSpec("land_year_severity", ("land", "year_through", "severity"))
NATIONAL_YEAR_TYPE_OFFICE = TableSpec("national_year_type_office", ("year_through", "type_group", "office"))
# One year table per KoMo question, with the ExtractRow field it counts.
ANSWER_TABLES: tuple[tuple[TableSpec, str], ...] = tuple(
    (TableSpec(f"national_year_{dimension}", ("year_through", dimension)), field)
    for dimension, field in ANSWER_DIMENSIONS
)

TABLES: tuple[TableSpec, ...] = (
    NATIONAL_MONTH,
    NATIONAL_QUARTER_TYPE,
    NATIONAL_QUARTER_OFFICE,
    NATIONAL_QUARTER_CHANNEL,
    NATIONAL_QUARTER_SEVERITY,
    LAND_QUARTER,
    LAND_YEAR_SEVERITY,
    NATIONAL_YEAR_TYPE_OFFICE,
    *(table for table, _ in ANSWER_TABLES),
)
TABLES_BY_ID = {table.id: table for table in TABLES}
# The only dimensions that exist; nothing finer than Land and month (a structure test holds us to it).
DIMENSIONS = frozenset(
    {"month", "quarter", "year_through", "land", "type_group", "office", "channel", "severity"}
    | {dimension for dimension, _ in ANSWER_DIMENSIONS}
)


@dataclass(frozen=True, slots=True)
class CellStats:
    reports: int
    persons: int  # distinct reporters
    top_reports: int  # reports of the reporter who contributes most (dominance rule)


EMPTY = CellStats(0, 0, 0)


@dataclass(frozen=True)
class Scope:
    """Which periods a snapshot as of a month covers: the months so far and the completed quarters."""

    year: int
    months: tuple[str, ...]
    quarters: tuple[str, ...]

    @classmethod
    def as_of(cls, month: str) -> Scope:
        year, number = int(month[:4]), int(month[5:7])
        return cls(year, months_of(year, number), tuple(f"{year}-Q{q}" for q in range(1, number // 3 + 1)))

    @property
    def latest_quarter(self) -> str | None:
        return self.quarters[-1] if self.quarters else None


@dataclass(frozen=True)
class Catalogue:
    """Exact cells of every table of a year as of a month; year tables for every completed quarter."""

    scope: Scope
    tables: dict[str, dict[Key, CellStats]]
    # Whether every reporter has one Land (one office) in the data. Attackers may assume it (one pseudonym
    # per case, and a case has one Land and one office); the gate uses it only where it is actually true.
    fixed_per_reporter: frozenset[str]
    # (type group, severity) pairs in the data: the taxonomy's pairs unless a code's severity was changed
    # after rows were written. The gate allows both, so the true table always satisfies its model.
    type_severity: frozenset[tuple[str, str]]

    def cell(self, table: str, key: Key) -> CellStats:
        return self.tables[table][key]


def table_keys(table: TableSpec, scope: Scope, domains: Domains) -> list[Key]:
    """The fixed domain of a table within a scope, in display order."""
    axes: dict[str, tuple[str, ...]] = {
        "month": scope.months,
        "quarter": scope.quarters,
        "year_through": scope.quarters,
        "land": domains.lands,
        "type_group": domains.type_groups,
        "office": domains.offices,
        "channel": domains.channels,
        "severity": domains.severities,
        **domains.answers,
    }
    keys: list[Key] = [()]
    for dimension in table.dimensions:
        keys = [(*key, value) for key in keys for value in axes[dimension]]
    return keys


def _keys_of_row(row: ExtractRow, scope: Scope, domains: Domains) -> Iterable[tuple[str, Key]]:
    """The cells one report counts in."""
    group = domains.group_of_type.get(row.primary_type)
    if group is None:
        raise ValueError("primary type outside the taxonomy: the catalogue has fixed domains")
    office = office_cell(row.office)
    severity = str(row.severity_group)
    yield NATIONAL_MONTH.id, (row.receipt_month,)
    quarter = quarter_of(row.receipt_month)
    if quarter not in scope.quarters:
        return
    yield NATIONAL_QUARTER_TYPE.id, (quarter, group)
    yield NATIONAL_QUARTER_OFFICE.id, (quarter, office)
    yield NATIONAL_QUARTER_CHANNEL.id, (quarter, row.channel)
    yield NATIONAL_QUARTER_SEVERITY.id, (quarter, severity)
    yield LAND_QUARTER.id, (row.land, quarter)
    for through in scope.quarters[scope.quarters.index(quarter) :]:
        yield LAND_YEAR_SEVERITY.id, (row.land, through, severity)
        yield NATIONAL_YEAR_TYPE_OFFICE.id, (through, group, office)
        for table, field in ANSWER_TABLES:
            codes: tuple[str, ...] | None = getattr(row, field)
            if codes is not None:
                for code in codes or (NOT_STATED,):
                    yield table.id, (through, code)


def _event_order(row: ExtractRow) -> tuple[str, ...]:
    """Which row of an event counts it: the first received, then a fixed order of the row's values."""
    return (
        row.receipt_month,
        row.reporter_pseudonym,
        row.primary_type,
        row.channel,
        row.land,
        row.office or "",
        row.incident_month or "",
        ",".join(row.type_codes),
    )


def _summarise(counter: Counter[str]) -> CellStats:
    return CellStats(sum(counter.values()), len(counter), max(counter.values())) if counter else EMPTY


def compute_catalogue(rows: Iterable[ExtractRow], as_of: str, domains: Domains) -> Catalogue:
    """Exact tables of the year of ``as_of`` from the rows received up to and including that month."""
    scope = Scope.as_of(as_of)
    contributions: dict[str, dict[Key, Counter[str]]] = {
        table.id: {key: Counter() for key in table_keys(table, scope, domains)} for table in TABLES
    }
    pairs: set[tuple[str, str]] = set()
    lands: dict[str, set[str]] = {}
    offices: dict[str, set[str]] = {}
    chosen = [row for row in rows if row.year == scope.year and row.receipt_month <= as_of]
    first_of_event: dict[str, ExtractRow] = {}
    for row in sorted(chosen, key=_event_order):
        if row.event_key is not None:
            first_of_event.setdefault(row.event_key, row)
    for row in chosen:
        # A linked event is one report, counted with its first row; its other reporters count as persons.
        counts = 1 if row.event_key is None or first_of_event[row.event_key] is row else 0
        lands.setdefault(row.reporter_pseudonym, set()).add(row.land)
        offices.setdefault(row.reporter_pseudonym, set()).add(office_cell(row.office))
        pairs.add((domains.group_of_type.get(row.primary_type, ""), str(row.severity_group)))
        for table_id, key in _keys_of_row(row, scope, domains):
            try:
                contributions[table_id][key][row.reporter_pseudonym] += counts
            except KeyError:
                raise ValueError(f"{table_id}: a value outside the fixed domain") from None
    fixed = {
        name
        for name, seen in (("land", lands), ("office", offices))
        if all(len(values) == 1 for values in seen.values())
    }
    tables = {
        table: {key: _summarise(counter) for key, counter in cells.items()}
        for table, cells in contributions.items()
    }
    return Catalogue(scope, tables, frozenset(fixed), frozenset(pairs))


def reporters_in_cells(
    rows: Iterable[ExtractRow], as_of: str, domains: Domains
) -> dict[tuple[str, Key], set[str]]:
    """Which reporters each cell contains: for tests that count who a table would single out."""
    scope = Scope.as_of(as_of)
    members: dict[tuple[str, Key], set[str]] = {}
    for row in rows:
        if row.year != scope.year or row.receipt_month > as_of:
            continue
        for table_id, key in _keys_of_row(row, scope, domains):
            members.setdefault((table_id, key), set()).add(row.reporter_pseudonym)
    return members
