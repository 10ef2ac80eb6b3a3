"""``rueckhalt backup``, then ``rueckhalt restore`` into a new empty database and data folder, on both
databases: everything a counsellor and a reporter had comes back, and the archive gives nothing to whoever
lacks the key."""

from __future__ import annotations

import base64
import io
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import SECRET_NAMES, Settings
from service.crypto import ArchiveReader, PrivateKey
from service.evidence.blobs import BlobStore
from service.runtime import Runtime, build_runtime
from service.statistics.dashboard.service import snapshot_of
from tests.support.backup import EVIDENCE, LARGE_TEXT, BackupKey, Filed, Target, invoke, point_cli_at
from tests.support.custody import secrets_in
from tests.support.forms import csrf_token
from tests.support.retention import PDF
from tests.support.stack import pg_bin
from tests.support.staff import Clock, Staff, weak_accounts


def every_attachment(case: dict[str, Any]) -> list[dict[str, Any]]:
    found = {a["id"]: a for a in case["attachments"]}
    for message in case["messages"]:
        found.update({a["id"]: a for a in message.get("attachments", [])})
    return list(found.values())


def decrypted_members(archive: Path, private: PrivateKey) -> dict[str, bytes]:
    with archive.open("rb") as raw:
        reader = ArchiveReader(private, raw)
        plain = reader.read()
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tar:
        return {
            info.name: tar.extractfile(info).read()  # type: ignore[union-attr]
            for info in tar.getmembers()
        }


def readable_database(members: dict[str, bytes], folder: Path) -> bytes:
    """The database as text where it is compressed: pg_dump's custom format turned into SQL by pg_restore."""
    parts = [data for name, data in sorted(members.items()) if name.startswith("database/pg_dump.")]
    if not parts:
        return members["database/rueckhalt.sqlite3"]
    dump = folder / "dump.pgdump"
    dump.write_bytes(b"".join(parts))
    return subprocess.run(
        [pg_bin("pg_restore"), "--file=-", str(dump)], check=True, capture_output=True
    ).stdout


@pytest.mark.usefixtures("cli_env")
def test_a_restore_into_an_empty_database_and_folder_brings_back_every_case(
    runtime: Runtime,
    filed: Filed,
    counsellor_staff: Staff,
    login: Callable[[Staff], TestClient],
    code: Callable[[Staff], str],
    clock: Clock,
    restore_target: Target,
    backup_key: BackupKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given three reports with files, a counsellor's message, the reporter's answer with a PDF and a
    statistics snapshot, when the operator backs up, starts again from a new empty database and a data folder
    holding only the secrets, and restores, then the counsellor signs in and opens every case as before, every
    file downloads byte-identical for the counsellor and the reporter (who opens /fall with the receipt), the
    snapshot is there and `rueckhalt audit verify` passes."""
    counsellor = login(counsellor_staff)
    before = {
        item["id"]: counsellor.get(f"/api/v1/cases/{item['id']}").json()
        for item in counsellor.get("/api/v1/cases").json()
    }
    files_before = {
        (case_id, attachment["id"]): counsellor.get(
            f"/api/v1/cases/{case_id}/attachments/{attachment['id']}"
        ).content
        for case_id, case in before.items()
        for attachment in every_attachment(case)
    }
    assert len(files_before) == 4
    assert {PDF, EVIDENCE, LARGE_TEXT} <= set(files_before.values())
    with runtime.sessions() as db:
        snapshot = snapshot_of(db, filed.snapshot_month)
    assert snapshot is not None
    archives = tmp_path / "archives"
    archives.mkdir()

    made = invoke("backup", str(archives))

    assert made.exit_code == 0, made.output
    assert "The archive holds NO server secrets" in made.stdout
    assert "Das Archiv enthält KEINE Server-Geheimnisse" in made.stdout
    for name in SECRET_NAMES:
        assert f"RUECKHALT_{name.upper()}" in made.stdout, "each secret the restore needs is named"
    (archive,) = archives.iterdir()
    assert archive.name.startswith("rueckhalt-")
    assert archive.name.endswith(".rhbk")
    assert restore_target.entries() == ["secrets"]

    point_cli_at(monkeypatch, restore_target.data_dir, restore_target.database_url)
    restored = invoke("restore", str(archive), "--key", str(backup_key.private_file))

    assert restored.exit_code == 0, restored.output
    assert "audit chain intact" in restored.stdout
    settings = Settings(data_dir=restore_target.data_dir, database_url=restore_target.database_url)
    again = build_runtime(settings)
    weak_accounts(again, clock)
    try:
        with TestClient(create_app(runtime=again), base_url="http://127.0.0.1") as staff:
            body = {"email": counsellor_staff.email, "password": counsellor_staff.password}
            signed_in = staff.post("/api/v1/session", json={**body, "totp": code(counsellor_staff)})
            assert signed_in.status_code == 200, signed_in.text
            staff.headers["X-CSRF-Token"] = signed_in.json()["csrf_token"]
            assert sorted(item["id"] for item in staff.get("/api/v1/cases").json()) == sorted(before)
            for case_id, case in before.items():
                after = staff.get(f"/api/v1/cases/{case_id}").json()
                # The history is the audit trail of the case: it keeps every event and adds the views since.
                history = after.pop("history")
                assert history[: len(case["history"])] == case["history"]
                # Grants and routing records of one intake share their timestamp, and the page orders by it
                # alone: PostgreSQL returns such ties in physical order, which a restore may change.
                for key in ("holders", "routing"):
                    assert sorted(map(repr, after.pop(key))) == sorted(map(repr, case[key]))
                assert after == {k: v for k, v in case.items() if k not in ("history", "holders", "routing")}
                page = staff.get(f"/intern/faelle/{case_id}")
                assert page.status_code == 200
                assert case["incidents"][0]["description"] in page.text
            for (case_id, attachment_id), content in files_before.items():
                download = staff.get(f"/api/v1/cases/{case_id}/attachments/{attachment_id}")
                assert download.status_code == 200
                assert download.content == content

        for filed_case in filed.cases:
            (case,) = [
                c for c in before.values() if c["incidents"][0]["description"] == filed_case.description
            ]
            with TestClient(create_app(runtime=again), base_url="http://127.0.0.1") as reporter:
                form = {"csrf_token": csrf_token(reporter.get("/fall").text), "receipt": filed_case.receipt}
                opened = reporter.post("/fall/anmelden", data=form)
                assert opened.status_code == 200
                assert filed_case.description in opened.text
                by_name = {a["filename"]: a["id"] for a in every_attachment(case)}
                for name, content in filed_case.files.items():
                    download = reporter.get(f"/fall/anhang/{by_name[name]}")
                    assert download.status_code == 200
                    assert download.content == content
        with again.sessions() as db:
            assert snapshot_of(db, filed.snapshot_month) == snapshot
    finally:
        again.dispose()

    verified = invoke("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert "audit chain intact" in verified.stdout


@pytest.mark.usefixtures("cli_env")
def test_the_archive_holds_no_secret_and_reveals_nothing_without_the_private_key(
    settings: Settings, runtime: Runtime, filed: Filed, backup_key: BackupKey, tmp_path: Path
) -> None:
    """Given a backup of cases with files, then the archive's bytes show no table name, no database or tar
    format, no file and no blob name; decrypted with the private key it holds the database, the files and
    the policies, but none of the seven server secrets in any encoding (pg_dump's compressed tables are
    read as SQL)."""
    archive = tmp_path / "backup.rhbk"
    made = invoke("backup", str(archive))
    assert made.exit_code == 0, made.output
    raw = archive.read_bytes()
    blob_names = [blob.name for blob in BlobStore(settings.blob_dir).stored()]
    assert blob_names

    for marker in [
        b"case_file",
        b"staff_user",
        b"audit_event",
        b"alembic_version",
        b"PGDMP",
        b"SQLite format 3",
        b"ustar",
        b"backup.json",
        b"manifest.json",
        b"policies/",
        b"beratung-by",
        EVIDENCE[:24],
        LARGE_TEXT[:24],
        PDF[:16],
        *(name.encode() for name in blob_names),
    ]:
        assert marker not in raw, marker

    members = decrypted_members(archive, backup_key.private)
    assert {f"blobs/{name[:2]}/{name}" for name in blob_names} <= set(members)
    assert "policies/routing.yaml" in members
    database = readable_database(members, tmp_path)
    assert b"case_file" in database, "the check reads the real database"
    plaintext = database + b"".join(members.values())
    secrets = secrets_in(settings.data_dir / "secrets")
    assert len(secrets) == len(SECRET_NAMES)
    for secret in secrets:
        for form in (secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret)):
            assert form not in plaintext
