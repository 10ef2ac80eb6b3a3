"""``policies/statistics.yaml``: the suppression rules of the coordinator dashboard and the privacy budget
of public releases, typed and checked on load.

The checks go beyond the schema because a plausible-looking edit can silently void the guarantee: a table
whose declared sensitivity is smaller than what the contribution bounds enforce would get too little noise,
and epsilon shares that add up to more than the yearly budget would overspend it. The service refuses such
a file (``PolicyFileError`` names every problem) instead of releasing with it.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from service.taxonomy.files import PolicyFileError, Problem, problems_from_validation, read_yaml

STATISTICS_FILE = "statistics.yaml"
# Float sums of shares such as 0.4 + 0.15 + ... are not exact; a budget check must not fail on 1e-16.
_EPSILON_SLACK = 1e-9


class Measure(StrEnum):
    reports = "reports"  # incidents
    persons = "persons"  # persons affected: distinct reporters


class Dimension(StrEnum):
    """What a public table is broken down by; nothing finer than Land and month exists here on purpose."""

    month = "month"
    type = "type"
    land = "land"
    office = "office"
    channel = "channel"
    severity = "severity"


# Attributes of the reporter (one case, one Land, one office), as opposed to attributes of each report.
REPORTER_DIMENSIONS = frozenset({Dimension.land, Dimension.office})


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class CoordinatorRules(_Model):
    min_reporters: Annotated[int, Field(ge=2)] = 5
    dominance_share: Annotated[float, Strict(False), Field(gt=0, lt=1)] = 0.5
    gate_min_width: Annotated[int, Field(ge=1)] = 5
    gate_min_upper: Annotated[int, Field(ge=1)] = 5
    revision_months: Annotated[tuple[Annotated[int, Field(ge=1, le=12)], ...], Strict(False)] = (3, 6, 9, 12)


class ContributionBounds(_Model):
    months_per_reporter: Annotated[int, Field(ge=1, le=12)]
    reports_per_reporter: Annotated[int, Field(ge=1)]


class PublicTable(_Model):
    id: Annotated[str, Field(pattern=r"^K[0-9]+$")]
    measure: Annotated[Measure, Strict(False)]
    by: Annotated[Dimension, Strict(False)]
    sensitivity: Annotated[int, Field(ge=1)]
    epsilon: Annotated[float, Strict(False), Field(gt=0)]

    @property
    def scale(self) -> float:
        """Discrete Laplace scale: sensitivity / epsilon gives epsilon-DP for this table (pure DP)."""
        return self.sensitivity / self.epsilon


class PublicPolicy(_Model):
    privacy_unit: Literal["reporter_year"]
    epsilon_per_year: Annotated[float, Strict(False), Field(gt=0)]
    reserve_epsilon: Annotated[float, Strict(False), Field(ge=0)]
    interval_confidence: Annotated[float, Strict(False), Field(gt=0, lt=1)]
    bounds: ContributionBounds
    tables: Annotated[tuple[PublicTable, ...], Strict(False)]

    def table(self, table_id: str) -> PublicTable:
        for table in self.tables:
            if table.id == table_id:
                return table
        raise KeyError(f"no public table {table_id!r}")

    @property
    def epsilon_of_tables(self) -> float:
        return sum(table.epsilon for table in self.tables)


class StatisticsPolicy(_Model):
    version: Literal[1]
    coordinator: CoordinatorRules
    public: PublicPolicy


def required_sensitivity(table: PublicTable, bounds: ContributionBounds) -> int | None:
    """The L1 sensitivity the contribution bounding of ``statistics.public.dp`` guarantees for a table.

    ``None`` for a combination the release code cannot bound (persons by type, say: one reporter may sit in
    several type cells, and nothing caps how many).
    """
    if table.measure is Measure.reports:
        # At most this many reports of a reporter a year are counted, each in exactly one cell.
        return bounds.reports_per_reporter
    if table.by is Dimension.month:
        return bounds.months_per_reporter
    if table.by in REPORTER_DIMENSIONS:
        # One cell per reporter-year (the first in receipt order if the data ever disagreed).
        return 1
    return None


def check_policy(policy: StatisticsPolicy) -> list[Problem]:
    problems: list[Problem] = []
    public = policy.public
    seen: set[str] = set()
    for index, table in enumerate(public.tables):
        where = f"public.tables[{index}] ({table.id})"
        if table.id in seen:
            problems.append(Problem(where, f"duplicate table id {table.id}"))
        seen.add(table.id)
        needed = required_sensitivity(table, public.bounds)
        if needed is None:
            problems.append(Problem(where, f"{table.measure} by {table.by} cannot be bounded; not supported"))
        elif table.sensitivity != needed:
            problems.append(
                Problem(where, f"sensitivity must be {needed}, what the contribution bounds guarantee")
            )
    spent = public.epsilon_of_tables + public.reserve_epsilon
    if spent > public.epsilon_per_year + _EPSILON_SLACK:
        problems.append(
            Problem(
                "public", f"tables and reserve spend {spent:.4f} > epsilon_per_year {public.epsilon_per_year}"
            )
        )
    months = policy.coordinator.revision_months
    if len(set(months)) != len(months) or 12 not in months:
        problems.append(
            Problem(
                "coordinator.revision_months", "distinct months, and December must be one (the year closes)"
            )
        )
    return problems


def parse_statistics_policy(raw: object, file: Path) -> StatisticsPolicy:
    try:
        policy = StatisticsPolicy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyFileError(file, problems_from_validation(exc, raw)) from None
    problems = check_policy(policy)
    if problems:
        raise PolicyFileError(file, problems)
    return policy


@functools.lru_cache(maxsize=8)
def _load_cached(file: Path, _mtime_ns: int, _size: int) -> StatisticsPolicy:
    return parse_statistics_policy(read_yaml(file), file)


def load_statistics_policy(policies_dir: Path) -> StatisticsPolicy:
    """Load ``<policies_dir>/statistics.yaml``; cached until the file changes."""
    file = (policies_dir / STATISTICS_FILE).resolve()
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise PolicyFileError(file, [Problem("", "file not found")]) from None
    return _load_cached(file, stat.st_mtime_ns, stat.st_size)
