"""The privacy budget ledger and release store: overspend refused, never re-noised, one spend at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from service.cli import app
from service.config import Settings, get_settings
from service.extract.models import StatisticsExtract
from service.runtime import Runtime
from service.statistics.domains import Domains, domains_from
from service.statistics.policy import PublicPolicy, load_statistics_policy
from service.statistics.public.ledger import MICRO, BudgetExceeded, release_year
from service.statistics.public.models import BudgetSpend, PrivacyBudget, PublicReleaseRecord
from service.statistics.rows import ExtractRow
from service.statistics.synthetic import generate
from tests.support.forms import report_body

YEAR = 2025


@pytest.fixture(scope="module")
def rows() -> list[ExtractRow]:
    return generate(f"{YEAR}-12", months=12, reports_per_year=2400, seed=11)


@pytest.fixture
def policy(settings: Settings) -> PublicPolicy:
    return load_statistics_policy(settings.policies_dir).public


@pytest.fixture
def domains(runtime: Runtime) -> Domains:
    return domains_from(runtime.taxonomy)


def other_parameters(policy: PublicPolicy, k1_epsilon: float) -> PublicPolicy:
    tables = tuple(t.model_copy(update={"epsilon": k1_epsilon}) if t.id == "K1" else t for t in policy.tables)
    return policy.model_copy(update={"tables": tables})


def test_a_release_spends_once_and_asking_again_returns_the_stored_numbers(
    runtime: Runtime, client: TestClient, rows: list[ExtractRow], policy: PublicPolicy, domains: Domains
) -> None:
    with runtime.sessions() as db:
        first = release_year(
            db, year=YEAR, policy=policy, domains=domains, audit=runtime.audit, rows=lambda: rows
        )
        db.commit()
    with runtime.sessions() as db:
        again = release_year(
            db, year=YEAR, policy=policy, domains=domains, audit=runtime.audit, rows=lambda: rows
        )
        db.commit()

    assert first.fresh is True
    assert again.fresh is False
    assert again.id == first.id
    assert again.release == first.release, "the stored numbers, not a new draw"
    assert first.spent_micro_epsilon == again.spent_micro_epsilon == 900_000
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(PublicReleaseRecord)) == 1
        assert db.scalar(select(func.count()).select_from(BudgetSpend)) == len(policy.tables)
        budget = db.get(PrivacyBudget, YEAR)
        assert budget is not None
        assert budget.total_micro_epsilon == MICRO
    (published,) = client.get("/api/v1/public/releases").json()
    assert published["year"] == YEAR
    assert published["epsilon_by_table"] == {t.id: t.epsilon for t in policy.tables}
    k1 = next(table for table in published["tables"] if table["id"] == "K1")
    assert [cell["key"] for cell in k1["cells"]] == [f"{YEAR}-{m:02d}" for m in range(1, 13)]
    assert all(cell["value"] >= 0 and cell["half_width"] > 0 for cell in k1["cells"])


def test_overspending_is_refused_and_nothing_is_drawn(
    runtime: Runtime, rows: list[ExtractRow], policy: PublicPolicy, domains: Domains
) -> None:
    with runtime.sessions() as db:
        release_year(db, year=YEAR, policy=policy, domains=domains, audit=runtime.audit, rows=lambda: rows)
        db.commit()
    drawn: list[int] = []

    def counted() -> list[ExtractRow]:
        drawn.append(1)
        return rows

    with runtime.sessions() as db, pytest.raises(BudgetExceeded):
        release_year(
            db,
            year=YEAR,
            policy=other_parameters(policy, 0.35),
            domains=domains,
            audit=runtime.audit,
            rows=counted,
        )
    assert drawn == [], "the data is not even read"
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(PublicReleaseRecord)) == 1
        assert db.get(PrivacyBudget, YEAR).spent_micro_epsilon == 900_000  # type: ignore[union-attr]


def test_two_concurrent_spends_cannot_both_pass(
    runtime: Runtime, rows: list[ExtractRow], policy: PublicPolicy, domains: Domains
) -> None:
    """Given two different parameter sets that each cost 0.9 of a budget of 1.0, started at the same time,
    exactly one is stored and the other is refused."""
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def attempt(variant: PublicPolicy) -> None:
        barrier.wait()
        try:
            with runtime.sessions() as db:
                release_year(
                    db, year=YEAR, policy=variant, domains=domains, audit=runtime.audit, rows=lambda: rows
                )
                db.commit()
            outcomes.append("stored")
        except BudgetExceeded:
            outcomes.append("refused")

    variants = [policy, other_parameters(policy, 0.40 - 1e-6)]
    threads = [threading.Thread(target=attempt, args=(variant,)) for variant in variants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == ["refused", "stored"]
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(PublicReleaseRecord)) == 1
        assert db.get(PrivacyBudget, YEAR).spent_micro_epsilon <= MICRO  # type: ignore[union-attr]


def test_the_public_releases_come_from_the_store_only(
    runtime: Runtime, client: TestClient, rows: list[ExtractRow], policy: PublicPolicy, domains: Domains
) -> None:
    with runtime.sessions() as db:
        release_year(db, year=YEAR, policy=policy, domains=domains, audit=runtime.audit, rows=lambda: rows)
        db.commit()
    before = client.get("/api/v1/public/releases").json()
    with runtime.sessions() as db:
        db.query(StatisticsExtract).delete()
        db.commit()
    assert client.get("/api/v1/public/releases").json() == before


@pytest.fixture
def cli_env(runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", settings.resolved_database_url)
    get_settings.cache_clear()
    yield runtime
    get_settings.cache_clear()


def test_the_release_command_shows_its_progress_and_keeps_the_stored_release(
    cli_env: Runtime, client: TestClient
) -> None:
    for _ in range(3):
        client.post(
            "/api/v1/reports",
            json=report_body(description="x"),
        )
    with cli_env.sessions() as db:
        year = int(db.scalars(select(StatisticsExtract.receipt_month)).first()[:4])  # type: ignore[index]
    runner = CliRunner()
    first = runner.invoke(app, ["stats", "release", "--year", str(year)])
    assert first.exit_code == 0, first.output
    assert "[1] checking the budget" in first.output
    assert "computed and published" in first.output
    assert f"budget {year}: 0.9 of 1 spent" in first.output
    second = runner.invoke(app, ["stats", "release", "--year", str(year)])
    assert "already published; the stored numbers are kept" in second.output
    releases: list[dict[str, Any]] = client.get("/api/v1/public/releases").json()
    assert [release["year"] for release in releases] == [year]
