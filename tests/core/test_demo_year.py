"""The demo's synthetic year (issue 18, "The demo shows it"): made-up reports filed through the real intake,
so that a first `make run` shows a released snapshot, response times and public figures; demo mode only."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from service.audit.models import AuditEvent
from service.cases.models import Case, CaseMessage, CaseStatus
from service.config import ConfigurationError, Mode, Settings
from service.demo_year import load_demo_year, load_synthetic_year, months_to_load
from service.extract.models import StatisticsExtract
from service.identity.models import CaseKeyGrant, MembershipRole
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from service.statistics.dashboard.models import StatisticsSnapshot
from service.statistics.public.ledger import published
from service.statistics.public.models import BudgetSpend
from tests.support.staff import MakeStaff
from workers import context
from workers import tasks as worker_tasks

# Early in a year: last year complete, this year's first quarter done (its snapshot has every table), and
# 15 months of reports instead of up to 23 (the test's time).
TODAY = date(2026, 4, 10)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """As tests/conftest.py, in demo mode (RUECKHALT_DEMO=true, as `make run` sets it)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        demo=True,
        intake_limit_per_hour=1000,
        receipt_limit_per_hour=1000,
    )


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[None]:
    context.use(context.context_for(runtime))
    yield
    context.use(None)


def count(runtime: Runtime, model: type[Any], *where: Any) -> int:
    with runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_months_to_load_cover_last_year_and_this_year_so_far() -> None:
    assert months_to_load(date(2026, 4, 10)) == ("2026-03", 15)
    assert months_to_load(date(2026, 12, 6)) == ("2026-11", 23)
    assert months_to_load(date(2027, 1, 3)) == ("2026-12", 12)


@pytest.mark.slow
def test_a_demo_runtime_files_a_year_of_cases_and_shows_released_figures(
    runtime: Runtime, make_staff: MakeStaff, login: Any
) -> None:
    """Given the demo's organisations, when the worker's demo task has run
    Then some 3,000 reports are cases like any reporter's (routed, sealed, one statistics row each), marked
    demo and announced to nobody; last year's public release and last month's snapshot exist and are
    released; the coordinators' dashboard shows tables and response times, /statistik last year's figures;
    a counsellor opens a synthetic case with the organisation's key. Again, it files and spends nothing."""
    loaded = load_demo_year(runtime, today=TODAY)

    assert 2500 < loaded.reports_filed < 3500, "about 2,400 a year for 15 months"
    assert (loaded.released_year, loaded.snapshot_as_of, loaded.snapshot_released) == (2025, "2026-03", True)
    cases = count(runtime, Case)
    assert cases == count(runtime, Case, Case.demo.is_(True))
    assert count(runtime, StatisticsExtract) == loaded.reports_filed
    assert count(runtime, CaseKeyGrant, CaseKeyGrant.role == "target") >= cases
    assert count(runtime, OutboxMessage) == 0, "a case from the past is announced to nobody"
    assert count(runtime, Case, Case.status != CaseStatus.closed.value) == 0, "all older than a month"
    assert count(runtime, Case, Case.acknowledged_at.is_(None)) == 0, "nothing for the escalation to do"
    assert count(runtime, CaseMessage) > cases * 0.8
    with runtime.sessions() as db:
        months = set(db.scalars(select(StatisticsExtract.receipt_month)))
        assert months == {f"2025-{m:02d}" for m in range(1, 13)} | {"2026-01", "2026-02", "2026-03"}
        answered = db.scalars(select(StatisticsExtract).where(StatisticsExtract.consequences.is_not(None)))
        assert len(list(answered)) == cases, "the answers ride on each case's first incident"
        (release,) = published(db)
        assert release.year == 2025
        spent = db.scalar(select(func.sum(BudgetSpend.micro_epsilon)))
        events = db.scalars(select(AuditEvent.action).where(AuditEvent.action == "demo.synthetic_year")).all()
    assert events == ["demo.synthetic_year"]

    again = load_demo_year(runtime, today=TODAY)
    assert again.reports_filed == 0
    assert count(runtime, Case) == cases
    assert count(runtime, StatisticsSnapshot) == 1
    with runtime.sessions() as db:
        assert db.scalar(select(func.sum(BudgetSpend.micro_epsilon))) == spent, "the ledger spends once"

    coordinator = login(make_staff(coordinator=True))
    page = coordinator.get("/intern/statistik").text
    assert "Stand: 2026-03" in page
    assert "Bundesweit im Jahr nach Folgen (Mehrfachnennung)" in page
    assert "Rücktritt erwogen" in page
    times = coordinator.get("/api/v1/dashboard/response-times").json()
    bayern = next(row for row in times if row["slug"] == "beratung-by")
    assert bayern["cases"] > 100
    assert bayern["median_hours_to_acknowledge"] is not None
    assert bayern["answered_within_3_months"] is not None
    public = coordinator.get("/statistik").text
    assert "2025" in public

    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    listed = counsellor.get("/api/v1/cases?status=closed").json()
    assert listed
    case = counsellor.get(f"/api/v1/cases/{listed[0]['id']}").json()
    assert case["incidents"][0]["description"].startswith("Demo (synthetisch erzeugt): ")
    assert case["land"] == "09"
    assert case["reported_by"] in ("self", "someone_else", "administration")


def test_without_demo_mode_the_worker_loads_nothing_and_the_dashboard_stays_empty(
    runtime: Runtime, worker: None, make_staff: MakeStaff, login: Any
) -> None:
    """Outside demo mode (as in production, which refuses RUECKHALT_DEMO altogether) the demo task files
    nothing and the loader refuses; there is no snapshot, and the dashboard says so."""
    plain = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update={"demo": False}))
    context.use(context.context_for(plain))
    assert worker_tasks.demo_year() is None
    with pytest.raises(ConfigurationError):
        load_synthetic_year(plain, today=TODAY)
    production = runtime.settings.model_copy(update={"mode": Mode.production})
    with pytest.raises(ConfigurationError):
        load_synthetic_year(dataclasses.replace(runtime, settings=production), today=TODAY)
    assert count(runtime, Case) == 0
    assert count(runtime, StatisticsExtract) == 0
    assert count(runtime, StatisticsSnapshot) == 0
    coordinator = login(make_staff(coordinator=True))
    assert "Noch keine freigegebene Auswertung" in coordinator.get("/intern/statistik").text
