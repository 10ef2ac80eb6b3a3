"""An archive made before a secret rotation restores afterwards with the rotated secrets' previous values: the
audit chain's two segments verify, a receipt still finds its case. On SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.runtime import build_runtime
from tests.support.backup import EVIDENCE, BackupKey, Target, file_with_files, invoke, point_cli_at


def test_an_archive_from_before_a_rotation_restores_and_verifies_across_it(
    cli_env: None,
    client: TestClient,
    settings: Settings,
    backup_key: BackupKey,
    restore_target: Target,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    filed = file_with_files(client, "Drohung am Telefon, Uhrzeit notiert.", {"Notiz.txt": EVIDENCE})
    archive = tmp_path / "before.rhbk"
    assert invoke("backup", str(archive)).exit_code == 0
    for name in ("audit_key", "lookup_pepper"):
        rotated = invoke("secrets", "rotate", name, "--yes")
        assert rotated.exit_code == 0, rotated.output

    # The operator's copy of the secrets as they are now: new values, the old ones as *.previous.
    shutil.rmtree(restore_target.data_dir / "secrets")
    shutil.copytree(settings.data_dir / "secrets", restore_target.data_dir / "secrets")
    point_cli_at(monkeypatch, restore_target.data_dir, restore_target.database_url)
    restored = invoke("restore", str(archive), "--key", str(backup_key.private_file))
    assert restored.exit_code == 0, restored.output + restored.stderr
    verified = invoke("audit", "verify")
    assert verified.exit_code == 0, verified.output

    runtime = build_runtime(
        Settings(data_dir=restore_target.data_dir, database_url=restore_target.database_url)
    )
    try:
        with runtime.sessions() as db:
            assert runtime.intake.open_case(db, filed.receipt).case is not None
    finally:
        runtime.dispose()
