"""The demo's staff accounts: written once to demo-credentials.json (0600), and each of them signs in."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app
from service.config import ConfigurationError, Mode, Settings, get_settings
from service.crypto import totp_code, totp_secret_from_base32
from service.demo import load_demo
from service.runtime import build_runtime
from tests.support.staff import WEAK


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Iterator[Settings]:
    """Settings from the environment, as the command line reads them; on SQLite and on PostgreSQL."""
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    assert CliRunner().invoke(app, ["migrate"]).exit_code == 0
    yield get_settings()
    get_settings.cache_clear()


def test_demo_credentials_file_works_as_written(env_settings: Settings) -> None:
    summary = load_demo(env_settings, argon2_params=WEAK)
    assert summary["staff_accounts_created"] == 5
    path = env_settings.data_dir / "demo-credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entries = json.loads(path.read_text())
    assert sorted(entry["role"] for entry in entries) == [
        "admin",
        "coordinator",
        "counsellor",
        "counsellor",
        "lead",
    ]
    counsellor_orgs = {tuple(entry["organisations"]) for entry in entries if entry["role"] == "counsellor"}
    assert counsellor_orgs == {
        ("Beratungsstelle Rückhalt Bayern (Demo)",),
        ("Online-Hass-Hilfe Rückhalt (Demo)",),
    }

    runtime = build_runtime(env_settings)
    try:
        for entry in entries:
            with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
                code = totp_code(totp_secret_from_base32(entry["totp_secret"]), time.time())
                response = client.post(
                    "/api/v1/session",
                    json={"email": entry["email"], "password": entry["password"], "totp": code},
                )
                assert response.status_code == 200, (entry["email"], response.text)
                body = response.json()
                assert body["must_change_password"] is False, "demo accounts need no password change"
                names = [m["organisation_name"] for m in body["user"]["memberships"]]
                assert names == entry["organisations"]
                assert body["user"]["is_admin"] is (entry["role"] == "admin")
                assert body["user"]["is_coordinator"] is (entry["role"] == "coordinator")
    finally:
        runtime.dispose()

    # A second run keeps the accounts and the file as they are.
    assert load_demo(env_settings, argon2_params=WEAK)["staff_accounts_created"] == 0
    assert json.loads(path.read_text()) == entries


def test_the_demo_refuses_production(tmp_path: Path) -> None:
    settings = Settings(mode=Mode.production, data_dir=tmp_path, database_url="postgresql+psycopg://x@h/x")
    with pytest.raises(ConfigurationError, match="production"):
        load_demo(settings, argon2_params=WEAK)
    assert not (tmp_path / "demo-credentials.json").exists()
