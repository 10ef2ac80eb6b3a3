"""Public DP releases (statistics.md "Public releases"): fixed domains, bounding, sensitivity, an empirical
audit with a negative control, and the utility the design promises."""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest

from service.statistics.domains import months_of
from service.statistics.policy import Dimension, parse_statistics_policy
from service.statistics.public.dp import (
    PublicRelease,
    bounded_counts,
    domain_of,
    interval_half_width,
    noisy_counts,
    release,
)
from service.statistics.rows import ExtractRow
from service.statistics.synthetic import generate
from service.taxonomy import PolicyFileError
from service.taxonomy.files import read_yaml
from tests.support.statistics import POLICIES, audit, domains, statistics_policy

YEAR = 2025


def _target(pseudonym: str = "target", per_month: int = 1) -> list[ExtractRow]:
    """A heavy reporter: death threats every month of the year, from Bremen (the smallest Land)."""
    return [
        ExtractRow(
            pseudonym, f"{YEAR}-{month:02d}", None, "04", "A3a", ("A3a",), "email", "mayor_fulltime", 4
        )
        for month in range(1, 13)
        for _ in range(per_month)
    ]


def test_release_has_every_cell_of_the_fixed_domains_and_survives_json() -> None:
    """Given a year of synthetic reports
    When the public tables are released
    Then each table lists every month, Land or code (zeros included), display values are the raw values
    clamped at 0, the epsilon spent is the tables' shares within the yearly budget, and the JSON form
    reads back to the same release."""
    policy = statistics_policy().public
    release_ = release(generate(f"{YEAR}-12"), YEAR, policy, domains())

    for table in policy.tables:
        released = release_.table(table.id)
        assert [cell.key for cell in released.cells] == list(domain_of(table.by, YEAR, domains()))
        assert all(cell.value == max(cell.raw, 0) for cell in released.cells)
        assert all(cell.half_width == interval_half_width(table.scale, 0.9) for cell in released.cells)
    assert release_.epsilon_spent == pytest.approx(sum(t.epsilon for t in policy.tables))
    assert release_.epsilon_spent + policy.reserve_epsilon <= policy.epsilon_per_year + 1e-9
    assert release_.epsilon_by_table() == {"K1": 0.40, "K2": 0.15, "K3": 0.15, "K4": 0.10, "K5": 0.10}
    assert PublicRelease.from_json(json.loads(json.dumps(release_.as_json()))) == release_


def test_scales_are_those_of_the_design() -> None:
    """Given the shipped policy
    Then the noise scales are sensitivity / epsilon as in statistics.md (7.5, 20, 6.7, 10, 30)."""
    scales = {table.id: round(table.scale, 1) for table in statistics_policy().public.tables}
    assert scales == {"K1": 7.5, "K2": 20.0, "K3": 6.7, "K4": 10.0, "K5": 30.0}


def test_contribution_bounding_keeps_the_first_contributions_in_receipt_order() -> None:
    """Given one reporter with twelve reports in twelve months, listed newest first
    When the bounded counts are computed
    Then persons by month count the first three months only, report tables the first three reports only,
    and Land and office count the reporter once."""
    policy = statistics_policy().public
    counts = bounded_counts(list(reversed(_target())), YEAR, policy, domains())

    assert counts["K1"] == (1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert sum(counts["K2"]) == 3
    assert counts["K2"][domains().types.index("A3a")] == 3
    assert sum(counts["K3"]) == 1
    assert counts["K3"][domains().lands.index("04")] == 1
    assert sum(counts["K4"]) == 1
    assert sum(counts["K5"]) == 3


def test_removing_any_reporter_changes_each_table_by_at_most_its_sensitivity() -> None:
    """Given synthetic data and its forty most active reporters (the worst case for bounding)
    When each is removed in turn
    Then every table's bounded counts move by at most the declared sensitivity (L1)."""
    policy = statistics_policy().public
    rows = generate(f"{YEAR}-12", seed=11)
    activity: dict[str, int] = defaultdict(int)
    for row in rows:
        activity[row.reporter_pseudonym] += 1
    heavy = sorted(activity, key=lambda p: (-activity[p], p))[:40]
    full = bounded_counts(rows, YEAR, policy, domains())
    worst = dict.fromkeys(full, 0)
    for pseudonym in heavy:
        without = bounded_counts(
            [r for r in rows if r.reporter_pseudonym != pseudonym], YEAR, policy, domains()
        )
        for table in policy.tables:
            distance = sum(abs(a - b) for a, b in zip(full[table.id], without[table.id], strict=True))
            worst[table.id] = max(worst[table.id], distance)
    assert all(worst[table.id] <= table.sensitivity for table in policy.tables)
    assert activity[heavy[0]] > 3  # the sample does contain reporters the bounds cut


def test_interval_half_width_matches_opendp_accuracy_and_covers_90_percent() -> None:
    """Given the policy's scales
    When the integer 90 % half-width is computed
    Then it agrees with OpenDP's discrete-Laplace accuracy (which bounds P(|Z| >= a)) and at least 90 % of
    2,000 noisy draws of K1 fall within it."""
    import opendp.prelude as dp

    policy = statistics_policy().public
    for table in policy.tables:
        accuracy = dp.discrete_laplacian_scale_to_accuracy(table.scale, 0.1)
        assert interval_half_width(table.scale, 0.9) == int(np.ceil(accuracy)) - 1
    k1 = policy.table("K1")
    zeros = {table.id: (0,) * len(domain_of(table.by, YEAR, domains())) for table in policy.tables}
    draws = np.array([noisy_counts(zeros, policy)["K1"] for _ in range(2000)])
    assert (np.abs(draws) <= interval_half_width(k1.scale, 0.9)).mean() >= 0.88


def test_policy_refuses_a_sensitivity_below_what_the_bounds_guarantee_and_overspending() -> None:
    """Given the shipped policy file edited (a) to claim sensitivity 1 for K1 and (b) to spend 0.5 on K2
    When it is parsed
    Then both are refused with the table named."""
    file = POLICIES / "statistics.yaml"
    raw = read_yaml(file)
    understated = copy.deepcopy(raw)
    understated["public"]["tables"][0]["sensitivity"] = 1
    with pytest.raises(PolicyFileError, match=r"K1.*sensitivity must be 3"):
        parse_statistics_policy(understated, file)
    overspent = copy.deepcopy(raw)
    overspent["public"]["tables"][1]["epsilon"] = 0.5
    with pytest.raises(PolicyFileError, match="epsilon_per_year"):
        parse_statistics_policy(overspent, file)


def _audit_inputs(bounded: bool) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    policy = statistics_policy().public
    others = generate(f"{YEAR}-12", seed=3)
    with_target = bounded_counts([*others, *_target(per_month=2)], YEAR, policy, domains(), bounded=bounded)
    without_target = bounded_counts(others, YEAR, policy, domains(), bounded=bounded)
    return with_target, without_target


def test_empirical_audit_finds_no_more_privacy_loss_than_claimed() -> None:
    """Given neighbouring datasets, with and without a reporter who filed twice in every month of the year
    When the release mechanism runs 5,000 times on each (plus a pilot to choose the test)
    Then the 95 % Clopper-Pearson lower bound on the realised epsilon is at most the epsilon spent + 0.05."""
    policy = statistics_policy().public
    with_target, without_target = _audit_inputs(bounded=True)
    scales = {table.id: table.scale for table in policy.tables}
    result = audit(lambda counts: noisy_counts(counts, policy), with_target, without_target, scales)
    print(f"bounded: realised epsilon >= {result.epsilon_lower_bound:.3f} (claim {policy.epsilon_of_tables})")
    assert result.epsilon_lower_bound <= policy.epsilon_of_tables + 0.05


def test_empirical_audit_negative_control_without_bounding_detects_excess_privacy_loss() -> None:
    """Given the same neighbours but contribution bounding switched off (the target counts in all twelve
    months and with all 24 reports: a realised epsilon of 3.85 against the 0.9 claimed)
    When the same audit runs
    Then it proves an epsilon well above the claim (at least 1.5 times it)."""
    policy = statistics_policy().public
    with_target, without_target = _audit_inputs(bounded=False)
    scales = {table.id: table.scale for table in policy.tables}
    result = audit(lambda counts: noisy_counts(counts, policy), with_target, without_target, scales)
    print(
        f"unbounded: realised epsilon >= {result.epsilon_lower_bound:.3f} (claim {policy.epsilon_of_tables})"
    )
    assert result.epsilon_lower_bound >= 1.5 * policy.epsilon_of_tables


def test_utility_at_epsilon_one_and_2400_reports_a_year() -> None:
    """Given 2,400 synthetic reports in a year and the policy at epsilon = 1
    When 300 releases are drawn
    Then the mean absolute error against the exact, unbounded truth is at most 8.5 for K1 (persons by
    month) and at most 7.5 for K3 (persons by Land): noise plus the bias bounding adds."""
    policy = statistics_policy().public
    assert policy.epsilon_per_year == 1.0
    rows = generate(f"{YEAR}-12", reports_per_year=2400, seed=5)
    persons_by_month = [
        len({r.reporter_pseudonym for r in rows if r.receipt_month == m}) for m in months_of(YEAR)
    ]
    persons_by_land = [
        len({r.reporter_pseudonym for r in rows if r.land == land}) for land in domains().lands
    ]
    counts = bounded_counts(rows, YEAR, policy, domains())
    draws = [noisy_counts(counts, policy) for _ in range(300)]
    k1 = np.array([draw["K1"] for draw in draws])
    k3 = np.array([draw["K3"] for draw in draws])
    mae_k1 = float(np.abs(k1 - np.array(persons_by_month)).mean())
    mae_k3 = float(np.abs(k3 - np.array(persons_by_land)).mean())
    print(f"utility: K1 MAE {mae_k1:.2f}, K3 MAE {mae_k3:.2f}")
    assert mae_k1 <= 8.5
    assert mae_k3 <= 7.5


def test_bounded_counts_refuse_a_code_outside_the_public_domain() -> None:
    """Given a row whose channel is not in the taxonomy
    When bounded counts are computed
    Then it is refused rather than given a cell of its own (a data-dependent cell would leak)."""
    row = replace(_target()[0], channel="carrier_pigeon")
    with pytest.raises(ValueError, match="K5"):
        bounded_counts([row], YEAR, statistics_policy().public, domains())
    assert Dimension.channel in {table.by for table in statistics_policy().public.tables}
