"""Helpers of the backup tests (tests/backup): the command line as an operator's shell runs it, backup keys,
the empty place to restore into, and reports filed with files through the report form."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from service.cli import app
from service.config import get_settings
from service.crypto import PrivateKey, PublicKey, encode_private_key, generate_keypair
from tests.support.forms import csrf_token, report_form_tokens
from tests.support.retention import REPORT

runner = CliRunner()
# Larger than one archive chunk (1 MiB), so that an archive has several and "the last one cut" leaves some.
LARGE_TEXT = b"Zeile einer langen Chatnachricht mit Drohungen, als Text gesichert.\n" * 24_000
EVIDENCE = b"Uhrzeit 21:40, Anrufer unterdrueckt, sagte: Wir wissen, wo du wohnst.\n"


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def point_cli_at(monkeypatch: pytest.MonkeyPatch, data_dir: Path, database_url: str) -> None:
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", database_url)
    get_settings.cache_clear()


@dataclass(frozen=True)
class BackupKey:
    private: PrivateKey
    public: PublicKey
    private_file: Path


def write_key(folder: Path, name: str) -> BackupKey:
    private, public = generate_keypair()
    path = folder / name
    path.write_text(f"# test key\n{encode_private_key(private)}\n", encoding="utf-8")
    return BackupKey(private, public, path)


@dataclass
class Target:
    """A new empty database and data folder; the folder holds the server secrets and nothing else."""

    data_dir: Path
    database_url: str
    drop: Callable[[], None] = field(default=lambda: None)

    def entries(self) -> list[str]:
        return sorted(p.name for p in self.data_dir.iterdir())


def receipt_from(html: str) -> str:
    text = re.sub(r"<[^>]+>", "", html)
    match = re.search(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}", text)
    assert match, "the receipt page shows the code"
    return match.group(0)


@dataclass(frozen=True)
class FiledCase:
    receipt: str
    description: str
    # What the reporter sent, by file name: each must come back byte for byte.
    files: dict[str, bytes]


def file_with_files(client: TestClient, description: str, files: dict[str, bytes]) -> FiledCase:
    """File through the report form with files (as a browser does) and return the receipt."""
    page = client.get("/melden").text
    fields = {k: v for k, v in REPORT.items() if k != "contact_email"}
    response = client.post(
        "/melden",
        data={**fields, "description": description, "consent_counselling": "1", **report_form_tokens(page)},
        files=[("attachments", (name, data, "text/plain")) for name, data in files.items()],
    )
    assert response.status_code == 201, response.text
    return FiledCase(receipt_from(response.text), description, files)


def reporter_answers(runtime_client: TestClient, filed: FiledCase, text: str, pdf: bytes) -> None:
    """The reporter signs in on /fall and answers with a PDF."""
    form = {"csrf_token": csrf_token(runtime_client.get("/fall").text), "receipt": filed.receipt}
    assert runtime_client.post("/fall/anmelden", data=form).status_code == 200
    sent = runtime_client.post(
        "/fall/nachricht",
        data={"csrf_token": csrf_token(runtime_client.get("/fall").text), "message": text},
        files=[("message_files", ("Drohung.pdf", pdf, "application/pdf"))],
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text


@dataclass(frozen=True)
class Filed:
    cases: list[FiledCase]
    snapshot_month: str
