"""Streaming multipart parsing that encrypts evidence as it arrives.

Starlette's form parser spools large files to a temporary file in plaintext; evidence must never touch the
disk unencrypted, so files are sniffed by content, then either encrypted chunk by chunk straight into a blob
(PDF, text) or, for images, held in memory up to a limit, stripped of metadata (EXIF GPS!) by re-encoding
the pixels in a small thread pool (never on the event loop), and then encrypted. Only the types of the
allow-list are taken, by content and by name; file names are kept only inside the sealed metadata, with the
extension of the detected type.

The SHA-256 of each file's plaintext, exactly as stored (images after their metadata is removed, so it is the
hash of what a download returns), is taken while the file streams through and kept only inside the sealed
metadata: the dossier lists it, a thief of the database does not learn it (a hash of a known picture would
tell who reported it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import python_multipart
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from service.config import Settings
from service.crypto import Context, StreamSealer, seal
from service.db import new_id
from service.errors import PayloadTooLarge, ValidationFailed
from service.evidence.blobs import BlobStore
from service.evidence.filetypes import (
    IMAGE_TYPES,
    SNIFF_BYTES,
    display_name,
    download_name,
    is_active_text,
    name_refused,
    sniff,
)
from service.evidence.images import TooManyPixels, strip_image_off_loop
from service.validation import FREE_TEXT_FIELDS, public_error
from service.web import read_form

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 200


@dataclass
class EncryptedUpload:
    attachment_id: str
    blob_name: str
    content_type: str
    size_bytes: int
    meta_ciphertext: bytes
    position: int


def form_content(text: str, uploads: Sequence[EncryptedUpload]) -> bytes:
    """What a message or note form sent, for its view token's claim (``SubmissionTokens.check``): the text
    and each file's type and size (its name is sealed). Never stored: only a keyed hash of it with the
    token is."""
    return json.dumps([text, [[upload.content_type, upload.size_bytes] for upload in uploads]]).encode()


@dataclass
class UploadLimits:
    max_files: int
    max_file_bytes: int
    max_image_bytes: int


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)
    head: bytearray = field(default_factory=bytearray)
    content_type: str | None = None
    sealer: StreamSealer | None = None
    sink: BinaryIO | None = None
    blob_name: str = ""
    attachment_id: str = ""
    size: int = 0
    rejected: str | None = None
    position: int = 0
    # Over the plaintext as it goes into the sealer (never in clear anywhere: sealed with the file's name).
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)


class EncryptingFormParser:
    """Parses one multipart body; text fields are collected, files are encrypted to blobs under ``key``."""

    def __init__(
        self, *, key: bytes, case_id: str, blobs: BlobStore, limits: UploadLimits, max_body_bytes: int
    ) -> None:
        self._key = key
        self._case_id = case_id
        self._blobs = blobs
        self._limits = limits
        self._max_body_bytes = max_body_bytes
        self.fields: dict[str, list[str]] = {}
        self.uploads: list[EncryptedUpload] = []
        self.errors: list[dict[str, object]] = []
        self._part = _Part()
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._files_seen = 0
        self._field_count = 0
        self._written: list[str] = []
        # Images the parser has finished, waiting to be cleaned off the event loop.
        self._images: list[_Part] = []

    # -- multipart callbacks -------------------------------------------------------------------------------
    def _on_part_begin(self) -> None:
        self._part = _Part()
        self._disposition = b""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name")
        if name is None:
            raise ValidationFailed([public_error(["body"], "multipart", "a part without a name")])
        self._part.name = name.decode("utf-8", "replace")
        if b"filename" in options:
            self._part.filename = options[b"filename"].decode("utf-8", "replace")
        else:
            self._field_count += 1
            if self._field_count > MAX_FIELDS:
                raise ValidationFailed([public_error(["body"], "too_many_fields", "too many form fields")])

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        part = self._part
        if part.filename is None:
            if len(part.data) + len(chunk) > MAX_FIELD_BYTES:
                raise ValidationFailed([public_error([part.name], "too_long", "field is too long")])
            part.data.extend(chunk)
            return
        self._file_data(part, chunk)

    def _on_part_end(self) -> None:
        part = self._part
        if part.filename is None:
            self.fields.setdefault(part.name, []).append(part.data.decode("utf-8", "replace"))
            return
        self._finish_file(part)

    # -- files -------------------------------------------------------------------------------------------
    def _file_data(self, part: _Part, chunk: bytes) -> None:
        if part.rejected is not None or not chunk:
            return
        part.size += len(chunk)
        if part.content_type is None:
            part.head.extend(chunk)
            if len(part.head) < SNIFF_BYTES:
                return
            self._start_file(part)
            chunk = bytes(part.head)
            part.head.clear()
            if part.rejected is not None:
                return
        self._feed(part, chunk)

    def _start_file(self, part: _Part) -> None:
        self._files_seen += 1
        part.position = self._files_seen
        if self._files_seen > self._limits.max_files:
            part.rejected = "attachment_count"
            return
        if name_refused(part.filename):
            part.rejected = "attachment_type"
            return
        part.content_type = sniff(bytes(part.head))
        if part.content_type is None or (
            part.content_type == "text/plain" and is_active_text(bytes(part.head))
        ):
            part.rejected = "attachment_type"
            return
        part.attachment_id = new_id()
        part.blob_name = self._blobs.new_name()
        if part.content_type not in IMAGE_TYPES:
            part.sink = self._blobs.open_temp(part.blob_name)
            self._written.append(part.blob_name)
            part.sealer = StreamSealer(self._key, self._attachment_context(part), part.sink)

    def _feed(self, part: _Part, chunk: bytes) -> None:
        limit = (
            self._limits.max_image_bytes if part.content_type in IMAGE_TYPES else self._limits.max_file_bytes
        )
        if part.size > limit:
            self._reject(part, "attachment_size")
            return
        if part.sealer is not None:
            part.sealer.write(chunk)
            part.digest.update(chunk)
        else:
            part.data.extend(chunk)

    def _reject(self, part: _Part, reason: str) -> None:
        part.rejected = reason
        part.data.clear()
        self._close_sink(part)
        if part.blob_name:
            self._blobs.delete(part.blob_name)

    def _finish_file(self, part: _Part) -> None:
        if part.rejected is None and part.content_type is None:
            if part.size == 0 and not part.filename:
                return  # the browser's empty part for "no file chosen"
            if part.size == 0:
                part.rejected = "attachment_broken"
            else:
                self._start_file(part)
                head = bytes(part.head)
                part.head.clear()
                if part.rejected is None:
                    self._feed(part, head)
        if part.rejected is not None:
            self.errors.append({"field": "attachments", "reason": part.rejected, "position": part.position})
            return
        assert part.content_type is not None
        if part.sealer is None:
            # An image: cleaned in the image pool once the parser hands control back (parse_images).
            self._images.append(part)
            return
        size = self._close_sink(part)
        self._blobs.commit(part.blob_name)
        self._stored(part, size)

    async def _clean_images(self) -> None:
        """Clean, encrypt and store the images the parser has finished, each off the event loop."""
        while self._images:
            part = self._images.pop(0)
            assert part.content_type is not None
            data = bytes(part.data)
            part.data.clear()
            try:
                cleaned = await strip_image_off_loop(data, part.content_type)
            except TooManyPixels:
                self.errors.append(
                    {"field": "attachments", "reason": "attachment_pixels", "position": part.position}
                )
                continue
            except Exception:
                # Any decoder failure means we cannot vouch for what is inside: refuse the file.
                self.errors.append(
                    {"field": "attachments", "reason": "attachment_broken", "position": part.position}
                )
                continue
            finally:
                del data
            with self._blobs.open_temp(part.blob_name) as sink:
                self._written.append(part.blob_name)
                sealer = StreamSealer(self._key, self._attachment_context(part), sink)
                sealer.write(cleaned)
                part.digest.update(cleaned)
                size = sealer.close()
            self._blobs.commit(part.blob_name)
            self._stored(part, size)

    def _stored(self, part: _Part, size: int) -> None:
        assert part.content_type is not None
        name = download_name(display_name(part.filename), part.content_type) if part.filename else ""
        meta = json.dumps(
            {"filename": name, "content_type": part.content_type, "sha256": part.digest.hexdigest()}
        ).encode()
        self.uploads.append(
            EncryptedUpload(
                attachment_id=part.attachment_id,
                blob_name=part.blob_name,
                content_type=part.content_type,
                size_bytes=size,
                meta_ciphertext=seal(
                    self._key,
                    meta,
                    Context("attachment_meta", case_id=self._case_id, record_id=part.attachment_id),
                ),
                position=part.position,
            )
        )

    @staticmethod
    def _close_sink(part: _Part) -> int:
        size = 0
        if part.sealer is not None:
            size = part.sealer.close()
            part.sealer = None
        if part.sink is not None:
            part.sink.close()
            part.sink = None
        return size

    def _attachment_context(self, part: _Part) -> Context:
        return Context("attachment", case_id=self._case_id, record_id=part.attachment_id)

    # -- driver ------------------------------------------------------------------------------------------
    async def parse(self, content_type: str, stream: AsyncIterator[bytes]) -> None:
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise ValidationFailed([public_error(["body"], "multipart", "missing multipart boundary")])
        parser = python_multipart.MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
            },
        )
        received = 0
        try:
            async for chunk in stream:
                received += len(chunk)
                if received > self._max_body_bytes:
                    raise PayloadTooLarge()
                parser.write(chunk)
                await self._clean_images()
            parser.finalize()
            await self._clean_images()
            # Images are stored when cleaned, after files that ended later: keep the order they were sent in.
            self.uploads.sort(key=lambda upload: upload.position)
            self.errors.sort(key=lambda error: int(str(error.get("position") or 0)))
        except FormParserError:
            self.discard()
            raise ValidationFailed([public_error(["body"], "multipart", "invalid multipart body")]) from None
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Remove every blob this parser wrote: used when the request as a whole is refused."""
        # The blob is deleted below whatever closing it does.
        with contextlib.suppress(Exception):
            self._close_sink(self._part)
        for name in self._written:
            self._blobs.delete(name)
        self._written.clear()
        self.uploads.clear()
        self._images.clear()


def limits_of(settings: Settings) -> UploadLimits:
    return UploadLimits(
        max_files=settings.max_attachments_per_report,
        max_file_bytes=settings.max_attachment_bytes,
        max_image_bytes=settings.max_image_bytes,
    )


async def parse_form(
    request: Request, *, key: bytes, case_id: str, blobs: BlobStore, settings: Settings
) -> EncryptingFormParser:
    """A page form that may carry files, parsed with its files encrypted under the case key as they arrive.

    The caller must have opened the case (and so know the key) before the body is read: nothing of the body
    is ever held unencrypted on disk. The caller discards the parser's blobs if it refuses the request."""
    parser = EncryptingFormParser(
        key=key,
        case_id=case_id,
        blobs=blobs,
        limits=limits_of(settings),
        max_body_bytes=settings.max_upload_body_bytes,
    )
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("application/x-www-form-urlencoded"):
        # A form without files (some clients send it so); the body-size limit still applies.
        form = await read_form(request, max_fields=MAX_FIELDS, free_text=FREE_TEXT_FIELDS)
        for name in form:
            parser.fields[name] = [value for value in form.getlist(name) if isinstance(value, str)]
        return parser
    if not content_type.lower().startswith("multipart/form-data"):
        raise ValidationFailed([public_error(["body"], "content_type", "form data expected")])
    await parser.parse(content_type, request.stream())
    return parser
