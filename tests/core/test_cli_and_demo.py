"""The operator's command line and the demo data that `make run` loads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from service.audit.models import AuditEvent
from service.cases.models import Case
from service.cli import app
from service.config import Settings, get_settings
from service.crypto import Argon2Params
from service.demo import load_demo
from service.identity.models import Organisation
from service.runtime import build_runtime
from service.statistics.public.ledger import published

# The demo's staff accounts are sealed with these in tests (tests/auth covers the production parameters).
WEAK = Argon2Params(memory_kib=8192, iterations=1, lanes=1)


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_org_create_makes_no_key_and_prints_no_secret(env_settings: Settings) -> None:
    """The operator's `org create` makes an organisation that cannot receive cases yet: its first lead makes
    the key pair. Nothing printed and nothing stored opens anything; the creation is audited."""
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    result = runner.invoke(app, ["org", "create", "Beratungsstelle Nord", "--slug", "beratung-nord"])
    assert result.exit_code == 0, result.output
    assert "RECOVERY" not in result.output.upper().replace("RECOVERY SHARES", "")
    assert "/intern/organisationen" in result.output

    runtime = build_runtime(env_settings)
    try:
        with runtime.sessions() as session:
            org = session.scalars(select(Organisation).where(Organisation.slug == "beratung-nord")).one()
            actions = session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == org.id)).all()
        assert org.public_key is None
        assert org.recovery_sealed_private_key is None
        assert org.recovery_public_key is None
        assert actions == ["organisation.create"]
    finally:
        runtime.dispose()

    listed = runner.invoke(app, ["org", "list"])
    assert "beratung-nord" in listed.output
    assert "key: NO" in listed.output
    again = runner.invoke(app, ["org", "create", "Doppelt", "--slug", "beratung-nord"])
    assert again.exit_code == 1
    assert "exists already" in again.output


def test_org_create_refuses_a_bad_slug(env_settings: Settings) -> None:
    runner = CliRunner()
    runner.invoke(app, ["migrate"])
    result = runner.invoke(app, ["org", "create", "X", "--slug", "../etc"])
    assert result.exit_code == 1


def test_demo_data_loads_once_and_a_second_run_keeps_it(env_settings: Settings) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    first = load_demo(env_settings, argon2_params=WEAK)
    second = load_demo(env_settings, argon2_params=WEAK)
    assert first["reports_filed"] == 3
    assert first["organisations_created"] > 16
    assert first["staff_accounts_created"] == 5
    assert second == {"organisations_created": 0, "reports_filed": 0, "staff_accounts_created": 0}
    receipts = json.loads((env_settings.data_dir / "demo-receipts.json").read_text())
    assert len(receipts) == 3
    assert (env_settings.data_dir / "demo-receipts.json").stat().st_mode & 0o077 == 0
    runtime = build_runtime(env_settings)
    try:
        with runtime.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Case).where(Case.demo.is_(True))) == 3
            opened = runtime.intake.open_case(session, receipts[0]["receipt"])
            assert opened.case.land == "09"
            # The synthetic year and its release follow in the worker (tests/core/test_demo_year.py).
            assert published(session) == []
    finally:
        runtime.dispose()


def test_demo_is_refused_in_production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RUECKHALT_MODE", "production")
    monkeypatch.setenv("RUECKHALT_DEMO", "true")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["demo"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2


def test_policy_check_reads_the_organisations_from_the_database(env_settings: Settings) -> None:
    runner = CliRunner()
    runner.invoke(app, ["migrate"])
    result = runner.invoke(app, ["policy", "check"])
    # No organisation is set up yet: every one of them is named as missing.
    assert result.exit_code == 1
    assert "beratung-by" in result.output
    load_demo(env_settings, argon2_params=WEAK)
    assert runner.invoke(app, ["policy", "check"]).exit_code == 0
