"""Helpers for tests/statistics: the real policy files, and the empirical DP audit.

The audit follows the usual recipe for auditing a DP mechanism as a black box: run it many times on two
neighbouring datasets (with and without one target reporter), pick an event, and turn the two observed
event frequencies into a Clopper-Pearson lower bound on the privacy loss the mechanism actually has.
The event is "the log-likelihood ratio of the output under the two datasets is at least t" (the most
powerful test for a pair of known inputs); t is chosen on a separate pilot sample, so choosing it does not
bias the bound that is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.stats import beta

from service.statistics.domains import Domains, domains_from
from service.statistics.policy import StatisticsPolicy, load_statistics_policy
from service.statistics.rows import ExtractRow
from service.taxonomy import Taxonomy, load_taxonomy

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def taxonomy() -> Taxonomy:
    return load_taxonomy(POLICIES)


def domains() -> Domains:
    return domains_from(taxonomy())


def statistics_policy() -> StatisticsPolicy:
    return load_statistics_policy(POLICIES)


Counts = dict[str, tuple[int, ...]]


def clopper_pearson(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """Two-sided (1 - alpha) Clopper-Pearson interval for a binomial proportion."""
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def log_likelihood_ratio(
    outputs: dict[str, NDArray[np.int64]],
    with_target: Counts,
    without_target: Counts,
    scales: dict[str, float],
) -> NDArray[np.float64]:
    """ln P(output | with target) / P(output | without) for discrete Laplace noise, one value per run."""
    total = np.zeros(next(iter(outputs.values())).shape[0])
    for table, scale in scales.items():
        y = outputs[table]
        a = np.array(with_target[table])
        b = np.array(without_target[table])
        total += (np.abs(y - b) - np.abs(y - a)).sum(axis=1) / scale
    return total


def run_mechanism(
    noise: Callable[[Counts], Counts], counts: Counts, runs: int
) -> dict[str, NDArray[np.int64]]:
    samples = [noise(counts) for _ in range(runs)]
    return {table: np.array([sample[table] for sample in samples], dtype=np.int64) for table in counts}


def _bound(
    stat_with: NDArray[np.float64], stat_without: NDArray[np.float64], t: float, alpha: float
) -> float:
    low_with, _ = clopper_pearson(int((stat_with >= t).sum()), stat_with.size, alpha)
    _, high_without = clopper_pearson(int((stat_without >= t).sum()), stat_without.size, alpha)
    if low_with <= 0:
        return -math.inf
    return math.log(low_with / high_without)


@dataclass(frozen=True)
class AuditResult:
    epsilon_lower_bound: float  # with 1 - alpha confidence the mechanism's epsilon is at least this
    threshold: float
    runs: int


def audit(
    noise: Callable[[Counts], Counts],
    with_target: Counts,
    without_target: Counts,
    scales: dict[str, float],
    *,
    runs: int = 5000,
    pilot_runs: int = 1000,
    alpha: float = 0.05,
) -> AuditResult:
    """Empirical lower bound on epsilon of ``noise`` between two neighbouring count vectors."""

    def statistic(counts: Counts, n: int) -> NDArray[np.float64]:
        return log_likelihood_ratio(run_mechanism(noise, counts, n), with_target, without_target, scales)

    pilot_with, pilot_without = statistic(with_target, pilot_runs), statistic(without_target, pilot_runs)
    candidates: Sequence[float] = sorted(
        set(np.quantile(pilot_with, [*np.linspace(0.02, 0.98, 49), 0.99, 0.995]).tolist())
    )
    threshold = max(candidates, key=lambda t: _bound(pilot_with, pilot_without, t, alpha))
    main_with, main_without = statistic(with_target, runs), statistic(without_target, runs)
    return AuditResult(_bound(main_with, main_without, threshold, alpha), threshold, runs)


def reclassify(rows: list[ExtractRow], quarter_months: tuple[str, ...], every: int = 15) -> list[ExtractRow]:
    """A counsellor's revisions: every ``every``-th insult received in the given months becomes a death
    threat, every other one of those a daubing (type group C): a revision point must absorb such changes."""
    changed: list[ExtractRow] = []
    seen = 0
    for row in rows:
        if row.receipt_month in quarter_months and row.primary_type == "A1":
            seen += 1
            if seen % every == 0:
                code, severity = ("A3a", 4) if seen % (2 * every) else ("C5", 3)
                row = replace(row, primary_type=code, type_codes=(code,), severity_group=severity)
        changed.append(row)
    return changed
