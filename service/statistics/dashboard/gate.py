"""The release gate of the coordinator dashboard: a linear-programming attacker (docs/statistics.md).

Before a snapshot is shown, an attacker who sees every number of this snapshot and of all earlier ones of
the year tries to pin down each hidden number. For each hidden number it minimises and maximises that
number over everything consistent with what was shown (HiGHS, as ``scipy.optimize.linprog`` runs it); the
snapshot passes only if every interval is at least ``gate_min_width`` wide with an upper end of at least
``gate_min_upper``, and if no "< 5" cell can be narrowed below 1..4 reporters.

What the attacker knows, beyond the shown numbers:
- The additive structure. Report counts of all tables are margins of one hidden table. The model's
  variables are that table's margins over (quarter, Land, type x severity), (quarter, type x severity,
  office), (quarter, channel) and months, tied together on their common margins (a junction tree, so any
  consistent set of these margins extends to a full table: the model is exact, not merely valid).
  Quarters are sums of months, year-to-date tables sums of quarters.
- The taxonomy: severity is that of the primary type, so type group and severity only combine in the pairs
  the taxonomy allows (type C is exactly severity 3; that alone would let a severity table reveal a
  suppressed type cell).
- Persons (distinct reporters) are not additive over months or types, but the attacker knows their bounds:
  persons <= reports (in every cell where it holds: an event several people reported is one report), a union
  has at least the persons of each part and at most their sum, and a reporter has one Land and one office (one
  pseudonym per case), so persons add up over Länder and offices. The last is used only where the data bears
  it out, so the true tables always satisfy the model.
- The KoMo tables (multi-select answers on a report's first incident). Per quarter, the reports that were
  asked (first incidents) are at most the quarter's reports and persons; per question, "not stated" plus
  the reports that named something equals those asked, each option's count is at most the latter and their
  sum at least it. A report names an option once, so an option's persons equal its reports where that is
  true (a linked event counts once as a report).
- The rules: "< 5" means 1..4 reporters; a hidden report count next to a shown person count (dominance)
  means the top reporter has more than half, hence reports >= 2 persons - 1.
- Earlier snapshots. One variable per cell stands for its current true value. A number shown earlier is a
  constraint while it still equals the truth; after a revision changed it, it describes old data and is
  left out. (An attacker who knew exactly what a revision changed would learn more; the design revises
  only at quarter ends, and that residual risk is accepted and documented here.)

What must stay protected: the numbers hidden by the primary and the dominance rule, in this snapshot and
every earlier one. docs/statistics.md asks the width/upper-end test of "every suppressed cell"; applied to
cells hidden only as complements that is both pointless and impossible. Pointless, because such a cell holds 0
or at least 5 reporters and could have been shown on its own (its value matters only as a way to the sensitive
cells, and the LP already uses every way at once). Impossible, because a complement inside a small Land
whose own total is "< 5" is known to hold at most 4 persons, so no pattern could ever give it an interval
of width 5; the gate would block the dashboard for nothing.

The LP relaxation gives the attacker real-valued solutions, so its intervals contain those of an integer
attacker; rounding them inwards to integers is what an integer attacker could at best conclude.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from service.statistics.dashboard.catalogue import (
    ANSWER_TABLES,
    LAND_QUARTER,
    LAND_YEAR_SEVERITY,
    NATIONAL_MONTH,
    NATIONAL_QUARTER_CHANNEL,
    NATIONAL_QUARTER_OFFICE,
    NATIONAL_QUARTER_SEVERITY,
    NATIONAL_QUARTER_TYPE,
    NATIONAL_YEAR_TYPE_OFFICE,
    Catalogue,
    CellStats,
    Key,
)
from service.statistics.dashboard.program import CellRef, Expr, Program, Solver, add, minus
from service.statistics.dashboard.snapshot import CellStatus, Snapshot
from service.statistics.domains import NOT_STATED, Domains, months_in_quarter
from service.statistics.policy import CoordinatorRules

# Tolerance for reading HiGHS results back as integers (the LP's bounds are real-valued).
_INTEGRAL = 1e-6


@dataclass(frozen=True, slots=True)
class Target:
    table: str
    key: Key
    measure: str  # "reports" or "persons"
    # primary "< 5" persons: the attacker must not narrow 1..4; any other hidden number: width and upper end.
    # The reports of a "< 5" cell of a KoMo table count too: they equal its persons (one answer per report),
    # so "< 5" says 1..4 of them as well, and they need the same protection, not more.
    primary_persons: bool


@dataclass(frozen=True, slots=True)
class Finding:
    target: Target
    low: float  # the attacker's bounds (high may be infinite)
    high: float
    passes: bool
    # Cells of the snapshot under test whose shown numbers bind these bounds: hiding one of them is what
    # secondary suppression tries first.
    binding: tuple[CellRef, ...]

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class GateResult:
    passed: bool
    findings: tuple[Finding, ...]
    lp_solved: int

    @property
    def failing(self) -> tuple[Finding, ...]:
        return tuple(finding for finding in self.findings if not finding.passes)

    @property
    def narrowest_width(self) -> float | None:
        """The attacker's narrowest interval on a number held to the width test ("< 5" persons excluded:
        their 1..4 is narrow by definition)."""
        widths = [f.width for f in self.findings if not f.target.primary_persons]
        return min(widths, default=None)


def _holds(stats: CellStats, persons_before: int, reports_before: int) -> bool:
    """Whether a cell's persons grew by no more than its reports since (0, 0: persons <= reports)."""
    return stats.persons - persons_before <= stats.reports - reports_before


class Attacker:
    """The attacker's model of one year: built from the truth (to know which facts hold), the snapshots
    already shown and the candidate snapshot (whose numbers are the only ones that can still be hidden)."""

    def __init__(
        self,
        truth: Catalogue,
        domains: Domains,
        rules: CoordinatorRules,
        shown: Sequence[Snapshot],
        candidate: Snapshot,
    ) -> None:
        self.truth = truth
        self.rules = rules
        self.program = Program()
        self._reports: dict[CellRef, Expr] = {}
        self._persons: dict[CellRef, int] = {}
        # Per quarter: the reports that were asked the KoMo questions (first incidents).
        self._asked: dict[str, int] = {}
        self._structure(domains)
        self.targets = self._observations([*shown], candidate)
        self._solver = Solver(self.program)

    # -- the structure every year has ----------------------------------------------------------------------
    def _structure(self, domains: Domains) -> None:
        p, scope, truth = self.program, self.truth.scope, self.truth
        pairs = sorted(set(domains.type_severity) | truth.type_severity)
        months = {month: p.new() for month in scope.months}
        by_land: dict[tuple[str, str, tuple[str, str]], int] = {}  # (quarter, land, pair)
        by_office: dict[tuple[str, tuple[str, str], str], int] = {}  # (quarter, pair, office)
        by_channel: dict[tuple[str, str], int] = {}
        quarter_reports: dict[str, Expr] = {}
        for quarter in scope.quarters:
            for land in domains.lands:
                for pair in pairs:
                    by_land[quarter, land, pair] = p.new()
            for pair in pairs:
                for office in domains.offices:
                    by_office[quarter, pair, office] = p.new()
            for channel in domains.channels:
                by_channel[quarter, channel] = p.new()
            total = {by_land[quarter, land, pair]: 1.0 for land in domains.lands for pair in pairs}
            quarter_reports[quarter] = total
            for pair in pairs:
                p.equal(
                    minus(
                        {by_land[quarter, land, pair]: 1.0 for land in domains.lands},
                        {by_office[quarter, pair, office]: 1.0 for office in domains.offices},
                    ),
                    0.0,
                )
            p.equal(minus({by_channel[quarter, c]: 1.0 for c in domains.channels}, total), 0.0)
            p.equal(minus({months[m]: 1.0 for m in months_in_quarter(quarter)}, total), 0.0)

        def land_sum(quarters: Iterable[str], land: str, keep: set[tuple[str, str]]) -> Expr:
            return {by_land[q, land, pair]: 1.0 for q in quarters for pair in pairs if pair in keep}

        def office_sum(quarters: Iterable[str], keep: set[tuple[str, str]], offices: Iterable[str]) -> Expr:
            return {
                by_office[q, pair, o]: 1.0
                for q in quarters
                for pair in pairs
                if pair in keep
                for o in offices
            }

        every = set(pairs)
        of_group = {g: {pair for pair in pairs if pair[0] == g} for g in domains.type_groups}
        of_severity = {s: {pair for pair in pairs if pair[1] == s} for s in domains.severities}
        reports = self._reports
        for month in scope.months:
            reports[NATIONAL_MONTH.id, (month,)] = {months[month]: 1.0}
        for i, quarter in enumerate(scope.quarters):
            so_far = scope.quarters[: i + 1]
            for g in domains.type_groups:
                reports[NATIONAL_QUARTER_TYPE.id, (quarter, g)] = add(
                    *(land_sum([quarter], land, of_group[g]) for land in domains.lands)
                )
            for s in domains.severities:
                reports[NATIONAL_QUARTER_SEVERITY.id, (quarter, s)] = add(
                    *(land_sum([quarter], land, of_severity[s]) for land in domains.lands)
                )
            for o in domains.offices:
                reports[NATIONAL_QUARTER_OFFICE.id, (quarter, o)] = office_sum([quarter], every, [o])
            for c in domains.channels:
                reports[NATIONAL_QUARTER_CHANNEL.id, (quarter, c)] = {by_channel[quarter, c]: 1.0}
            for land in domains.lands:
                reports[LAND_QUARTER.id, (land, quarter)] = land_sum([quarter], land, every)
                for s in domains.severities:
                    reports[LAND_YEAR_SEVERITY.id, (land, quarter, s)] = land_sum(
                        so_far, land, of_severity[s]
                    )
            for g in domains.type_groups:
                for o in domains.offices:
                    reports[NATIONAL_YEAR_TYPE_OFFICE.id, (quarter, g, o)] = office_sum(
                        so_far, of_group[g], [o]
                    )
        self._answers_structure(domains, quarter_reports)
        for ref in reports:
            if ref[1] not in truth.tables[ref[0]]:
                raise ValueError(f"attacker model and catalogue disagree on {ref}")
        self._persons_structure(domains)

    def _answers_structure(self, domains: Domains, quarter_reports: dict[str, Expr]) -> None:
        """The KoMo tables: multi-select counts over the reports asked in each quarter."""
        p, scope = self.program, self.truth.scope
        for quarter in scope.quarters:
            asked = self._asked[quarter] = p.new()
            p.at_most(minus({asked: 1.0}, quarter_reports[quarter]), 0.0)
        for table, _ in ANSWER_TABLES:
            dimension = table.dimensions[1]
            options = [code for code in domains.answers[dimension] if code != NOT_STATED]
            cells: dict[str, dict[str, int]] = {}
            for quarter in scope.quarters:
                named = p.new()  # reports that chose at least one option
                cell = cells[quarter] = {code: p.new() for code in domains.answers[dimension]}
                p.equal({cell[NOT_STATED]: 1.0, named: 1.0, self._asked[quarter]: -1.0}, 0.0)
                for code in options:
                    p.at_most({cell[code]: 1.0, named: -1.0}, 0.0)
                p.at_most({named: 1.0, **{cell[code]: -1.0 for code in options}}, 0.0)
            for i, through in enumerate(scope.quarters):
                for code in domains.answers[dimension]:
                    self._reports[table.id, (through, code)] = {
                        cells[q][code]: 1.0 for q in scope.quarters[: i + 1]
                    }

    def _persons_structure(self, domains: Domains) -> None:
        p, scope = self.program, self.truth.scope
        persons = self._persons
        answer_tables = {table.id for table, _ in ANSWER_TABLES}
        for ref, expr in self._reports.items():
            persons[ref] = var = p.new()
            # persons <= reports, where it is true: an event reported by several people is one report
            # (service/statistics/dashboard/catalogue.py), so a cell can hold more persons than reports. Given
            # where it holds (all cells, unless events were linked), the attacker knows at least as much as in
            # truth. In the KoMo tables a report names an option once: there persons equal reports where they
            # do.
            truth = self.truth.cell(*ref)
            if ref[0] in answer_tables and truth.persons == truth.reports:
                p.equal({var: 1.0, **{v: -c for v, c in expr.items()}}, 0.0)
            elif _holds(truth, 0, 0):
                p.at_most({var: 1.0, **{v: -c for v, c in expr.items()}}, 0.0)
        land_fixed = "land" in self.truth.fixed_per_reporter
        office_fixed = "office" in self.truth.fixed_per_reporter

        def cells(table: str, keys: Iterable[Key]) -> list[int]:
            return [persons[table, key] for key in keys]

        quarter_total: dict[str, int] = {}
        for quarter in scope.quarters:
            total = quarter_total[quarter] = p.new()
            # The reports asked in a quarter are first incidents of different reports: distinct persons.
            p.at_most({self._asked[quarter]: 1.0, total: -1.0}, 0.0)
            p.union(total, cells(NATIONAL_MONTH.id, ((m,) for m in months_in_quarter(quarter))))
            p.union(total, cells(NATIONAL_QUARTER_TYPE.id, ((quarter, g) for g in domains.type_groups)))
            p.union(total, cells(NATIONAL_QUARTER_CHANNEL.id, ((quarter, c) for c in domains.channels)))
            p.union(total, cells(NATIONAL_QUARTER_SEVERITY.id, ((quarter, s) for s in domains.severities)))
            p.partition(
                total, cells(LAND_QUARTER.id, ((land, quarter) for land in domains.lands)), land_fixed
            )
            p.partition(
                total,
                cells(NATIONAL_QUARTER_OFFICE.id, ((quarter, o) for o in domains.offices)),
                office_fixed,
            )
        for i, through in enumerate(scope.quarters):
            so_far = scope.quarters[: i + 1]
            year = p.new()
            p.union(year, [quarter_total[q] for q in so_far])
            p.at_most({**{self._asked[q]: 1.0 for q in so_far}, year: -1.0}, 0.0)
            lands = []
            for land in domains.lands:
                in_land = p.new()
                lands.append(in_land)
                p.union(in_land, cells(LAND_QUARTER.id, ((land, q) for q in so_far)))
                p.union(
                    in_land, cells(LAND_YEAR_SEVERITY.id, ((land, through, s) for s in domains.severities))
                )
            p.partition(year, lands, land_fixed)
            groups = []
            for g in domains.type_groups:
                in_group = p.new()
                groups.append(in_group)
                p.union(in_group, cells(NATIONAL_QUARTER_TYPE.id, ((q, g) for q in so_far)))
                p.partition(
                    in_group,
                    cells(NATIONAL_YEAR_TYPE_OFFICE.id, ((through, g, o) for o in domains.offices)),
                    office_fixed,
                )
            p.union(year, groups)
            offices = []
            for o in domains.offices:
                in_office = p.new()
                offices.append(in_office)
                p.union(in_office, cells(NATIONAL_QUARTER_OFFICE.id, ((q, o) for q in so_far)))
                p.union(
                    in_office,
                    cells(NATIONAL_YEAR_TYPE_OFFICE.id, ((through, g, o) for g in domains.type_groups)),
                )
            p.partition(year, offices, office_fixed)
            if i == 0:
                continue
            before = scope.quarters[i - 1]
            # Year-to-date persons grow, and by no more than the reports that were added.
            pairs_of_keys = [
                (LAND_YEAR_SEVERITY.id, (land, before, s), (land, through, s))
                for land in domains.lands
                for s in domains.severities
            ] + [
                (NATIONAL_YEAR_TYPE_OFFICE.id, (before, g, o), (through, g, o))
                for g in domains.type_groups
                for o in domains.offices
            ]
            for table, old, new in pairs_of_keys:
                p.at_most({persons[table, old]: 1.0, persons[table, new]: -1.0}, 0.0)
                before_stats = self.truth.cell(table, old)
                if not _holds(self.truth.cell(table, new), before_stats.persons, before_stats.reports):
                    continue  # a new reporter of a linked event brought no report (again: where true)
                added = minus(self._reports[table, new], self._reports[table, old])
                p.at_most(
                    add({persons[table, new]: 1.0, persons[table, old]: -1.0}, add(added, sign=-1.0)), 0.0
                )

    # -- what was shown ------------------------------------------------------------------------------------
    def _observations(self, shown: Sequence[Snapshot], candidate: Snapshot) -> list[Target]:
        """Constraints from every shown number that still holds, and the hidden numbers to check."""
        p, truth = self.program, self.truth
        # (ref, measure) -> (value, removable): removable only if no earlier snapshot showed the same value.
        visible: dict[tuple[CellRef, str], tuple[int, bool]] = {}
        targets: dict[tuple[CellRef, str], bool] = {}
        primary: set[CellRef] = set()
        dominance: set[CellRef] = set()
        k = self.rules.min_reporters
        answer_tables = {table.id for table, _ in ANSWER_TABLES}
        for snapshot in [*shown, candidate]:
            is_candidate = snapshot is candidate
            for table in snapshot.tables:
                for cell in table.cells:
                    ref = (table.id, cell.key)
                    if ref not in self._reports:
                        raise ValueError(f"snapshot cell outside the catalogue: {ref}")
                    stats = truth.cell(*ref)
                    for measure, value, true_value in (
                        ("persons", cell.persons, stats.persons),
                        ("reports", cell.reports, stats.reports),
                    ):
                        if value is None and cell.status is not CellStatus.secondary:
                            hidden_primary = cell.status is CellStatus.primary and (
                                measure == "persons" or table.id in answer_tables
                            )
                            targets[ref, measure] = targets.get((ref, measure), False) or hidden_primary
                        elif value == true_value:
                            before = visible.get((ref, measure))
                            removable = is_candidate and (before is None or before[1])
                            visible[ref, measure] = (value, removable)
                    if cell.status is CellStatus.primary and 1 <= stats.persons < k:
                        primary.add(ref)
                    if cell.status is CellStatus.dominance and stats.reports >= 2 * stats.persons - 1:
                        dominance.add(ref)
        for (ref, measure), (value, removable) in visible.items():
            expr = self._reports[ref] if measure == "reports" else {self._persons[ref]: 1.0}
            p.equal(expr, float(value), ref if removable else None)
        for ref in primary:
            var = self._persons[ref]
            p.at_most({var: -1.0}, -1.0)
            p.at_most({var: 1.0}, float(k - 1))
        for ref in dominance:
            p.at_most(add({self._persons[ref]: 2.0}, add(self._reports[ref], sign=-1.0)), 1.0)
        return [
            Target(ref[0], ref[1], measure, is_primary)
            for (ref, measure), is_primary in sorted(targets.items())
        ]

    # -- the attack ----------------------------------------------------------------------------------------
    def expression(self, target: Target) -> Expr:
        ref = (target.table, target.key)
        return self._reports[ref] if target.measure == "reports" else {self._persons[ref]: 1.0}

    def attack(self, target: Target) -> Finding:
        expr = self.expression(target)
        low, binding_low = self._solver.optimise(expr, 1.0)
        high, binding_high = self._solver.optimise(expr, -1.0)
        low = math.ceil(low - _INTEGRAL)
        high = high if math.isinf(high) else math.floor(high + _INTEGRAL)
        if target.primary_persons:
            passes = low <= 1 and high >= self.rules.min_reporters - 1
        else:
            passes = high - low >= self.rules.gate_min_width and high >= self.rules.gate_min_upper
        binding = tuple(dict.fromkeys([*binding_low, *binding_high]))
        return Finding(target, float(low), float(high), passes, binding)

    def check(self, targets: Iterable[Target] | None = None) -> GateResult:
        chosen = self.targets if targets is None else list(targets)
        findings = tuple(self.attack(target) for target in chosen)
        return GateResult(all(f.passes for f in findings), findings, 2 * len(findings))


def run_gate(
    truth: Catalogue,
    domains: Domains,
    rules: CoordinatorRules,
    shown: Sequence[Snapshot],
    candidate: Snapshot,
) -> GateResult:
    """Attack every hidden number of ``candidate`` and of the snapshots ``shown`` before it (same year)."""
    return Attacker(truth, domains, rules, shown, candidate).check()
