"""Evidence files of a case: rows for freshly encrypted uploads, their sealed names, streaming them back.

One place for both sides of the channel: the reporter (with the key their receipt unlocked) and the
holding organisations (with the key their grant unwraps) list and download the same rows the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy.orm import Session

from service.crypto import Context, open_sealed, open_stream
from service.errors import NotFound
from service.evidence import repository
from service.evidence.blobs import BlobStore
from service.evidence.filetypes import ACCEPTED_TYPES, download_name
from service.evidence.models import Attachment
from service.evidence.uploads import EncryptedUpload

# The 200 answer of a download in /openapi.json: the file as stored, in one of the accepted types.
DOWNLOAD_RESPONSE: dict[str, Any] = {
    "description": "The file, decrypted while it streams; always sent as an attachment",
    "content": {
        media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in ACCEPTED_TYPES
    },
}


class FileInfo(TypedDict):
    """A file as the reporter's side lists it: what a download link needs, no ids of the case's parts."""

    id: str
    # The decrypted name the file was sent with ("" for a file sent without one).
    filename: str
    content_type: str
    size_bytes: int


class AttachmentInfo(FileInfo):
    """A file of the case as its holders see it (``describe``): where it belongs, and who sent it."""

    incident_id: str | None
    message_id: str | None
    uploaded_by: str


@dataclass(frozen=True)
class DecryptedAttachment:
    filename: str
    content_type: str
    size_bytes: int
    # Called when the response starts: the blob is opened and decrypted only while it is sent.
    chunks: Callable[[], Iterator[bytes]]


def rows_for(
    uploads: Iterable[EncryptedUpload],
    case_id: str,
    *,
    uploaded_by: str,
    now: datetime,
    incident_id: str | None = None,
    message_id: str | None = None,
) -> list[Attachment]:
    """The rows of uploads that the parser has already encrypted into committed blobs."""
    return [
        Attachment(
            id=upload.attachment_id,
            case_id=case_id,
            incident_id=incident_id,
            message_id=message_id,
            blob_name=upload.blob_name,
            content_type=upload.content_type,
            size_bytes=upload.size_bytes,
            meta_ciphertext=upload.meta_ciphertext,
            uploaded_by=uploaded_by,
            created_at=now,
        )
        for upload in uploads
    ]


def _meta(attachment: Attachment, key: bytes) -> dict[str, Any]:
    context = Context("attachment_meta", case_id=attachment.case_id, record_id=attachment.id)
    meta: dict[str, Any] = json.loads(open_sealed(key, attachment.meta_ciphertext, context))
    return meta


def _name(attachment: Attachment, key: bytes) -> str:
    """The name shown and downloaded: with the extension of the stored (detected) type, also for a file
    stored before uploads were named so ("Drohbrief.hta" of plain text is "Drohbrief_hta.txt")."""
    sent = str(_meta(attachment, key).get("filename") or "")
    return download_name(sent, attachment.content_type) if sent else ""


@dataclass(frozen=True)
class FileHash:
    """The SHA-256 of a file's plaintext as stored; ``sealed`` when it was taken at upload and kept in the
    sealed metadata, not when it was computed now (files stored before uploads were hashed)."""

    sha256: str
    sealed: bool


def file_hash(attachment: Attachment, key: bytes, blobs: BlobStore) -> FileHash:
    """The hash sealed at upload, or for an older file the hash of its plaintext, decrypted as it streams
    (chunk by chunk, in memory only; the whole stream is read, so a truncated blob fails here)."""
    sealed = _meta(attachment, key).get("sha256")
    if isinstance(sealed, str) and sealed:
        return FileHash(sha256=sealed, sealed=True)
    digest = hashlib.sha256()
    context = Context("attachment", case_id=attachment.case_id, record_id=attachment.id)
    with blobs.path(attachment.blob_name).open("rb") as source:
        for chunk in open_stream(key, context, source):
            digest.update(chunk)
    return FileHash(sha256=digest.hexdigest(), sealed=False)


def display_name_of(attachment: Attachment, key: bytes) -> str:
    """The name a file is listed under (a short id for a file sent without a name)."""
    return _name(attachment, key) or attachment.id[:8]


def describe(
    session: Session, case_id: str, key: bytes, *, messages_only: bool = False
) -> list[AttachmentInfo]:
    """Every file of the case (or only those sent with messages) with its decrypted name, in upload order."""
    return [
        AttachmentInfo(
            id=attachment.id,
            incident_id=attachment.incident_id,
            message_id=attachment.message_id,
            filename=_name(attachment, key),
            content_type=attachment.content_type,
            size_bytes=attachment.size_bytes,
            uploaded_by=attachment.uploaded_by,
        )
        for attachment in repository.attachments(session, case_id)
        if not messages_only or attachment.message_id is not None
    ]


def opened(
    session: Session, case_id: str, attachment_id: str, key: bytes, blobs: BlobStore
) -> DecryptedAttachment:
    """A file of this case ready to stream; an id of another case is simply not found."""
    attachment = repository.attachment(session, case_id, attachment_id)
    if attachment is None:
        raise NotFound()
    context = Context("attachment", case_id=attachment.case_id, record_id=attachment.id)
    path = blobs.path(attachment.blob_name)

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as source:
            yield from open_stream(key, context, source)

    return DecryptedAttachment(
        filename=_name(attachment, key) or download_name("beweis", attachment.content_type),
        content_type=attachment.content_type,
        size_bytes=attachment.size_bytes,
        chunks=chunks,
    )
