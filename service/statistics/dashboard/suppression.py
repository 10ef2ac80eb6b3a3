"""Building a dashboard snapshot: primary and dominance rules, secondary suppression, the release gate.

Primary rule: a cell with 1..k-1 distinct reporters shows "< k" and nothing else. Dominance: a report
count is shown only if its top reporter contributes at most ``dominance_share`` of it; otherwise the cell
shows persons affected only. Zero cells are shown: "nobody" singles nobody out.

Secondary suppression is found with the attacker itself rather than with a fixed pattern rule: run the
gate's LP attacker over this snapshot and all earlier ones of the year; for every hidden number whose
interval is too narrow, hide one more cell of this snapshot, preferring a cell whose shown number binds the
attacker's bound (read from the LP duals) and among those the smallest; repeat until the gate passes.
Hiding a number only removes constraints, so intervals only widen and numbers that passed keep passing:
each round re-attacks only what failed and what was newly hidden. Numbers already shown in an earlier
snapshot cannot be taken back and are never chosen.

Revision points: at quarter ends (``revision_months``), or when a quarter has completed since the last
snapshot, the whole year is recomputed; in between, cells already shown keep their shown state and only
the new month is added. Snapshots that fail the gate are returned with ``released=False`` and are not to
be shown (and, not being shown, are not passed back as earlier snapshots).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from service.statistics.dashboard.catalogue import (
    ANSWER_TABLES,
    LAND_YEAR_SEVERITY,
    NATIONAL_YEAR_TYPE_OFFICE,
    TABLES,
    Catalogue,
    CellStats,
    Key,
    compute_catalogue,
    table_keys,
)
from service.statistics.dashboard.gate import Attacker, Finding, GateResult, Target
from service.statistics.dashboard.snapshot import (
    CellStatus,
    GateSummary,
    Snapshot,
    SnapshotCell,
    SnapshotTable,
)
from service.statistics.domains import Domains
from service.statistics.policy import CoordinatorRules
from service.statistics.rows import ExtractRow

CellRef = tuple[str, Key]
# The position of ``year_through`` in each year table's key.
_YEAR_TABLES = {
    LAND_YEAR_SEVERITY.id: 1,
    NATIONAL_YEAR_TYPE_OFFICE.id: 0,
    **{table.id: 0 for table, _ in ANSWER_TABLES},
}
_MAX_ROUNDS = 200


def primary_status(stats: CellStats, rules: CoordinatorRules) -> CellStatus:
    if 1 <= stats.persons < rules.min_reporters:
        return CellStatus.primary
    if stats.reports and stats.top_reports > rules.dominance_share * stats.reports:
        return CellStatus.dominance
    return CellStatus.published


def shown_cell(key: Key, stats: CellStats, status: CellStatus) -> SnapshotCell:
    persons = stats.persons if status in (CellStatus.published, CellStatus.dominance) else None
    reports = stats.reports if status is CellStatus.published else None
    return SnapshotCell(key, status, persons, reports)


def displayed_keys(truth: Catalogue, domains: Domains) -> dict[str, list[Key]]:
    """The cells a snapshot shows: every table's fixed domain, year tables through the latest quarter only."""
    latest = truth.scope.latest_quarter
    keys: dict[str, list[Key]] = {}
    for table in TABLES:
        cells = table_keys(table, truth.scope, domains)
        if table.id in _YEAR_TABLES:
            cells = [key for key in cells if key[_YEAR_TABLES[table.id]] == latest]
        keys[table.id] = cells
    return keys


def is_revision(as_of: str, previous: Snapshot | None, rules: CoordinatorRules) -> bool:
    """A revision recomputes the year: the first snapshot of a year, a revision month, or a quarter end
    passed since the previous snapshot (its quarter tables must appear)."""
    if previous is None:
        return True
    months = range(int(previous.as_of[5:7]) + 1, int(as_of[5:7]) + 1)
    return any(month in rules.revision_months or month % 3 == 0 for month in months)


def _assemble(
    as_of: str,
    revision: bool,
    states: dict[str, dict[Key, CellStatus]],
    truth: Catalogue,
    frozen: dict[CellRef, SnapshotCell],
) -> Snapshot:
    tables = []
    for table in TABLES:
        cells = []
        for key, status in states[table.id].items():
            old = frozen.get((table.id, key))
            cells.append(old if old is not None else shown_cell(key, truth.cell(table.id, key), status))
        tables.append(SnapshotTable(table.id, table.dimensions, tuple(cells)))
    pending = GateSummary(False, 0, 0, None, 0)
    return Snapshot(as_of, revision, False, tuple(tables), pending)


def _with_gate(snapshot: Snapshot, result: GateResult, lp_solved: int) -> Snapshot:
    summary = GateSummary(
        passed=result.passed,
        hidden_numbers=len(result.findings),
        failing=len(result.failing),
        narrowest_width=result.narrowest_width,
        lp_solved=lp_solved,
    )
    return Snapshot(snapshot.as_of, snapshot.revision, result.passed, snapshot.tables, summary)


def build_snapshot(
    rows: Iterable[ExtractRow],
    as_of: str,
    earlier: Sequence[Snapshot],
    domains: Domains,
    rules: CoordinatorRules,
    *,
    secondary: bool = True,
) -> Snapshot:
    """The dashboard snapshot as of ``as_of`` ("YYYY-MM"), checked against all earlier released snapshots.

    ``secondary=False`` applies the primary and dominance rules only; it exists for the negative control
    that shows why secondary suppression is needed, and such a snapshot fails the gate.
    """
    truth = compute_catalogue(rows, as_of, domains)
    shown = sorted(
        (s for s in earlier if s.released and s.year == truth.scope.year and s.as_of < as_of),
        key=lambda s: s.as_of,
    )
    previous = shown[-1] if shown else None
    revision = is_revision(as_of, previous, rules)
    frozen: dict[CellRef, SnapshotCell] = {}
    if not revision and previous is not None:
        frozen = {(table.id, cell.key): cell for table in previous.tables for cell in table.cells}
    states = {
        table: {key: primary_status(truth.cell(table, key), rules) for key in keys}
        for table, keys in displayed_keys(truth, domains).items()
    }
    for (table, key), cell in frozen.items():
        if key in states[table]:
            states[table][key] = cell.status
    candidate = _assemble(as_of, revision, states, truth, frozen)
    attacker = Attacker(truth, domains, rules, shown, candidate)
    lp_solved = 0
    if secondary:
        pending: list[Target] | None = None  # None: attack every hidden number
        for round_ in range(_MAX_ROUNDS):
            result = attacker.check(pending)
            lp_solved += result.lp_solved
            failing = result.failing
            if not failing and round_ == 0:
                # The first round attacked every hidden number of an unchanged candidate: it is the gate.
                return _with_gate(candidate, result, lp_solved)
            if not failing:
                break
            added = _complements(failing, states, truth, frozen)
            if not added:
                break
            for table, key in added:
                states[table][key] = CellStatus.secondary
            candidate = _assemble(as_of, revision, states, truth, frozen)
            attacker = Attacker(truth, domains, rules, shown, candidate)
            new_refs = set(added)
            pending = [f.target for f in failing] + [
                t for t in attacker.targets if (t.table, t.key) in new_refs
            ]
    # The gate proper: every hidden number of this and all earlier snapshots, attacked afresh.
    final = attacker.check()
    return _with_gate(candidate, final, lp_solved + final.lp_solved)


def _complements(
    failing: Sequence[Finding],
    states: dict[str, dict[Key, CellStatus]],
    truth: Catalogue,
    frozen: dict[CellRef, SnapshotCell],
) -> list[CellRef]:
    """One more cell to hide for each failing number: a binding shown cell if the duals name one, else the
    smallest shown cell of the same table that shares a coordinate (its period, Land or code)."""

    def hideable(ref: CellRef) -> bool:
        return (
            ref not in frozen
            and ref[1] in states[ref[0]]
            and states[ref[0]][ref[1]] in (CellStatus.published, CellStatus.dominance)
        )

    def size(ref: CellRef) -> tuple[int, int, str, Key]:
        stats = truth.cell(*ref)
        return (stats.reports, stats.persons, ref[0], ref[1])

    chosen: list[CellRef] = []
    for finding in failing:
        options = [ref for ref in finding.binding if hideable(ref)]
        if not options:
            options = [
                (finding.target.table, key)
                for key in states.get(finding.target.table, {})
                if key != finding.target.key
                and set(key) & set(finding.target.key)
                and hideable((finding.target.table, key))
            ]
        if options:
            pick = min(options, key=size)
            if pick not in chosen:
                chosen.append(pick)
    return chosen
