"""Properties of the streaming multipart parser that encrypts files as they arrive (service/evidence/uploads).

Whatever the chunks a body arrives in, fields come out as sent and files decrypt to exactly what was sent;
any bytes at all end in fields and files or in a refusal (ValidationFailed, PayloadTooLarge) that leaves no
blob behind; the content sniffer and the display name are total functions into their small worlds.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import shutil
import string
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from service.crypto import Context, open_sealed, open_stream
from service.errors import PayloadTooLarge, ValidationFailed
from service.evidence.blobs import BlobStore
from service.evidence.uploads import (
    ACCEPTED_TYPES,
    EXTENSIONS,
    SNIFF_BYTES,
    EncryptingFormParser,
    UploadLimits,
    display_name,
    download_name,
    extension,
    is_active_text,
    name_refused,
    sniff,
)
from service.reports.schemas import is_control
from service.web import content_disposition

KEY = bytes(range(32))
CASE = "case-1"
BOUNDARY = "rh-property-boundary-7f3a9c"
PROPERTY = settings(
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

names = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)
# Field values as a browser sends them: any text (no surrogates: they cannot be encoded).
field_values = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300)
# Text files: no NUL (that makes a file binary to the sniffer), long enough to cross the 4 KiB sniff window.
text_files = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=3000,
)
file_names = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters='"\r\n\x00\\'), max_size=60
)


def body_of(fields: list[tuple[str, str]], files: list[tuple[str, bytes]]) -> bytes:
    parts = [
        f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode()
        for name, value in fields
    ]
    parts += [
        f'Content-Disposition: form-data; name="attachments"; filename="{filename}"\r\n'.encode()
        + b"Content-Type: application/octet-stream\r\n\r\n"
        + content
        for filename, content in files
    ]
    return (
        b"".join(f"--{BOUNDARY}\r\n".encode() + part + b"\r\n" for part in parts)
        + f"--{BOUNDARY}--\r\n".encode()
    )


def chunks(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(body), *(cut % (len(body) + 1) for cut in cuts)})
    return [body[start:end] for start, end in itertools.pairwise(points)]


async def _stream(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def parse(root: Path, pieces: list[bytes], max_body_bytes: int = 10 * 1024 * 1024) -> EncryptingFormParser:
    parser = EncryptingFormParser(
        key=KEY,
        case_id=CASE,
        blobs=BlobStore(root),
        limits=UploadLimits(max_files=10, max_file_bytes=1024 * 1024, max_image_bytes=1024 * 1024),
        max_body_bytes=max_body_bytes,
    )
    asyncio.run(parser.parse(f"multipart/form-data; boundary={BOUNDARY}", _stream(pieces)))
    return parser


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


@PROPERTY
@given(st.lists(st.tuples(names, field_values), max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_fields_come_out_as_sent_in_any_chunking(
    root: Path, fields: list[tuple[str, str]], cuts: list[int]
) -> None:
    parser = parse(root, chunks(body_of(fields, []), cuts))
    expected: dict[str, list[str]] = {}
    for name, value in fields:
        expected.setdefault(name, []).append(value)
    assert parser.fields == expected
    assert parser.uploads == []
    assert parser.errors == []


@PROPERTY
@given(text_files, file_names, st.lists(st.integers(0, 20_000), max_size=8))
def test_a_text_file_decrypts_to_what_was_sent_in_any_chunking(
    root: Path, text: str, filename: str, cuts: list[int]
) -> None:
    content = text.encode()
    # Names outside the allow-list and web pages are refused (tested below and in the corpus).
    assume(not name_refused(filename) and not is_active_text(content[:SNIFF_BYTES]))
    try:
        parser = parse(root, chunks(body_of([("csrf_token", "t")], [(filename, content)]), cuts))
        assert parser.errors == []
        (upload,) = parser.uploads
        assert upload.content_type == "text/plain"
        assert upload.size_bytes == len(content)
        context = Context("attachment", case_id=CASE, record_id=upload.attachment_id)
        with BlobStore(root).open(upload.blob_name) as sealed:
            assert b"".join(open_stream(KEY, context, sealed)) == content
        assert content not in BlobStore(root).path(upload.blob_name).read_bytes() or len(content) < 4
        meta_context = Context("attachment_meta", case_id=CASE, record_id=upload.attachment_id)
        meta = json.loads(open_sealed(KEY, upload.meta_ciphertext, meta_context))
        shown = download_name(display_name(filename), "text/plain") if filename else ""
        # The hash of the plaintext travels sealed with the name, never in a clear column.
        assert meta == {
            "filename": shown,
            "content_type": "text/plain",
            "sha256": hashlib.sha256(content).hexdigest(),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


@PROPERTY
@given(text_files, file_names)
def test_a_name_outside_the_allow_list_is_refused_and_leaves_no_blob(
    root: Path, text: str, stem: str
) -> None:
    for ending in (".hta", ".js", ".vbs", ".ps1", ".html", ".svg", ".url", ".exe", ".HTA", ".js. "):
        parser = parse(root, chunks(body_of([], [(stem + ending, text.encode())]), []))
        assert [error["reason"] for error in parser.errors] == ["attachment_type"]
        assert parser.uploads == []
        assert files_under(root) == []


@settings(database=None, deadline=None, max_examples=300)
@given(file_names, st.sampled_from(sorted(EXTENSIONS)))
def test_a_download_name_ends_in_its_type_and_stays_a_name(filename: str, content_type: str) -> None:
    """Whatever a sender called a file, the name it is shown and downloaded under ends in an extension of
    the detected type, is at most 255 characters, and holds no control or bidi character."""
    name = download_name(display_name(filename), content_type)
    assert extension(name) in EXTENSIONS[content_type]
    assert 0 < len(name) <= 255
    assert not any(is_control(char) for char in name)
    assert download_name(name, content_type) == name, "naming again changes nothing"


@PROPERTY
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=6), st.booleans())
def test_any_bytes_give_fields_and_files_or_a_refusal_that_leaves_no_blob(
    root: Path, junk: bytes, cuts: list[int], framed: bool
) -> None:
    # Framed: the junk inside a file part (a hostile file); otherwise the junk is the whole body.
    body = body_of([], [("x", junk)]) if framed else junk
    try:
        parser = parse(root, chunks(body, cuts), max_body_bytes=2048)
    except (ValidationFailed, PayloadTooLarge):
        assert files_under(root) == [], "a refused body leaves no blob, not even a partial one"
        return
    try:
        stored = {path.name for path in files_under(root)}
        assert stored == {upload.blob_name for upload in parser.uploads}, "every blob is a finished upload"
        assert all(upload.content_type in ACCEPTED_TYPES for upload in parser.uploads)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@settings(database=None, deadline=None, max_examples=500)
@given(
    st.binary(max_size=64)
    | st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"%PDF-", b"RIFF0000WEBP"])
)
def test_the_sniffer_answers_an_accepted_type_or_none(head: bytes) -> None:
    assert sniff(head) in (*ACCEPTED_TYPES, None)


@settings(database=None, deadline=None, max_examples=500)
@given(st.text(max_size=400) | st.none())
def test_a_display_name_is_a_clean_name(filename: str | None) -> None:
    name = display_name(filename)
    assert len(name) <= 255
    assert not any(is_control(char) for char in name)
    assert display_name(name) == name, "cleaning a clean name changes nothing"
    assert content_disposition(name).count('"') == 2, "and the download header quotes it as one flat name"


def test_an_image_is_not_a_stream_of_text() -> None:
    # The sniffer's verdict on real images, so the properties above are not vacuous about them.
    from PIL import Image

    for fmt, expected in (("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")):
        out = io.BytesIO()
        Image.new("RGB", (4, 4)).save(out, format=fmt)
        assert sniff(out.getvalue()) == expected
