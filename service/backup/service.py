"""Writing a backup archive and keeping archives (docs/backup.md; the archive's members in
service/backup/archive.py, the format in docs/crypto-formats.md). Restoring one: service/backup/restore.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import typing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from service.audit import AuditLog
from service.audit import repository as audit_repository
from service.audit.checkpoint import Checkpoint
from service.backup import database
from service.backup.archive import (
    ARCHIVE_NAME,
    BEGIN_MEMBER,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_MEMBER,
    PG_PART_BYTES,
    SQLITE_MEMBER,
    JsonValue,
    Member,
    NoProgress,
    Progress,
    SecretCheck,
    archive_name,
    canonical,
    manifest_mac,
    policy_files,
    secret_checks,
)
from service.backup.database import DatabaseKind
from service.backup.errors import BackupError, Refusal
from service.config import Secrets, Settings
from service.crypto import ArchiveWriter, PublicKey, backup_key_id
from service.db import make_engine, make_sessionmaker, utcnow
from service.evidence.blobs import BlobStore

CREATED_ACTION = "backup.created"


@dataclass(frozen=True)
class BackupResult:
    path: Path
    key_id: str
    database: DatabaseKind
    revision: str | None
    blobs: int
    blob_bytes: int
    policy_files: int
    archive_bytes: int
    audit_head: Checkpoint | None
    secrets: tuple[SecretCheck, ...]


class _Hashing:
    """A reader that hashes what passes through it (tarfile copies a member from it)."""

    def __init__(self, source: typing.BinaryIO, progress: Progress) -> None:
        self._source = source
        self._progress = progress
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.digest.update(data)
        self.count += len(data)
        self._progress.advance(len(data))
        return data


class _ArchiveOut:
    """The tar stream into the encrypted archive, with the manifest kept as members are added."""

    def __init__(self, writer: ArchiveWriter, created: datetime) -> None:
        # Closed by close(): the tar stream lives as long as the archive being written.
        self._tar = tarfile.open(  # noqa: SIM115
            fileobj=typing.cast(typing.IO[bytes], writer), mode="w|", format=tarfile.PAX_FORMAT
        )
        self._mtime = int(created.timestamp())
        self.members: list[Member] = []

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o600
        info.mtime = self._mtime
        return info

    def add_bytes(self, name: str, data: bytes) -> None:
        self._tar.addfile(self._info(name, len(data)), _BytesReader(data))
        self.members.append(Member(name, len(data), hashlib.sha256(data).hexdigest()))

    def add_stream(self, name: str, source: typing.BinaryIO, size: int, progress: Progress) -> None:
        hashing = _Hashing(source, progress)
        self._tar.addfile(self._info(name, size), typing.cast(typing.IO[bytes], hashing))
        self.members.append(Member(name, size, hashing.digest.hexdigest()))

    def close(self) -> None:
        self._tar.close()


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._offset + size
        piece = bytes(self._data[self._offset : end])
        self._offset += len(piece)
        return piece


def _complete_blobs(store: BlobStore) -> list[tuple[str, Path, int]]:
    found = []
    for blob in store.stored():
        if blob.partial:
            continue
        path = store.path(blob.name)
        try:
            found.append((blob.name, path, path.stat().st_size))
        except FileNotFoundError:
            continue  # purged since the listing
    return found


def _record_backup(engine: Engine, secrets: Secrets, key_id: str) -> Checkpoint | None:
    """Audit the backup, then read the head it ends at: the dump taken after holds at least that much."""
    with make_sessionmaker(engine)() as session:
        AuditLog.of(secrets).append(
            session,
            actor_kind="operator",
            actor_id=None,
            action=CREATED_ACTION,
            object_type="backup_key",
            object_id=key_id,
        )
        # The backup command's own step, committed before the dump is taken: the dump holds this event.
        session.commit()
        head = audit_repository.head(session)
    return None if head is None else Checkpoint(seq=head[0], mac=head[1])


def _add_database(out: _ArchiveOut, engine: Engine, url: str, staging: Path, progress: Progress) -> None:
    if database.kind_of(url) is DatabaseKind.sqlite:
        snapshot = staging / "snapshot.sqlite3"
        database.sqlite_snapshot(url, snapshot)
        with snapshot.open("rb") as handle:
            out.add_stream(SQLITE_MEMBER, handle, snapshot.stat().st_size, progress)
        snapshot.unlink()
        return
    process = database.start_pg_dump(engine, url)
    assert process.stdout is not None
    assert process.stderr is not None
    # pg_dump's size is unknown until it ends and a tar member needs its size first: parts of 8 MiB.
    part = 0
    try:
        while True:
            data = process.stdout.read(PG_PART_BYTES)
            if not data:
                break
            out.add_bytes(f"database/pg_dump.{part:05d}", data)
            part += 1
        errors = process.stderr.read()
    finally:
        process.stdout.close()
        returncode = process.wait()
    if returncode != 0 or part == 0:
        raise database.tool_failed("pg_dump", errors)


def write_backup(
    settings: Settings,
    secrets: Secrets,
    public: PublicKey,
    destination: Path,
    *,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> BackupResult:
    """Write one encrypted archive to ``destination`` (a file, or a folder to put a dated file in)."""
    progress = progress or NoProgress()
    created = now or utcnow()
    target = destination / archive_name(created) if destination.is_dir() else destination
    if target.exists():
        raise BackupError(
            Refusal.destination_exists,
            f"{target} gibt es schon; eine Sicherung überschreibt nichts.",
            f"{target} exists already; a backup overwrites nothing.",
        )
    partial = target.with_name(target.name + ".part")
    url = settings.resolved_database_url
    kind = database.kind_of(url)
    key_id = backup_key_id(public)
    checks = secret_checks(secrets)
    engine = make_engine(url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".backup-", dir=settings.data_dir))
    try:
        head = _record_backup(engine, secrets, key_id)
        revision = database.alembic_revision(engine)
        begin: dict[str, JsonValue] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "created_at": created.astimezone(UTC).isoformat(),
            "database": kind.value,
            "alembic_revision": revision,
            "audit_head": None if head is None else {"seq": head.seq, "mac": head.mac},
            "key_id": key_id,
            "secret_checks": {check.name: check.check for check in checks},
        }
        blobs = _complete_blobs(BlobStore(settings.blob_dir))
        policies = policy_files(settings.policies_dir)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw:
            writer = ArchiveWriter(public, raw)
            out = _ArchiveOut(writer, created)
            out.add_bytes(BEGIN_MEMBER, canonical(begin))
            _add_database(out, engine, url, staging, NoProgress())
            progress.start("Dateien / files", sum(size for _name, _path, size in blobs))
            blob_bytes = 0
            for name, path, _size in blobs:
                try:
                    handle = path.open("rb")
                except FileNotFoundError:
                    continue  # purged after the listing: its row went first, so the dump may still name it
                with handle:
                    size = os.fstat(handle.fileno()).st_size
                    out.add_stream(f"blobs/{name[:2]}/{name}", handle, size, progress)
                    blob_bytes += size
            progress.finish()
            for relative, path in policies:
                out.add_bytes(f"policies/{relative}", path.read_bytes())
            members = list(out.members)
            manifest: dict[str, JsonValue] = {
                "members": [asdict(m) for m in members],
                "mac": manifest_mac(secrets.audit_key, members),
            }
            out.add_bytes(MANIFEST_MEMBER, canonical(manifest))
            out.close()
            writer.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        engine.dispose()
    blob_count = sum(1 for m in members if m.name.startswith("blobs/"))
    return BackupResult(
        path=target,
        key_id=key_id,
        database=kind,
        revision=revision,
        blobs=blob_count,
        blob_bytes=blob_bytes,
        policy_files=len(policies),
        archive_bytes=target.stat().st_size,
        audit_head=head,
        secrets=checks,
    )


# -- keeping archives ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    deleted: tuple[Path, ...]
    kept: tuple[Path, ...]
    # The newest archive is never deleted, even when it is older than the period (backups stopped?).
    newest_too_old: Path | None


def _archive_time(path: Path) -> datetime | None:
    match = ARCHIVE_NAME.fullmatch(path.name)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def prune_archives(folder: Path, keep_days: int, *, now: datetime | None = None) -> PruneResult:
    """Delete the dated archives in ``folder`` older than ``keep_days``, but never the newest one."""
    moment = now or utcnow()
    dated = sorted(
        ((when, path) for path in folder.iterdir() if (when := _archive_time(path)) is not None),
        reverse=True,
    )
    limit = moment - timedelta(days=keep_days)
    deleted, kept = [], []
    for index, (when, path) in enumerate(dated):
        if when < limit and index > 0:
            path.unlink()
            deleted.append(path)
        else:
            kept.append(path)
    newest_too_old = dated[0][1] if dated and dated[0][0] < limit else None
    return PruneResult(tuple(deleted), tuple(kept), newest_too_old)
