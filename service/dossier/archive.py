"""The evidence ZIP beside the dossier: the files the dossier lists, under the names it lists them by, and a
``SHA256SUMS`` in the format of ``sha256sum`` so that anyone can check the files against the dossier
(``sha256sum -c SHA256SUMS``).

The checksums are the dossier's own (sealed at upload, or computed while the dossier was built for a file
stored before), not taken again from what is being sent: a file that changed at rest then fails the check
instead of vouching for itself. The archive is written to the response as each file is decrypted, chunk by
chunk, with zipfile's support for a stream it cannot seek (sizes and CRCs follow each file in a data
descriptor); nothing of it is written to disk or kept. Deflated: every unzip tool reads a deflated entry with
a data descriptor, not all read a stored one.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session
from starlette.responses import StreamingResponse

from service.audit import AuditLog
from service.crypto import Context, open_stream
from service.db import utcnow
from service.dossier.service import Dossier
from service.evidence.blobs import BlobStore
from service.evidence.repository import attachments
from service.i18n import LOCAL_ZONE
from service.web import content_disposition

CHECKSUMS_NAME = "SHA256SUMS"
MEDIA_TYPE = "application/zip"
# The earliest time a ZIP entry can carry (MS-DOS dates start in 1980).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Member:
    """A file of the archive: what the stream needs once the database session is closed (no plaintext)."""

    entry_name: str
    sha256: str
    size_bytes: int
    received_at: datetime
    case_id: str
    attachment_id: str
    blob_name: str


def members(session: Session, dossier: Dossier, case_id: str) -> list[Member]:
    """The dossier's files in its order, with where their blobs are."""
    stored = {attachment.id: attachment for attachment in attachments(session, case_id)}
    return [
        Member(
            entry_name=file.listed_name,
            sha256=file.sha256,
            size_bytes=file.size_bytes,
            received_at=file.received_at,
            case_id=case_id,
            attachment_id=file.attachment_id,
            blob_name=stored[file.attachment_id].blob_name,
        )
        for file in dossier.files
    ]


def checksums(items: list[Member]) -> bytes:
    """``sha256sum``'s format: the hex digest, two spaces, the name, a newline. The names are safe
    (service/dossier/names.py: no newline, no backslash), so none needs sha256sum's escaping."""
    return "".join(f"{item.sha256}  {item.entry_name}\n" for item in items).encode()


def archive_name() -> str:
    return f"Beweisdateien-{utcnow().astimezone(LOCAL_ZONE).date().isoformat()}.zip"


def _info(name: str, moment: datetime, size_bytes: int) -> zipfile.ZipInfo:
    local = moment.astimezone(LOCAL_ZONE).timetuple()[:6]
    info = zipfile.ZipInfo(name, date_time=max(local, _ZIP_EPOCH))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    # Known in advance, so zipfile decides on ZIP64 before the data (it cannot go back on a stream).
    info.file_size = size_bytes
    return info


class _Pipe:
    """What zipfile writes to and the response drains; it cannot seek, so zipfile writes data descriptors."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def stream(items: list[Member], key: bytes, blobs: BlobStore, generated_at: datetime) -> Iterator[bytes]:
    """The ZIP in pieces, each file decrypted as it is compressed and sent (only a chunk in memory)."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        sums = checksums(items)
        archive.writestr(_info(CHECKSUMS_NAME, generated_at, len(sums)), sums)
        for item in items:
            context = Context("attachment", case_id=item.case_id, record_id=item.attachment_id)
            with (
                blobs.path(item.blob_name).open("rb") as source,
                archive.open(_info(item.entry_name, item.received_at, item.size_bytes), mode="w") as target,
            ):
                for chunk in open_stream(key, context, source):
                    target.write(chunk)
                    piece = pipe.drain()
                    if piece:
                        yield piece
            piece = pipe.drain()
            if piece:
                yield piece
    yield pipe.drain()


def download(items: list[Member], key: bytes, blobs: BlobStore) -> StreamingResponse:
    """The archive as a download; its length is not known before it is sent (compressed as it streams)."""
    return StreamingResponse(
        stream(items, key, blobs, utcnow()),
        media_type=MEDIA_TYPE,
        headers={"content-disposition": content_disposition(archive_name())},
    )


def record_downloaded(
    audit: AuditLog, session: Session, count: int, case_id: str, *, actor_kind: str, actor_id: str | None
) -> None:
    """Audit the ZIP without content (no names, no hashes): who, which case, how many files. Last before
    the caller's commit, as AuditLog asks."""
    audit.append(
        session,
        actor_kind=actor_kind,
        actor_id=actor_id,
        action="evidence.zip",
        object_type="case",
        object_id=case_id,
        details={"files": count},
    )
