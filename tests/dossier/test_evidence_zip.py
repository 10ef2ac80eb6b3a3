"""The evidence ZIP beside the dossier (service/dossier/archive.py): the files the dossier lists, each
byte-identical to what was uploaded, under the dossier's numbered names, with a ``SHA256SUMS`` that
``sha256sum -c`` accepts and whose hashes are the ones the dossier prints; for the reporter on /fall and a
counsellor holding the case (who else may not: test_download_access.py); nothing stored; audited without
content. Both databases
(the names are also checked as a pure function)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import subprocess
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.crypto import Context, new_data_key, seal, seal_stream
from service.dossier import archive
from service.dossier.names import MAX_NAME_CHARS, numbered, safe_file_name
from service.evidence.blobs import BlobStore
from service.evidence.models import Attachment
from service.runtime import Runtime
from tests.support.evidence import (
    PDF,
    SHA_PDF,
    SHA_TEXT,
    TEXT,
    Browsers,
    assert_nothing_in_clear,
    browsers,
    data_files,
    file_report,
    flat,
    holder_on_case_page,
    sign_in,
)
from tests.support.forms import csrf_token
from tests.support.staff import MakeStaff, Staff

SENT = [
    ("attachments", ("Screenshot Kommentar.pdf", PDF, "application/pdf")),
    ("attachments", ("Chatverlauf.txt", TEXT, "text/plain")),
]
NAMES = ["01-Screenshot Kommentar.pdf", "02-Chatverlauf.txt"]


@pytest.fixture
def open_browser(runtime: Runtime) -> Iterator[Browsers]:
    with browsers(runtime) as made:
        yield made


def filed_reporter(open_browser: Browsers) -> tuple[TestClient, str]:
    reporter = open_browser.new()
    receipt = file_report(reporter, SENT, occurred_on="2026-11-28")
    sign_in(reporter, receipt)
    return reporter, receipt


def zip_events(runtime: Runtime) -> list[AuditEvent]:
    with runtime.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == "evidence.zip")).all())


def unpacked(content: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None, "every entry's CRC checks"
    return archive


def sums_of(archive: zipfile.ZipFile) -> dict[str, str]:
    """SHA256SUMS as name -> hash; each line exactly in sha256sum's text format."""
    lines = archive.read("SHA256SUMS").decode().splitlines()
    found = {}
    for line in lines:
        match = re.fullmatch(r"([0-9a-f]{64})  (.+)", line)
        assert match, line
        found[match.group(2)] = match.group(1)
    return found


def reporter_zip(reporter: TestClient) -> bytes:
    token = csrf_token(reporter.get("/fall").text)
    response = reporter.post("/fall/beweise", data={"csrf_token": token})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith('attachment; filename="Beweisdateien-')
    assert "no-store" in response.headers["cache-control"]
    return response.content


def reporter_dossier_text(reporter: TestClient) -> str:
    token = csrf_token(reporter.get("/fall").text)
    response = reporter.post("/fall/dossier", data={"csrf_token": token})
    assert response.status_code == 200
    reader = PdfReader(io.BytesIO(response.content))
    return flat("\n".join(page.extract_text() for page in reader.pages))


def assert_listed_in_dossier(dossier_text: str, sums: dict[str, str]) -> None:
    """Each ZIP entry is listed in the dossier under its name, followed by the same hash."""
    for name, digest in sums.items():
        pattern = re.escape(name) + r" (?:(?!SHA-256:).)*SHA-256: " + digest
        assert re.search(pattern, dossier_text), name


def test_the_reporter_gets_the_files_byte_identical_with_sums_that_match_the_dossier(
    runtime: Runtime, open_browser: Browsers, tmp_path: Path
) -> None:
    reporter, _ = filed_reporter(open_browser)
    page = reporter.get("/fall").text
    assert 'action="/fall/beweise"' in page
    before = data_files(runtime)

    archive = unpacked(reporter_zip(reporter))
    assert archive.namelist() == ["SHA256SUMS", *NAMES]
    assert archive.read(NAMES[0]) == PDF
    assert archive.read(NAMES[1]) == TEXT
    sums = sums_of(archive)
    assert sums == {NAMES[0]: SHA_PDF, NAMES[1]: SHA_TEXT}
    for name, digest in sums.items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    # The standard tool accepts the file as it is.
    archive.extractall(tmp_path)
    checked = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=tmp_path, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.decode().count(": OK") == 2

    # The dossier lists the same files under the same names with the same hashes, and says how to check.
    dossier_text = reporter_dossier_text(reporter)
    assert_listed_in_dossier(dossier_text, sums)
    assert "sha256sum -c SHA256SUMS" in dossier_text

    # Audited without content; nothing new in the data folder; nothing of it in clear in the database.
    (event,) = zip_events(runtime)
    assert (event.actor_kind, event.actor_id) == ("reporter", None)
    assert event.details == {"files": 2}
    assert data_files(runtime) == before
    assert_nothing_in_clear(runtime, [SHA_PDF, SHA_TEXT, "Chatverlauf", "Screenshot Kommentar"])


def test_unsafe_stored_names_and_unsealed_hashes_still_give_a_checkable_zip(
    runtime: Runtime, open_browser: Browsers
) -> None:
    reporter, receipt = filed_reporter(open_browser)
    # As files stored before names were checked and before uploads were hashed: folder parts, a bidi
    # override, a NUL and a line break in the name, no sealed hash.
    hostile = ["../../etc/Rechnung\u202efdp.txt", "C:\\Users\\x\\Chat\x00\nverlauf\u200b.txt"]
    with runtime.sessions() as db:
        key = runtime.intake.open_case(db, receipt).data_key
        rows = db.scalars(select(Attachment).order_by(Attachment.created_at, Attachment.id)).all()
        for attachment, name in zip(rows, hostile, strict=True):
            context = Context("attachment_meta", case_id=attachment.case_id, record_id=attachment.id)
            meta = {"filename": name, "content_type": attachment.content_type}
            attachment.meta_ciphertext = seal(key, json.dumps(meta).encode(), context)
        db.commit()

    archive = unpacked(reporter_zip(reporter))
    names = archive.namelist()
    assert names[0] == "SHA256SUMS"
    assert len(names) == 3
    for name in names[1:]:
        assert re.fullmatch(r"0[12]-.+", name), name
        assert "/" not in name
        assert "\\" not in name
        assert all(unicodedata.category(char)[0] != "C" for char in name), ascii(name)
    # Every file still arrives intact and checks against the (now computed) hashes.
    sums = sums_of(archive)
    assert sorted(sums.values()) == sorted([SHA_PDF, SHA_TEXT])
    assert sorted(archive.read(name) for name in names[1:]) == sorted([PDF, TEXT])
    for name, digest in sums.items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    assert_listed_in_dossier(reporter_dossier_text(reporter), sums)
    (event,) = zip_events(runtime)
    assert event.details == {"files": 2}
    assert_nothing_in_clear(runtime, [SHA_PDF, SHA_TEXT])


def test_a_holding_counsellor_gets_the_zip(
    runtime: Runtime, open_browser: Browsers, make_staff: MakeStaff, code: Callable[[Staff], str]
) -> None:
    filed_reporter(open_browser)
    holder, counsellor, url, page = holder_on_case_page(runtime, open_browser, make_staff, code)
    assert f'action="{url}/beweise"' in page
    before = data_files(runtime)

    response = counsellor.post(f"{url}/beweise", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    archive = unpacked(response.content)
    assert archive.namelist() == ["SHA256SUMS", *NAMES]
    assert [archive.read(name) for name in NAMES] == [PDF, TEXT]
    assert sums_of(archive) == {NAMES[0]: SHA_PDF, NAMES[1]: SHA_TEXT}
    (event,) = zip_events(runtime)
    assert (event.actor_kind, event.actor_id) == ("staff", holder.user_id)
    assert event.details == {"files": 2}
    assert "Beweisdateien als ZIP heruntergeladen" in counsellor.get(url).text
    assert data_files(runtime) == before

    assert_nothing_in_clear(runtime, [SHA_PDF, SHA_TEXT, "Chatverlauf"])


@pytest.mark.parametrize(
    ("sent", "safe"),
    [
        ("Drohbrief.pdf", "Drohbrief.pdf"),
        ("Ordner/Unterordner/Bild.png", "Ordner_Unterordner_Bild.png"),
        ("..\\..\\boot.ini", "_.._boot.ini"),
        ("Rechnung\u202efdp.exe", "Rechnung_fdp.exe"),
        ("a\x00b\nc\u2028d\u200be.txt", "a_b_c_d_e.txt"),
        ('Wer: "du"? <ja>|*.txt', "Wer_ _du__ _ja___.txt"),
        ("..versteckt.txt. . ", "versteckt.txt"),
        ("", "datei"),
        ("...", "datei"),
        # Composed (NFC), so the name is the same on every system that unpacks it.
        ("Mu\u0308nchen.txt", "M\u00fcnchen.txt"),
    ],
)
def test_names_in_the_zip_are_plain_file_names(sent: str, safe: str) -> None:
    assert safe_file_name(sent) == safe


def test_long_names_keep_their_extension_and_numbers_sort_as_listed() -> None:
    long = safe_file_name("x" * 400 + ".pdf")
    assert len(long) == MAX_NAME_CHARS
    assert long.endswith("x.pdf")
    assert numbered(3, 9, "a.pdf") == "03-a.pdf"
    assert numbered(7, 120, "a.pdf") == "007-a.pdf"


def test_the_archive_streams_in_pieces_while_each_file_is_decrypted(tmp_path: Path) -> None:
    """A large incompressible file goes out in many pieces, none near the file's size: the archive is
    never held whole (nor written anywhere), and what arrives unpacks to the file."""
    blobs = BlobStore(tmp_path / "blobs")
    key = new_data_key()
    content = secrets.token_bytes(1024 * 1024)
    name = blobs.new_name()
    context = Context("attachment", case_id="c" * 36, record_id="a" * 36)
    with blobs.open_temp(name) as sink:
        seal_stream(key, context, io.BytesIO(content), sink)
    blobs.commit(name)
    member = archive.Member(
        entry_name="01-Aufnahme.bin",
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        received_at=datetime(2026, 11, 28, 20, 40, tzinfo=UTC),
        case_id="c" * 36,
        attachment_id="a" * 36,
        blob_name=name,
    )
    pieces = list(archive.stream([member], key, blobs, datetime(2026, 12, 6, tzinfo=UTC)))
    assert len(pieces) > 8
    assert max(len(piece) for piece in pieces) < len(content) // 4
    unpacked_archive = unpacked(b"".join(pieces))
    assert unpacked_archive.read("01-Aufnahme.bin") == content
    assert unpacked_archive.getinfo("01-Aufnahme.bin").date_time == (2026, 11, 28, 21, 40, 0)
    assert sums_of(unpacked_archive) == {"01-Aufnahme.bin": member.sha256}
