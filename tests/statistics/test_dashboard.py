"""Coordinator dashboard (statistics.md "Coordinator dashboard"): exact catalogue, primary and dominance
rules, secondary suppression found by the attacker, and the LP release gate across monthly snapshots with
revision points."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import pytest

from service.statistics.dashboard.catalogue import (
    ANSWER_TABLES,
    LAND_QUARTER,
    NATIONAL_MONTH,
    NATIONAL_QUARTER_SEVERITY,
    NATIONAL_QUARTER_TYPE,
    TABLES,
    Catalogue,
    compute_catalogue,
    reporters_in_cells,
    table_keys,
)
from service.statistics.dashboard.gate import Attacker, GateResult, Target, run_gate
from service.statistics.dashboard.snapshot import (
    CellStatus,
    GateSummary,
    Snapshot,
    SnapshotCell,
    SnapshotTable,
)
from service.statistics.dashboard.suppression import build_snapshot, displayed_keys, shown_cell
from service.statistics.domains import months_in_quarter
from service.statistics.rows import ExtractRow
from service.statistics.synthetic import generate
from tests.support.statistics import domains, reclassify, statistics_policy

YEAR = 2025
# Jan-Mar on the data as received; from April on, with part of Q1 reclassified by counsellors. March and
# June are revision points (June recomputes Q1 with the reclassification), April is frozen.
MONTHS = ("2025-01", "2025-02", "2025-03", "2025-04", "2025-06")


@dataclass
class History:
    before: list[ExtractRow]
    after: list[ExtractRow]
    snapshots: list[Snapshot]
    # An independent gate run per snapshot, with the data it was built from and all earlier snapshots.
    gates: list[GateResult]

    def rows_for(self, snapshot: Snapshot) -> list[ExtractRow]:
        return self.before if snapshot.as_of <= "2025-03" else self.after

    def truth(self, snapshot: Snapshot) -> Catalogue:
        return compute_catalogue(self.rows_for(snapshot), snapshot.as_of, domains())


@pytest.fixture(scope="module")
def history() -> History:
    before = generate(f"{YEAR}-12", seed=7)
    after = reclassify(before, months_in_quarter(f"{YEAR}-Q1"))
    rules = statistics_policy().coordinator
    snapshots: list[Snapshot] = []
    for month in MONTHS:
        rows = before if month <= "2025-03" else after
        snapshots.append(build_snapshot(rows, month, snapshots, domains(), rules))
    gates = [
        run_gate(
            compute_catalogue(before if s.as_of <= "2025-03" else after, s.as_of, domains()),
            domains(),
            rules,
            snapshots[:i],
            s,
        )
        for i, s in enumerate(snapshots)
    ]
    return History(before, after, snapshots, gates)


def test_gate_passes_on_every_monthly_snapshot_including_revision_points(history: History) -> None:
    """Given five monthly snapshots of synthetic data, with a reclassification between March and June
    When each is built with secondary suppression and checked with all earlier ones
    Then every snapshot is released, and an independent re-run of the gate over all five with the final
    data finds every "< 5" and dominance number protected (interval width >= 5, upper end >= 5)."""
    rules = statistics_policy().coordinator
    assert [s.released for s in history.snapshots] == [True] * len(MONTHS)
    assert all(s.gate.passed and s.gate.failing == 0 for s in history.snapshots)
    assert all(result.passed for result in history.gates)
    result = history.gates[-1]
    assert result.findings  # there is something to protect
    widths = [f.width for f in result.findings if not f.target.primary_persons]
    assert min(widths) >= rules.gate_min_width
    assert all(f.high >= rules.gate_min_upper for f in result.findings if not f.target.primary_persons)
    print(
        f"gate: {len(result.findings)} hidden numbers, narrowest width {min(widths)}, LPs {result.lp_solved}"
    )


def test_revision_points_recompute_and_other_months_freeze(history: History) -> None:
    """Given the reclassification of Q1 after the March snapshot
    Then April (no revision point) shows Q1 exactly as March did, while June (a revision point) shows the
    recomputed Q1: its severity table now counts the reports moved to severities 3 and 4."""
    march, april, june = history.snapshots[2], history.snapshots[3], history.snapshots[4]
    assert not april.revision
    assert march.revision
    assert june.revision
    for table in march.tables:
        assert april.table(table.id).cells[: len(table.cells)] == table.cells or table.id == NATIONAL_MONTH.id
    q1 = (f"{YEAR}-Q1", "4")
    shown = [s.table(NATIONAL_QUARTER_SEVERITY.id).cell(q1).reports for s in (march, june)]
    truth = [history.truth(s).cell(NATIONAL_QUARTER_SEVERITY.id, q1).reports for s in (march, june)]
    assert truth[1] > truth[0]
    assert shown == truth


def test_without_secondary_suppression_the_attacker_recovers_a_hidden_cell_exactly(history: History) -> None:
    """Given the March data with only the primary and dominance rules applied (negative control)
    When the gate attacks it
    Then the snapshot is refused, and at least one hidden number is pinned to a single value, its true one."""
    rules = statistics_policy().coordinator
    snapshot = build_snapshot(history.before, "2025-03", [], domains(), rules, secondary=False)
    truth = compute_catalogue(history.before, "2025-03", domains())
    result = run_gate(truth, domains(), rules, [], snapshot)
    assert not snapshot.released
    exact = [f for f in result.findings if f.low == f.high]
    assert exact
    for finding in exact:
        stats = truth.cell(finding.target.table, finding.target.key)
        assert finding.low == (stats.reports if finding.target.measure == "reports" else stats.persons)
    print(f"negative control: {len(exact)} of {len(result.findings)} hidden numbers recovered exactly")


def test_attacker_intervals_contain_the_truth(history: History) -> None:
    """Given every snapshot and the data it was built from
    When every hidden number is attacked
    Then the true value lies in the attacker's interval (the model only states facts that hold)."""
    for snapshot, result in zip(history.snapshots, history.gates, strict=True):
        truth = history.truth(snapshot)
        for finding in result.findings:
            stats = truth.cell(finding.target.table, finding.target.key)
            value = stats.reports if finding.target.measure == "reports" else stats.persons
            assert finding.low <= value <= finding.high


def test_the_gate_solver_gives_linprogs_bounds_and_binding_cells(history: History) -> None:
    """Given the attacker's program for the last snapshot (the largest: five snapshots shown)
    When every tenth hidden number is minimised and maximised by the gate's solver (HiGHS called directly)
    and by scipy.optimize.linprog(method="highs") over the same program
    Then both give the same bound, to the last bit, and the same binding cells."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix

    snapshot = history.snapshots[-1]
    attacker = Attacker(
        history.truth(snapshot), domains(), statistics_policy().coordinator, history.snapshots[:-1], snapshot
    )
    program = attacker.program

    def matrix(rows: list[dict[int, float]]) -> csr_matrix:
        entries = [(i, var, coef) for i, row in enumerate(rows) for var, coef in row.items()]
        at_row, at_col, values = zip(*entries, strict=True)
        return csr_matrix((values, (at_row, at_col)), shape=(len(rows), program.size))

    a_ub, b_ub = matrix([row for row, _ in program.le]), [rhs for _, rhs in program.le]
    a_eq, b_eq = matrix([row for row, _, _ in program.eq]), [rhs for _, rhs, _ in program.eq]
    tags = [tag for _, _, tag in program.eq]
    targets = attacker.targets[::10]
    assert len(targets) >= 10
    for target in targets:
        expr = attacker.expression(target)
        for sense in (1.0, -1.0):
            objective = np.zeros(program.size)
            for var, coef in expr.items():
                objective[var] = sense * coef
            reference = linprog(
                objective, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs"
            )
            if reference.status == 3:  # unbounded
                expected: tuple[float, list[tuple[str, tuple[str, ...]]]] = (math.inf, [])
            else:
                assert reference.status == 0, reference.message
                duals = reference.eqlin.marginals
                binding = [t for t, d in zip(tags, duals, strict=True) if t is not None and abs(d) > 1e-9]
                expected = (float(sense * reference.fun), binding)
            assert attacker._solver.optimise(expr, sense) == expected, target


def test_a_number_without_upper_cap_is_unbounded_as_linprog_finds_and_a_contradiction_fails_closed() -> None:
    """Given a year with one report (nearly every number hidden; presolve finds the report counts "unbounded
    or infeasible", and linprog solved again without presolve to tell which)
    When such a number is maximised
    Then the gate's solver says unbounded (its certificate: feasible, and a ray along which it grows), as
    linprog does; and a program whose constraints contradict each other is refused, not called unbounded."""
    import numpy as np
    from scipy.optimize import linprog

    from service.statistics.dashboard.program import Program, Solver

    rows = [r for r in generate("2026-12", seed=7) if r.receipt_month == "2026-12"][:1]
    rules = statistics_policy().coordinator
    snapshot = build_snapshot(rows, "2026-12", [], domains(), rules)
    attacker = Attacker(compute_catalogue(rows, "2026-12", domains()), domains(), rules, [], snapshot)
    target = next(t for t in attacker.targets if t.measure == "reports")
    program = attacker.program
    solver = Solver(program)
    expr = attacker.expression(target)
    assert solver.optimise(expr, 1.0)[0] >= 1  # an optimum first: the constraints are feasible
    assert solver.optimise(expr, -1.0) == (math.inf, [])
    objective = np.zeros(program.size)
    for var, coef in expr.items():
        objective[var] = -coef
    reference = linprog(
        objective,
        A_ub=solver._a_ub,
        b_ub=[rhs for _, rhs in program.le],
        A_eq=solver._a_eq,
        b_eq=[rhs for _, rhs, _ in program.eq],
        bounds=(0, None),
        method="highs",
    )
    assert reference.status == 3  # unbounded

    contradiction = Program()
    x, y = contradiction.new(), contradiction.new()
    contradiction.equal({x: 1.0, y: -1.0}, 0.0)
    contradiction.at_most({x: -1.0, y: 1.0}, -1.0)  # x >= y + 1, yet x = y
    with pytest.raises(RuntimeError, match="did not solve"):
        Solver(contradiction).optimise({x: 1.0}, -1.0)


def _all_shown_but(truth: Catalogue, hidden: set[tuple[str, tuple[str, ...]]]) -> Snapshot:
    tables = []
    for table in TABLES:
        keys = displayed_keys(truth, domains())[table.id]
        cells = tuple(
            SnapshotCell(key, CellStatus.secondary, None, None)
            if (table.id, key) in hidden
            else shown_cell(key, truth.cell(table.id, key), CellStatus.published)
            for key in keys
        )
        tables.append(SnapshotTable(table.id, table.dimensions, cells))
    return Snapshot("2025-03", True, False, tuple(tables), GateSummary(False, 0, 0, None, 0))


@pytest.mark.parametrize(
    ("table", "key", "why"),
    [
        (NATIONAL_QUARTER_TYPE.id, ("2025-Q1", "C"), "type group C is exactly severity 3 (taxonomy)"),
        (LAND_QUARTER.id, ("09", "2025-Q1"), "Länder add up to the quarter, which months add up to"),
    ],
)
def test_attacker_uses_the_relations_between_tables(
    history: History, table: str, key: tuple[str, str], why: str
) -> None:
    """Given a snapshot that shows everything except one cell
    When the attacker targets that cell's report count
    Then it recovers the exact value through a relation between tables ({why})."""
    truth = compute_catalogue(history.before, "2025-03", domains())
    snapshot = _all_shown_but(truth, {(table, key)})
    attacker = Attacker(truth, domains(), statistics_policy().coordinator, [], snapshot)
    finding = attacker.attack(Target(table, key, "reports", False))
    assert finding.low == finding.high == truth.cell(table, key).reports, why


def test_no_displayed_number_rests_on_one_to_four_reporters(history: History) -> None:
    """Given every snapshot
    Then every number shown belongs to a cell with 0 or at least 5 reporters, every shown report count has
    a top reporter with at most half of it, and "< 5" is shown exactly for cells with 1-4 reporters."""
    rules = statistics_policy().coordinator
    for snapshot in history.snapshots:
        truth = history.truth(snapshot) if snapshot.revision else None
        for table in snapshot.tables:
            for cell in table.cells:
                stats = (truth or history.truth(snapshot)).cell(table.id, cell.key)
                if cell.persons is not None or cell.reports is not None:
                    assert stats.persons == 0 or stats.persons >= rules.min_reporters
                if cell.reports is not None:
                    assert stats.top_reports <= rules.dominance_share * stats.reports
                if snapshot.revision:
                    assert (cell.display("persons") == "< 5") == (1 <= stats.persons < rules.min_reporters)


def _singled_out(history: History, snapshots: list[Snapshot], gates: list[GateResult] | None) -> float:
    """Share of reporters that some cell with 1-4 reporters exposes: a cell whose persons or reports the
    coordinator sees or the attacker pins to one value."""
    rules = statistics_policy().coordinator
    exposed: set[str] = set()
    reporters: set[str] = set()
    for index, snapshot in enumerate(snapshots):
        rows = history.rows_for(snapshot)
        members = reporters_in_cells(rows, snapshot.as_of, domains())
        reporters |= {row.reporter_pseudonym for row in rows if row.receipt_month <= snapshot.as_of}
        truth = compute_catalogue(rows, snapshot.as_of, domains())
        pinned: set[tuple[str, tuple[str, ...]]] = set()
        if gates is not None:
            pinned = {(f.target.table, f.target.key) for f in gates[index].findings if f.low == f.high}
        for table in snapshot.tables:
            for cell in table.cells:
                stats = truth.cell(table.id, cell.key)
                seen = cell.persons is not None or cell.reports is not None or (table.id, cell.key) in pinned
                if seen and 1 <= stats.persons < rules.min_reporters:
                    exposed |= members.get((table.id, cell.key), set())
    return len(exposed) / len(reporters)


def test_no_synthetic_reporter_is_singled_out(history: History) -> None:
    """Given the released snapshots, and for contrast the same catalogue shown exactly
    When we count reporters in a cell of 1-4 reporters that is shown or that the attacker pins down
    Then the released dashboard singles out 0 % of reporters, while the exact tables single out some."""
    share = _singled_out(history, history.snapshots, history.gates)
    exact = []
    for snapshot in history.snapshots:
        truth = history.truth(snapshot)
        tables = tuple(
            SnapshotTable(
                table.id,
                table.dimensions,
                tuple(
                    shown_cell(c.key, truth.cell(table.id, c.key), CellStatus.published) for c in table.cells
                ),
            )
            for table in snapshot.tables
        )
        exact.append(replace(snapshot, tables=tables))
    exact_share = _singled_out(history, exact, None)
    print(f"singled out: dashboard {share:.1%}, exact catalogue {exact_share:.1%}")
    assert share == 0
    assert exact_share > 0


def test_snapshots_survive_json_and_give_the_same_next_snapshot(history: History) -> None:
    """Given the snapshots stored as JSON and read back (as the integrating code persists them)
    When the April snapshot is built again from the read-back earlier snapshots
    Then the read-back snapshots equal the originals and the rebuilt April snapshot equals the first one."""
    stored = [Snapshot.from_json(json.loads(json.dumps(s.as_json()))) for s in history.snapshots]
    assert stored == history.snapshots
    again = build_snapshot(history.after, "2025-04", stored[:3], domains(), statistics_policy().coordinator)
    assert again == history.snapshots[3]


def test_catalogue_counts_and_fixed_domains(history: History) -> None:
    """Given the synthetic year as of June
    Then every table lists its whole fixed domain (zeros included), monthly reports and persons match a
    direct count, and quarter tables add up to their months."""
    truth = compute_catalogue(history.before, "2025-06", domains())
    for table in TABLES:
        assert list(truth.tables[table.id]) == table_keys(table, truth.scope, domains())
    for month in truth.scope.months:
        in_month = [row for row in history.before if row.receipt_month == month]
        stats = truth.cell(NATIONAL_MONTH.id, (month,))
        assert stats.reports == len(in_month)
        assert stats.persons == len({row.reporter_pseudonym for row in in_month})
    for quarter in truth.scope.quarters:
        months = sum(truth.cell(NATIONAL_MONTH.id, (m,)).reports for m in months_in_quarter(quarter))
        for table in (NATIONAL_QUARTER_TYPE, NATIONAL_QUARTER_SEVERITY):
            quarter_cells = [s for key, s in truth.tables[table.id].items() if key[0] == quarter]
            assert sum(s.reports for s in quarter_cells) == months
    assert any(s.reports == 0 for s in truth.tables[NATIONAL_QUARTER_SEVERITY.id].values())


def test_the_komo_tables_count_each_report_once_per_answer_under_the_same_rules(history: History) -> None:
    """Given the synthetic year, whose reporters answered the optional KoMo questions on their first report
    Then each KoMo table lists the taxonomy's top-level codes and "not stated" for the year so far, counts a
    report in every option it named (persons equal reports: one answer per report), "not stated" plus the
    reports that named something make up the reports asked, and the released June snapshot shows a cell of
    one to four reports as "< 5" in both measures."""
    june = history.snapshots[-1]
    truth = history.truth(june)
    rows = [row for row in history.rows_for(june) if row.receipt_month <= june.as_of]
    asked = [row for row in rows if row.consequences is not None]
    assert len(asked) == len({row.reporter_pseudonym for row in rows}), "one answer per reporter"
    small = 0
    for table, field in ANSWER_TABLES:
        dimension = table.dimensions[1]
        shown = june.table(table.id)
        assert [cell.key for cell in shown.cells] == [
            ("2025-Q2", code) for code in domains().answers[dimension]
        ]
        named = 0
        for cell in shown.cells:
            stats = truth.cell(table.id, cell.key)
            assert stats.persons == stats.reports
            code = cell.key[1]
            expected = sum(
                1
                for row in asked
                if (code in getattr(row, field)) or (code == "not_stated" and not getattr(row, field))
            )
            assert stats.reports == expected
            if 1 <= stats.persons < 5:
                small += 1
                assert cell.display("persons") == cell.display("reports") == "< 5"
        named = sum(1 for row in asked if getattr(row, field))
        assert truth.cell(table.id, ("2025-Q2", "not_stated")).reports + named == len(asked)
    assert small, "some option was chosen by one to four reporters"
    resigning = truth.cell("national_year_consequence", ("2025-Q2", "considered_resigning"))
    assert resigning.reports > 5


def test_primary_and_dominance_rules_on_a_small_example() -> None:
    """Given three reporters in Bremen and, in Bavaria, six reporters of whom one filed ten reports
    When the March snapshot is built
    Then Bremen's quarter shows "< 5" and nothing else, Bavaria's shows its 6 persons but no report count."""

    def row(who: str, land: str, month: str) -> ExtractRow:
        return ExtractRow(who, month, None, land, "A1", ("A1",), "email", "council_member", 5)

    rows = [row(f"hb{i}", "04", "2025-01") for i in range(3)]
    rows += [row(f"by{i}", "09", "2025-02") for i in range(6)] + [row("by0", "09", "2025-03")] * 9
    snapshot = build_snapshot(
        rows, "2025-03", [], domains(), statistics_policy().coordinator, secondary=False
    )
    bremen = snapshot.table(LAND_QUARTER.id).cell(("04", "2025-Q1"))
    bavaria = snapshot.table(LAND_QUARTER.id).cell(("09", "2025-Q1"))
    assert (bremen.status, bremen.display("persons"), bremen.display("reports")) == (
        CellStatus.primary,
        "< 5",
        "< 5",
    )
    assert (bavaria.status, bavaria.persons, bavaria.reports) == (CellStatus.dominance, 6, None)
