"""Loading ``policies/retention.yaml``: how long closed cases and delivered outbox rows are kept.

Strict on purpose, like the routing policy. A purge cannot be undone, so a typo must stop the service
instead of shortening a period: unknown keys are refused, ``"30"`` (text) and ``true`` are not days, and an
outcome code that closing a case cannot produce (``dublicate``) is refused rather than silently ignored,
which would leave those cases under the default period.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.cases.service import OUTCOMES
from service.taxonomy import PolicyFileError, Problem
from service.taxonomy.files import problems_from_validation, read_yaml

RETENTION_FILE = "retention.yaml"

# At least a day: zero would purge a case the moment it is closed, before anyone could re-open it. At most
# a hundred years: beyond that ``now - period`` leaves the range of ``datetime``.
Days = Annotated[int, Field(ge=1, le=36_500)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ClosedCases(_Model):
    default_retention_days: Days
    retention_days_by_outcome: dict[str, Days] = Field(default_factory=dict)


class CompletedOutboxMessages(_Model):
    retention_days: Days


class RetentionFile(_Model):
    """The file as written; ``load_retention`` checks the outcome codes and builds ``RetentionPolicy``."""

    closed_cases: ClosedCases
    completed_outbox_messages: CompletedOutboxMessages


@dataclass(frozen=True)
class RetentionPolicy:
    default_days: int
    days_by_outcome: Mapping[str, int]
    completed_outbox_days: int
    # SHA-256 of the file's bytes as loaded: the same digest ``policy.changed`` audit events record, so
    # every ``case.purged`` event can be matched to the policy it was purged under.
    sha256: str

    def retention_days(self, outcome: str | None) -> int:
        """The period of a closed case with this outcome (the default for none or an unlisted one)."""
        if outcome is None:
            return self.default_days
        return self.days_by_outcome.get(outcome, self.default_days)

    def due_since(self, outcome: str | None, closed_at: datetime) -> datetime:
        return closed_at + timedelta(days=self.retention_days(outcome))

    def closed_before(self, now: datetime) -> tuple[Mapping[str, datetime], datetime]:
        """Per listed outcome, and for all others, the newest ``closed_at`` that is due at ``now``."""
        return (
            {outcome: now - timedelta(days=days) for outcome, days in self.days_by_outcome.items()},
            now - timedelta(days=self.default_days),
        )

    def outbox_completed_before(self, now: datetime) -> datetime:
        return now - timedelta(days=self.completed_outbox_days)


def _outcome_problems(raw: object) -> list[Problem]:
    """Unknown outcome codes, read from the raw file so they are reported beside any schema problem."""
    closed = raw.get("closed_cases") if isinstance(raw, dict) else None
    by_outcome = closed.get("retention_days_by_outcome") if isinstance(closed, dict) else None
    if not isinstance(by_outcome, dict):
        return []
    return [
        Problem(
            f"closed_cases.retention_days_by_outcome.{code}",
            f"unknown outcome code {code!r} (known: {', '.join(OUTCOMES)})",
        )
        for code in by_outcome
        if code not in OUTCOMES
    ]


def parse_retention(raw: object, file: Path, sha256: str) -> RetentionPolicy:
    """Validate the parsed YAML; ``PolicyFileError`` lists every problem with its path in the file."""
    problems = _outcome_problems(raw)
    try:
        parsed = RetentionFile.model_validate(raw)
    except ValidationError as exc:
        raise PolicyFileError(file, problems_from_validation(exc, raw) + problems) from None
    if problems:
        raise PolicyFileError(file, problems)
    return RetentionPolicy(
        default_days=parsed.closed_cases.default_retention_days,
        days_by_outcome=MappingProxyType(dict(parsed.closed_cases.retention_days_by_outcome)),
        completed_outbox_days=parsed.completed_outbox_messages.retention_days,
        sha256=sha256,
    )


def load_retention(policies_dir: Path) -> RetentionPolicy:
    """Load and fully validate ``<policies_dir>/retention.yaml``.

    Raises ``PolicyFileError``; the service refuses to start on a retention policy it does not understand.
    """
    file = (policies_dir / RETENTION_FILE).resolve()
    # The digest must describe the text that was parsed: an editor saving in between would otherwise make
    # the audit trail name a policy that was never in force.
    before = _digest(file)
    raw = read_yaml(file)
    if _digest(file) != before:
        raise PolicyFileError(file, [Problem("", "the file changed while it was read; try again")])
    return parse_retention(raw, file, before)


def _digest(file: Path) -> str:
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise PolicyFileError(file, [Problem("", "file not found")]) from None
