"""Issue 18: incidents linked as one event count once where the statistics count reports.

The catalogue counts an event in the cells of its first row (additive tables), so a cell can now hold more
persons affected than reports; the release gate must take that as it is (its attacker keeps "persons <=
reports" only where it holds) and still protect every hidden number. The public release counts an event once
per cell, which keeps the declared sensitivities: removing one reporter changes a report table by at most
their bounded rows.
"""

from __future__ import annotations

from dataclasses import replace

from service.statistics.dashboard.catalogue import NATIONAL_MONTH, TABLES, compute_catalogue
from service.statistics.dashboard.suppression import build_snapshot
from service.statistics.public import dp
from service.statistics.rows import ExtractRow
from service.statistics.synthetic import generate
from tests.support.statistics import domains, statistics_policy

AS_OF = "2025-03"


def linked(rows: list[ExtractRow], every: int = 25) -> tuple[list[ExtractRow], int]:
    """Rows where every ``every``-th pair of neighbouring rows of two reporters in one month is one event."""
    out = list(rows)
    links = 0
    for index in range(0, len(out) - 1, every):
        first, second = out[index], out[index + 1]
        if (
            first.reporter_pseudonym == second.reporter_pseudonym
            or first.receipt_month != second.receipt_month
        ):
            continue
        key = f"event-{index}"
        out[index], out[index + 1] = replace(first, event_key=key), replace(second, event_key=key)
        links += 1
    return out, links


def test_the_catalogue_counts_each_linked_event_once_and_the_gate_releases_it() -> None:
    rows = [row for row in generate("2025-12", seed=11) if row.receipt_month <= AS_OF]
    events, links = linked(rows)
    assert links > 10
    plain = compute_catalogue(rows, AS_OF, domains())
    joined = compute_catalogue(events, AS_OF, domains())
    months = [(month,) for month in plain.scope.months]
    reports = sum(plain.cell(NATIONAL_MONTH.id, key).reports for key in months)
    assert sum(joined.cell(NATIONAL_MONTH.id, key).reports for key in months) == reports - links
    # Persons affected do not change, and somewhere a cell now has more persons than reports.
    assert all(
        joined.cell(table.id, key).persons == plain.cell(table.id, key).persons
        for table in TABLES
        for key in plain.tables[table.id]
    )
    assert any(
        stats.persons > stats.reports for table in TABLES for stats in joined.tables[table.id].values()
    )
    snapshot = build_snapshot(events, AS_OF, [], domains(), statistics_policy().coordinator)
    assert snapshot.released, "the gate solves (no infeasible model) and passes with secondary suppression"


def test_the_public_report_tables_count_an_event_once_per_cell_and_keep_their_sensitivity() -> None:
    policy = statistics_policy().public
    rows = generate("2025-12", seed=5, reports_per_year=400)
    events, links = linked(rows, every=5)
    assert links > 10
    full = dp.bounded_counts(events, 2025, policy, domains())
    plain = dp.bounded_counts(rows, 2025, policy, domains())
    reports = [table for table in policy.tables if table.measure.value == "reports"]
    assert any(sum(full[table.id]) < sum(plain[table.id]) for table in reports)
    reporters = sorted({row.reporter_pseudonym for row in events if row.event_key is not None})[:25]
    for reporter in reporters:
        without = dp.bounded_counts(
            [row for row in events if row.reporter_pseudonym != reporter], 2025, policy, domains()
        )
        for table in policy.tables:
            change = sum(abs(a - b) for a, b in zip(full[table.id], without[table.id], strict=True))
            assert change <= table.sensitivity, (table.id, reporter)
