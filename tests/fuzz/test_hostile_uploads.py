"""The hostile files and requests of tests/corpus/uploads.yaml, on every form that takes files.

Refused: the status of the reason, nothing stored and no blob left (not even a partial one), nothing of the
file in the answer. Accepted: kept in the type its content has (never the claimed one), downloaded as an
attachment with nosniff under a clean name, metadata gone from images, the name shown escaped, and every
blob under a random name inside the blob folder. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import gzip
import io
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import markupsafe
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.reports.schemas import is_control
from tests.corpus.generate import CAMERA_MAKE, GPS_IFD, expand, make_file
from tests.corpus.loader import UploadItem, upload_items
from tests.support.forms import csrf_token, submission_token
from tests.support.fuzz import World, receipt_from, snapshot, unchanged

REPORT = {"land": "09", "district_ags": "09162", "type_codes": ["A3a"], "channel": "letter"}
BLOB = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{32}$")


@dataclass
class Clients:
    anonymous: TestClient
    reporter: TestClient
    counsellor: TestClient


@pytest.fixture(scope="module")
def clients(world: World) -> Iterator[Clients]:
    with (
        world.client() as anonymous,
        world.client() as reporter,
        world.staff_client("counsellor") as counsellor,
    ):
        world.reporter(reporter)
        yield Clients(anonymous, reporter, counsellor)


@dataclass(frozen=True)
class Form:
    url: Callable[[World], str]
    sender: Callable[[Clients], TestClient]
    fields: dict[str, Any]
    ok: int
    # Whether the reporter's /fall lists the files sent here by name (files that go with messages).
    named_on_fall: bool


FORMS: dict[str, Form] = {
    "report": Form(
        lambda w: "/melden", lambda c: c.anonymous, {**REPORT, "description": "Drohbrief."}, 201, False
    ),
    "incident": Form(
        lambda w: "/fall/vorfall",
        lambda c: c.reporter,
        {"type_codes": ["A11"], "channel": "in_person.home", "description": "Wieder da."},
        200,
        False,
    ),
    "reporter-message": Form(
        lambda w: "/fall/nachricht", lambda c: c.reporter, {"message": "Hier das Foto."}, 303, True
    ),
    "staff-message": Form(
        lambda w: f"/intern/faelle/{w.case_id}/nachricht",
        lambda c: c.counsellor,
        {"message": "Anbei das Merkblatt."},
        303,
        True,
    ),
}


def cases() -> list[tuple[UploadItem, str]]:
    return [
        (item, form)
        for item in upload_items()
        for form in sorted(FORMS)
        if form == "report" or not item.report_only
    ]


def hostile_request(item: UploadItem, marker: str) -> tuple[bytes, dict[str, str]]:
    """A whole request of the corpus: its body and headers."""
    spec = item.request or {}
    if "gzip" in spec:
        boundary = "grenze"
        body = gzip.compress(b"\0" * int(spec["gzip"]))
        return body, {"content-type": f"multipart/form-data; boundary={boundary}", "content-encoding": "gzip"}
    if "pad" in spec:
        boundary = "grenze"
        part = f'--{boundary}\r\nContent-Disposition: form-data; name="description"\r\n\r\n'.encode()
        body = part + b"x" * int(spec["pad"]) + f"\r\n--{boundary}--\r\n".encode()
        return body, {"content-type": f"multipart/form-data; boundary={boundary}"}
    raw = expand(str(spec.get("raw", f"description={marker}")), marker).encode()
    return raw, {"content-type": str(spec["content_type"])}


def multipart(fields: dict[str, Any], files: list[tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body written by hand: file names go out as raw bytes, exactly as the corpus
    has them (a client library would percent-encode a quote or a NUL, and the server would never see it)."""
    boundary = f"grenze{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        for single in value if isinstance(value, list) else [value]:
            head = f'Content-Disposition: form-data; name="{name}"\r\n\r\n'
            parts.append(head.encode() + str(single).encode())
    for filename, content, content_type in files:
        head = f'Content-Disposition: form-data; name="attachments"; filename="{filename}"\r\n'
        head += f"Content-Type: {content_type}\r\n\r\n"
        parts.append(head.encode() + content)
    body = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts)
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def send(item: UploadItem, form: Form, world: World, clients: Clients, marker: str) -> httpx2.Response:
    client = form.sender(clients)
    if item.request is not None:
        body, headers = hostile_request(item, marker)
        return client.post(form.url(world), content=body, headers=headers, follow_redirects=False)
    assert item.file is not None
    # The form token belongs to the client's CSRF cookie; /melden hands it out without an audited view.
    page = client.get("/melden").text
    fields = {"csrf_token": csrf_token(page), **form.fields}
    # The two forms that file (a report, an incident) take a view's single-use token.
    if form.url(world) == "/melden":
        fields["submission_token"] = submission_token(page)
    elif form.url(world) == "/fall/vorfall":
        fields["submission_token"] = submission_token(client.get("/fall").text)
    content = make_file(item.file, marker)
    name = expand(item.filename, marker)
    body, content_type = multipart(fields, [(name, content, item.content_type)] * item.count)
    return client.post(
        form.url(world), content=body, headers={"content-type": content_type}, follow_redirects=False
    )


@pytest.mark.parametrize(("item", "form"), cases(), ids=lambda value: getattr(value, "id", value))
def test_hostile_upload(item: UploadItem, form: str, world: World, clients: Clients) -> None:
    marker = f"QXU{uuid.uuid4().hex[:12].upper()}"
    if not item.accepted:
        with unchanged(world.runtime):
            answer = send(item, FORMS[form], world, clients, marker)
        assert answer.status_code == item.status, f"{item.why}\n{answer.text[:2000]}"
        assert marker not in answer.text, "nothing of the file comes back"
        assert "technischer Fehler" not in answer.text, "a refusal is not presented as our fault"
        return
    accepted(item, FORMS[form], world, clients, marker)


def attachments_of(clients: Clients, case_id: str) -> dict[str, dict[str, Any]]:
    case = clients.counsellor.get(f"/api/v1/cases/{case_id}").json()
    return {entry["id"]: entry for entry in case["attachments"]}


def accepted(item: UploadItem, form: Form, world: World, clients: Clients, marker: str) -> None:
    assert item.file is not None
    sent = make_file(item.file, marker)
    before = attachments_of(clients, world.case_id)
    answer = send(item, form, world, clients, marker)
    assert answer.status_code == form.ok, f"{item.why}\n{answer.text[:2000]}"
    if form.url(world) == "/melden":
        receipt = receipt_from(answer.text)
        with world.runtime.sessions() as db:
            case_id = world.runtime.intake.open_case(db, receipt).case.id
        new = list(attachments_of(clients, case_id).values())
    else:
        case_id = world.case_id
        new = [entry for key, entry in attachments_of(clients, case_id).items() if key not in before]
    assert len(new) == 1
    stored = new[0]

    assert stored["content_type"] == item.stored_as, item.why
    name = expand(item.shown_as or item.filename, marker)
    assert stored["filename"] == name
    assert not any(is_control(char) for char in name)
    assert len(name) <= 255

    download = clients.counsellor.get(f"/api/v1/cases/{case_id}/attachments/{stored['id']}")
    assert download.status_code == 200
    assert download.headers["content-type"].split(";")[0] == item.stored_as
    assert download.headers["x-content-type-options"] == "nosniff"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert disposition.count('"') == 2, "one quoted name, whatever the name"
    assert not set(disposition.split('"')[1]) & set("/\\"), "a flat name"
    data = download.content
    if "same_bytes" in item.then:
        assert data == sent
    if "no_metadata" in item.then:
        assert_no_metadata(data, marker)

    page = clients.counsellor.get(f"/intern/faelle/{case_id}").text
    assert_name_escaped(page, name)
    if form.named_on_fall:
        assert_name_escaped(clients.reporter.get("/fall").text, name)
    assert_blobs_stay_in_their_folder(world, marker)


def assert_no_metadata(data: bytes, marker: str) -> None:
    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        assert not exif.get_ifd(GPS_IFD), "no GPS position"
        assert CAMERA_MAKE not in exif, "no camera"
        assert not {"comment", "Comment", "XML:com.adobe.xmp", "exif"} & set(image.info)
    assert marker.encode() not in data
    assert b"Exif" not in data


def assert_name_escaped(page: str, name: str) -> None:
    shown = str(markupsafe.escape(name))
    assert shown in page, "the file name is shown, escaped"
    if shown != name:
        assert name not in page, "the raw file name is never on the page"


def assert_blobs_stay_in_their_folder(world: World, marker: str) -> None:
    """Every blob is a random name two levels down, encrypted; no file name became a path anywhere."""
    state = snapshot(world.runtime)
    assert all(BLOB.match(name) for name in state.blobs), sorted(state.blobs)
    data_dir = world.runtime.settings.data_dir
    names = [path.name for path in data_dir.rglob("*")]
    assert not {"passwd", "hosts", "evil.html"} & set(names)
    blob_dir = world.runtime.settings.blob_dir
    for path in blob_dir.rglob("*"):
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), "blobs are encrypted"
