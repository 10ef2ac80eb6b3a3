"""``rueckhalt backup keygen``, a backup without a configured key, and ``rueckhalt backup prune``."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest

from service.backup.archive import archive_name
from service.config import Settings
from service.crypto import backup_key_id, decode_private_key, decode_public_key
from service.db import utcnow
from tests.support.backup import invoke, point_cli_at


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites_one(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given no key yet, then keygen writes the private key (0600) and the public key file, names the key id,
    and says to take the private key offline; a second run on the same file is refused and changes nothing."""
    point_cli_at(monkeypatch, settings.data_dir, settings.resolved_database_url)
    private_file, public_file = tmp_path / "backup.key", tmp_path / "backup.pub"

    made = invoke(
        "backup", "keygen", "--private-key-file", str(private_file), "--public-key-file", str(public_file)
    )

    assert made.exit_code == 0, made.output
    private = decode_private_key(private_file.read_text())
    public = decode_public_key(public_file.read_text())
    assert private.public_key() == public
    assert stat.S_IMODE(private_file.stat().st_mode) == 0o600
    assert backup_key_id(public) in made.stdout
    assert "keep it offline" in made.stdout
    kept = private_file.read_text()
    again = invoke("backup", "keygen", "--private-key-file", str(private_file))
    assert again.exit_code == 2
    assert "a key is never overwritten" in again.stderr
    assert private_file.read_text() == kept


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_backup_without_a_configured_key_says_how_to_make_one_and_writes_nothing(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_cli_at(monkeypatch, settings.data_dir, settings.resolved_database_url)
    monkeypatch.delenv("RUECKHALT_BACKUP_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("RUECKHALT_BACKUP_PUBLIC_KEY_FILE", raising=False)

    result = invoke("backup", str(tmp_path))

    assert result.exit_code == 1
    assert "rueckhalt backup keygen" in result.stderr
    assert "RUECKHALT_BACKUP_PUBLIC_KEY" in result.stderr
    assert list(tmp_path.glob("*.rhbk*")) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_prune_deletes_archives_past_the_period_but_never_the_newest(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given archives of 40, 31, 29 and 1 days ago and another file, then prune (30 days) deletes the two
    older archives only; with only old archives it keeps the newest and exits 1 with a warning."""
    point_cli_at(monkeypatch, settings.data_dir, settings.resolved_database_url)
    folder = tmp_path / "archives"
    folder.mkdir()
    now = utcnow()
    names = {days: archive_name(now - timedelta(days=days)) for days in (40, 31, 29, 1)}
    for name in names.values():
        (folder / name).write_bytes(b"x")
    (folder / "notes.txt").write_text("keep me")

    result = invoke("backup", "prune", str(folder))

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == sorted([names[29], names[1], "notes.txt"])
    stale = tmp_path / "stale"
    stale.mkdir()
    for days in (50, 40):
        (stale / archive_name(now - timedelta(days=days))).write_bytes(b"x")
    warned = invoke("backup", "prune", str(stale), "--keep-days", "30")
    assert warned.exit_code == 1
    assert "are backups still running?" in warned.stderr
    assert [p.name for p in stale.iterdir()] == [archive_name(now - timedelta(days=40))]
