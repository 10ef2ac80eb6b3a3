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

import asyncio
import contextlib
import hashlib
import io
import json
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

import python_multipart
from PIL import Image, ImageOps
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from service.config import Settings
from service.crypto import Context, StreamSealer, seal
from service.db import new_id
from service.errors import PayloadTooLarge, ValidationFailed
from service.evidence.blobs import BlobStore
from service.validation import FREE_TEXT_FIELDS, is_control, public_error
from service.web import read_form

SNIFF_BYTES = 4096
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 200
# Images above this many pixels are refused before they are decoded (a phone's 16 MP photo fits; a few
# hundred bytes that claim 60,000 x 60,000 pixels do not): decoding holds every pixel in memory.
MAX_IMAGE_PIXELS = 16_000_000
# Images are cleaned in this many threads per process, off the event loop; more wait their turn, so ten
# large images at once neither stall the loop nor hold ten decoded images in memory.
IMAGE_WORKERS = 2

IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
# The allow-list: every type ``sniff`` can answer (the only ones a stored file, and so a download, can have),
# with the extensions a sender's file name may carry; the first is the one a download is named with.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "image/png": (".png",),
    "image/webp": (".webp",),
    "application/pdf": (".pdf",),
    "text/plain": (".txt", ".text", ".log"),
}
ACCEPTED_TYPES = tuple(EXTENSIONS)
ACCEPTED_EXTENSIONS = frozenset(ext for extensions in EXTENSIONS.values() for ext in extensions)
# Text that a browser, Windows or a mail program would run or render rather than show: web pages, SVG
# and XML (scripts), HTML applications (.hta), Windows script hosts (.wsf), Internet shortcuts (.url) and
# folder settings (desktop.ini). Refused even where the name says .txt.
_ACTIVE_TEXT = re.compile(
    rb"<\s*(?:!doctype|html|head|body|script|svg|iframe|frame|object|embed|meta|style|link|form|base|job"
    rb"|package|xsl:\w+)(?=[\s/>])|<\?xml|<hta:|\[internetshortcut\]|\[\.shellclassinfo\]",
    re.IGNORECASE,
)


def sniff(head: bytes) -> str | None:
    """The content type by magic bytes; None for anything we do not accept."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head and b"\x00" not in head:
        try:
            # A multi-byte character may be cut at the end of the sniffed window.
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:
                return None
        return "text/plain"
    return None


def is_active_text(head: bytes) -> bool:
    """Text that is really a web page, an SVG, a script host file or a shortcut (see _ACTIVE_TEXT)."""
    return _ACTIVE_TEXT.search(head) is not None


class TooManyPixels(ValueError):
    """The image is larger (in pixels) than MAX_IMAGE_PIXELS: refused before it is decoded."""


def strip_image(data: bytes, content_type: str) -> bytes:
    """Re-encode the pixels only: EXIF (GPS, camera serial), XMP, ICC and text chunks do not survive.

    Runs in the image pool's threads, so it changes no process-wide state (Pillow's own bomb limit and the
    warning filters are global): the size is checked from the header, before any pixel is decoded, and the
    file is opened with the detected format's decoder only, never one Pillow would guess."""
    fmt = IMAGE_TYPES[content_type]
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixels() from exc
    with image:
        if image.format != fmt:
            raise ValueError("image format does not match its content")
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise TooManyPixels()
        image.load()
        # Apply the orientation tag before dropping it, so phone photos are not turned sideways.
        upright = ImageOps.exif_transpose(image)
        pixels = upright.convert("RGB") if fmt == "JPEG" else upright
        # Savers also write metadata they find on the image itself, not only what the save call passes
        # (Pillow keeps a JPEG's comment so): only the pixels, and a palette's transparency, go on.
        pixels.info = {key: value for key, value in pixels.info.items() if key == "transparency"}
        out = io.BytesIO()
        if fmt == "JPEG":
            pixels.save(out, format="JPEG", quality=90)
        else:
            pixels.save(out, format=fmt)
        return out.getvalue()


_IMAGE_POOL = ThreadPoolExecutor(max_workers=IMAGE_WORKERS, thread_name_prefix="image-clean")


async def strip_image_off_loop(data: bytes, content_type: str) -> bytes:
    """``strip_image`` in the bounded image pool: the event loop goes on serving while Pillow works."""
    return await asyncio.get_running_loop().run_in_executor(_IMAGE_POOL, strip_image, data, content_type)


def _clean(filename: str | None) -> str:
    return "".join("_" if is_control(char) else char for char in filename or "")


def display_name(filename: str | None) -> str:
    """What the sender's system called the file (folders and all: it is only ever a name, blobs are stored
    under random ones, and the download header flattens it), but never with control or bidi characters (a
    NUL, or a U+202E that turns "gpj.exe" around), and at most 255 characters."""
    return _clean(filename)[:255]


def extension(name: str) -> str:
    """The extension Windows would act on: after the last dot of the last folder part, lower case, with
    the trailing dots and spaces that Windows drops removed first ("Drohbrief.hta. " is an .hta)."""
    base = re.split(r"[/\\]", name.rstrip(". \t"))[-1]
    dot = base.rfind(".")
    return base[dot:].lower() if dot >= 0 else ""


def name_refused(filename: str | None) -> bool:
    """A name whose extension is outside the allow-list (.hta, .js, .vbs, .ps1, .html, .svg, .url, .exe):
    refused whatever the content, so that nobody is handed "Drohbrief.hta" at all."""
    found = extension(_clean(filename))
    return bool(found) and found not in ACCEPTED_EXTENSIONS


def download_name(filename: str, content_type: str) -> str:
    """The name a file is shown and downloaded under: the sender's name with the extension of the type its
    content was detected as, so that a double click opens it in a viewer for that type and nothing runs.
    A different extension is replaced; an unknown one (files stored before names were checked) is kept
    visibly in the name ("Drohbrief_hta.txt"). At most 255 characters, the extension always kept."""
    wanted = EXTENSIONS.get(content_type, (".bin",))
    name = _clean(filename).rstrip(". \t") or "beweis"
    found = extension(name)
    stem = name[: len(name) - len(found)] if found else name
    if found in wanted:
        suffix = name[len(stem) :]
    else:
        suffix = wanted[0]
        if found and found not in ACCEPTED_EXTENSIONS:
            stem = f"{stem}_{found[1:]}"
    stem = stem.rstrip(". \t") or "beweis"
    return stem[: 255 - len(suffix)] + suffix


@dataclass
class EncryptedUpload:
    attachment_id: str
    blob_name: str
    content_type: str
    size_bytes: int
    meta_ciphertext: bytes
    position: int


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
