"""The privacy budget ledger and the release store (docs/statistics.md, "Public releases").

Rules it enforces, in one transaction per release:
- the year's budget row is locked (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite) before the
  balance is read, so two concurrent releases cannot both pass the check;
- a release that would spend more than what is left is refused, and nothing is drawn;
- an output is stored (and committed) before anyone sees it, and is never drawn again: asking again for
  the same year and parameters returns the stored numbers and spends nothing.
Amounts are kept in millionths of epsilon, so sums are exact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import false, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.db import new_id, utcnow
from service.errors import DomainError
from service.extract.models import StatisticsExtract
from service.statistics.domains import Domains
from service.statistics.policy import PublicPolicy
from service.statistics.public.dp import PublicRelease, PublicReleaseJson, release
from service.statistics.public.models import BudgetSpend, PrivacyBudget, PublicReleaseRecord
from service.statistics.rows import ExtractRow, from_model

MICRO = 1_000_000


class BudgetExceeded(DomainError):
    status_code = 409
    message_key = "error.budget_exceeded"
    public_message = "The privacy budget of this year does not cover this release."


def micro(epsilon: float) -> int:
    return round(epsilon * MICRO)


def params_sha256(policy: PublicPolicy) -> str:
    """A parameter set's identity: the same numbers give the same release, however the file is laid out."""
    return hashlib.sha256(json.dumps(policy.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class StoredRelease:
    id: str
    year: int
    release: PublicRelease
    fresh: bool
    spent_micro_epsilon: int
    total_micro_epsilon: int


def _lock_budget(session: Session, year: int, total: int) -> PrivacyBudget:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.execute(
            update(PrivacyBudget)
            .where(false())
            .values(year=PrivacyBudget.year)
            .execution_options(synchronize_session=False)
        )
    # The year's row, created by whichever release comes first; a concurrent creator's insert is a no-op.
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(PrivacyBudget)
        .values(year=year, total_micro_epsilon=total, spent_micro_epsilon=0, updated_at=utcnow())
        .on_conflict_do_nothing()
    )
    budget = session.scalar(select(PrivacyBudget).where(PrivacyBudget.year == year).with_for_update())
    assert budget is not None
    return budget


def year_rows(session: Session, year: int) -> list[ExtractRow]:
    models = session.scalars(
        select(StatisticsExtract).where(StatisticsExtract.receipt_month.like(f"{year:04d}-%"))
    )
    return [from_model(model) for model in models]


def release_year(
    session: Session,
    *,
    year: int,
    policy: PublicPolicy,
    domains: Domains,
    audit: AuditLog,
    rows: Callable[[], Iterable[ExtractRow]] | None = None,
    progress: Callable[[str], None] = lambda step: None,
) -> StoredRelease:
    """Compute, store and publish the year's release, or return the one already stored.

    The caller commits (the CLI command, the demo year): the release, its budget spends and its audit
    event are stored together or not at all. The budget row stays locked until then."""
    sha = params_sha256(policy)
    progress("checking the budget")
    budget = _lock_budget(session, year, micro(policy.epsilon_per_year))
    existing = session.scalar(
        select(PublicReleaseRecord).where(
            PublicReleaseRecord.year == year, PublicReleaseRecord.params_sha256 == sha
        )
    )
    if existing is not None:
        session.rollback()
        return StoredRelease(
            existing.id,
            year,
            PublicRelease.from_json(content_of(existing)),
            False,
            budget.spent_micro_epsilon,
            budget.total_micro_epsilon,
        )
    cost = sum(micro(table.epsilon) for table in policy.tables)
    if budget.spent_micro_epsilon + cost > budget.total_micro_epsilon:
        session.rollback()
        left = budget.total_micro_epsilon - budget.spent_micro_epsilon
        raise BudgetExceeded(
            [{"loc": ["year"], "type": "budget", "msg": f"needs {cost / MICRO:g}, {left / MICRO:g} left"}]
        )
    progress("reading the statistics extract")
    data = list(rows() if rows is not None else year_rows(session, year))
    progress(f"drawing noise for {len(policy.tables)} tables over {len(data)} rows")
    result = release(data, year, policy, domains)
    progress("storing the release")
    now = utcnow()
    record = PublicReleaseRecord(
        id=new_id(),
        year=year,
        params_sha256=sha,
        micro_epsilon=cost,
        payload=result.as_json(),
        created_at=now,
        published_at=now,
    )
    session.add(record)
    session.flush()
    session.add_all(
        BudgetSpend(
            id=new_id(),
            year=year,
            release_id=record.id,
            table_id=table.id,
            micro_epsilon=micro(table.epsilon),
            created_at=now,
        )
        for table in policy.tables
    )
    budget.spent_micro_epsilon += cost
    budget.updated_at = now
    audit.append(
        session,
        actor_kind="operator",
        actor_id=None,
        action="statistics.release",
        object_type="public_release",
        object_id=record.id,
        details={"year": year, "micro_epsilon": cost, "params_sha256": sha},
    )
    return StoredRelease(
        record.id, year, result, True, budget.spent_micro_epsilon, budget.total_micro_epsilon
    )


def published(session: Session) -> list[PublicReleaseRecord]:
    """What the public may see: the release store only, newest year first."""
    return list(
        session.scalars(
            select(PublicReleaseRecord)
            .where(PublicReleaseRecord.published_at.is_not(None))
            .order_by(PublicReleaseRecord.year.desc(), PublicReleaseRecord.created_at.desc())
        )
    )


def content_of(record: PublicReleaseRecord) -> PublicReleaseJson:
    """The stored document of a release. Its JSON column is typed loosely like every JSON column; what it
    holds is what ``PublicRelease.as_json`` wrote (``release_year`` is its only writer)."""
    return record.payload


def published_in(session: Session, year: str) -> PublicReleaseRecord | None:
    """The release a year's addresses show (/statistik?jahr=, the downloads, the open data): the newest of
    that year; ``None`` for a year with none, and for anything that is not a year as the URLs spell it."""
    return next((record for record in published(session) if str(record.year) == year), None)


def year_budgets(session: Session) -> dict[int, PrivacyBudget]:
    """Every year's budget row: its total and what all its releases spent."""
    return {budget.year: budget for budget in session.scalars(select(PrivacyBudget))}


def spent_per_table(session: Session, release_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """What the ledger says each release spent per table, in millionths of epsilon: id -> table -> amount."""
    spent: dict[str, dict[str, int]] = {}
    ids = list(release_ids)
    if not ids:
        return spent
    for row in session.scalars(select(BudgetSpend).where(BudgetSpend.release_id.in_(ids))):
        table = spent.setdefault(row.release_id, {})
        table[row.table_id] = table.get(row.table_id, 0) + row.micro_epsilon
    return spent
