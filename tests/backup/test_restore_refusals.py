"""What ``rueckhalt restore`` refuses, on both databases: a changed or cut archive, one made for another
backup key or under other server secrets, and any target that is not empty. Each refusal says why, in German
and English, exits 1 and leaves the database and the data folder exactly as they were."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.backup import database
from service.crypto import DEFAULT_CHUNK_BYTES
from service.crypto.archive import ARCHIVE_CHUNK_BYTES, HEADER_BYTES
from service.crypto.stream import HEADER_BYTES as STREAM_HEADER_BYTES
from service.db import make_engine
from service.migrate import upgrade
from tests.support.backup import (
    LARGE_TEXT,
    BackupKey,
    Target,
    file_with_files,
    invoke,
    point_cli_at,
    write_key,
)

assert DEFAULT_CHUNK_BYTES < ARCHIVE_CHUNK_BYTES
RECORD_BYTES = ARCHIVE_CHUNK_BYTES + 16


@pytest.fixture
def archive(cli_env: None, client: TestClient, tmp_path: Path) -> Path:
    """A backup of one report with a file larger than a chunk: the archive has several chunks."""
    file_with_files(client, "Drohung per Messenger, Verlauf gesichert.", {"Chat.txt": LARGE_TEXT})
    path = tmp_path / "backup.rhbk"
    made = invoke("backup", str(path))
    assert made.exit_code == 0, made.output
    assert (path.stat().st_size - HEADER_BYTES - STREAM_HEADER_BYTES) > RECORD_BYTES
    return path


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def cut_last_chunk(path: Path) -> None:
    data = path.read_bytes()
    body = len(data) - HEADER_BYTES - STREAM_HEADER_BYTES
    last = body % RECORD_BYTES or RECORD_BYTES
    path.write_bytes(data[: len(data) - last])


def tables(target: Target) -> list[str]:
    engine = make_engine(target.database_url)
    try:
        return database.table_names(engine, target.database_url)
    finally:
        engine.dispose()


REFUSALS = {
    "flipped_byte": ("The archive is damaged, altered or cut short", "Das Archiv ist beschädigt"),
    "last_chunk_cut": ("The archive is damaged, altered or cut short", "Das Archiv ist beschädigt"),
    "other_backup_key": ("The archive is encrypted to backup key", "für den Sicherungsschlüssel"),
    "other_secrets": (
        "The archive was made with other server secrets: RUECKHALT_AUDIT_KEY differs",
        "mit anderen Server-Geheimnissen",
    ),
    "database_not_empty": ("The database (RUECKHALT_DATABASE_URL) is not empty", "Die Datenbank"),
    "data_folder_not_empty": ("is not empty (blobs)", "Der Datenordner"),
}


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_restore_is_refused_with_a_clear_message_and_restores_nothing(
    refusal: str,
    archive: Path,
    backup_key: BackupKey,
    restore_target: Target,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given a good archive and an empty target, when one thing is wrong (the archive changed in one byte,
    its last chunk cut off, another backup key given, another audit key set, a migrated database or a
    folder with files as the target), then the restore exits 1 with that reason in German and English and
    "Nothing was restored", and the database and the data folder are as they were."""
    key_file = backup_key.private_file
    if refusal == "flipped_byte":
        flip_middle_byte(archive)
    elif refusal == "last_chunk_cut":
        cut_last_chunk(archive)
    elif refusal == "other_backup_key":
        key_file = write_key(tmp_path, "other.key").private_file
    elif refusal == "other_secrets":
        (restore_target.data_dir / "secrets" / "audit_key.key").write_text(secrets.token_hex(32) + "\n")
    elif refusal == "database_not_empty":
        engine = make_engine(restore_target.database_url)
        upgrade(engine)
        engine.dispose()
    elif refusal == "data_folder_not_empty":
        (restore_target.data_dir / "blobs" / "ab").mkdir(parents=True)
        (restore_target.data_dir / "blobs" / "ab" / ("ab" + "0" * 30)).write_bytes(b"left over")
    tables_before, entries_before = tables(restore_target), restore_target.entries()

    point_cli_at(monkeypatch, restore_target.data_dir, restore_target.database_url)
    result = invoke("restore", str(archive), "--key", str(key_file))

    english, german = REFUSALS[refusal]
    assert result.exit_code == 1, result.output
    assert "Wiederherstellung abgelehnt / restore refused" in result.stderr
    assert english in result.stderr
    assert german in result.stderr
    assert "Es wurde nichts wiederhergestellt. / Nothing was restored." in result.stderr
    assert result.stdout == ""
    assert tables(restore_target) == tables_before
    assert restore_target.entries() == entries_before
    if refusal != "database_not_empty":
        assert tables_before == []
    if refusal not in ("data_folder_not_empty", "database_not_empty"):
        assert entries_before == ["secrets"]
