"""Writing a backup archive and restoring one (docs/backup.md; the format in docs/crypto-formats.md).

The archive's plaintext is a tar stream, written and read front to back so that neither the database nor
the blob folder is ever held in memory:

    backup.json                   format, time, database kind, migration, audit head, secret check values
    database/pg_dump.00000 ...    pg_dump's custom format in parts of 8 MiB (PostgreSQL), or
    database/rueckhalt.sqlite3    a snapshot by SQLite's online backup API (embedded mode)
    blobs/ab/ab12...              the encrypted attachment files, as they are on disk
    policies/...                  the policy files in force
    manifest.json                 every member above with size and SHA-256, and a MAC over that list

The whole stream is encrypted to the backup public key (``service.crypto.archive``). Anyone can encrypt to
a public key, so the manifest's MAC (under the audit key, purpose ``backup-manifest``) is what shows that
the archive was made by this service: a forged archive is refused before anything is written.

A restore reads the archive once into a staging folder inside the data folder, checks every chunk, every
member and the MAC, and only then restores the database (``pg_restore`` in one transaction, or the SQLite
file moved into place) and renames the staged blobs and policies into place. A refusal leaves the target
database and data folder as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import typing
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine

from service.audit import AuditLog
from service.audit import repository as audit_repository
from service.audit.checkpoint import Checkpoint
from service.audit.verification import VerifyResult, verify
from service.backup import database
from service.backup.database import DatabaseKind
from service.backup.errors import BackupError, Refusal
from service.config import SECRET_NAMES, Secrets, Settings
from service.crypto import (
    ArchiveDamaged,
    ArchiveKeyMismatch,
    ArchiveReader,
    ArchiveWriter,
    DecryptionError,
    PrivateKey,
    PublicKey,
    backup_key_id,
    constant_time_equal,
    keyed_hash,
)
from service.db import make_engine, make_sessionmaker, utcnow
from service.evidence.blobs import BlobStore

FORMAT = "rueckhalt-backup"
FORMAT_VERSION = 1
ARCHIVE_SUFFIX = ".rhbk"
BEGIN_MEMBER = "backup.json"
MANIFEST_MEMBER = "manifest.json"
SQLITE_MEMBER = "database/rueckhalt.sqlite3"
PG_PART_BYTES = 8 * 1024 * 1024
COPY_BYTES = 1024 * 1024
# backup.json and manifest.json are read whole; a manifest lists every blob (about 150 bytes each).
MAX_JSON_BYTES = 64 * 1024 * 1024
MANIFEST_PURPOSE = "backup-manifest"
SECRET_CHECK_PURPOSE = "backup-secret-check"  # noqa: S105 - a label, not a secret
CREATED_ACTION = "backup.created"
RESTORED_ACTION = "backup.restored"
RESTORED_POLICIES = "restored-policies"
SECRETS_FOLDER = "secrets"

_PG_PART = re.compile(r"database/pg_dump\.(\d{5})")
_BLOB = re.compile(r"blobs/([0-9a-f]{2})/([0-9a-f]{32})")
_POLICY_PART = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_POLICY = re.compile(rf"policies/((?:{_POLICY_PART}/)*{_POLICY_PART})")
_ARCHIVE_NAME = re.compile(r"rueckhalt-(\d{8}T\d{6}Z)\.rhbk")


class Progress(Protocol):
    """Shown on a terminal for large blob folders; the CLI passes a bar, everything else nothing."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self, amount: int) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    def start(self, label: str, total: int) -> None:
        return None

    def advance(self, amount: int) -> None:
        return None

    def finish(self) -> None:
        return None


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SecretCheck:
    """A server secret the restore needs, with a value that recognises it (HMAC under the secret itself)."""

    name: str
    check: str

    @property
    def variable(self) -> str:
        return f"RUECKHALT_{self.name.upper()}"


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


@dataclass(frozen=True)
class PolicyComparison:
    name: str
    # same | differs | only_in_archive | only_here
    status: str


@dataclass(frozen=True)
class RestoreResult:
    key_id: str
    created_at: str
    database: DatabaseKind
    revision: str | None
    needs_migration: bool
    blobs: int
    blob_bytes: int
    policies: tuple[PolicyComparison, ...]
    policies_dir: Path
    audit: VerifyResult
    audit_head_at_backup: Checkpoint | None
    secrets: tuple[SecretCheck, ...] = field(default=())


# Secrets that archives of earlier versions of the service have no check value for.
SECRETS_ADDED_LATER = frozenset({"matching_key"})


def secret_checks(secrets: Secrets) -> tuple[SecretCheck, ...]:
    """Check values of every secret a restore needs: they name a secret without revealing anything of it."""

    def check(value: bytes) -> str:
        return keyed_hash(value, SECRET_CHECK_PURPOSE, b"")[:8].hex()

    checks = [SecretCheck(name, check(getattr(secrets, name))) for name in SECRET_NAMES]
    # The previous values of a rotation (the audit key's may be several: one check each, comma-separated).
    checks += [
        SecretCheck(f"{name}_previous", ",".join(check(value) for value in secrets.previous_of(name)))
        for name in SECRET_NAMES
        if secrets.previous_of(name)
    ]
    return tuple(checks)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def manifest_mac(audit_key: bytes, members: list[Member]) -> str:
    return keyed_hash(audit_key, MANIFEST_PURPOSE, _canonical([asdict(m) for m in members])).hex()


def archive_name(now: datetime) -> str:
    return f"rueckhalt-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}{ARCHIVE_SUFFIX}"


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


def _policy_files(policies_dir: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for path in sorted(policies_dir.rglob("*")):
        relative = path.relative_to(policies_dir).as_posix()
        if path.is_symlink() or not path.is_file() or not _POLICY.fullmatch(f"policies/{relative}"):
            continue
        found.append((relative, path))
    return found


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
        begin = {
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
        policies = _policy_files(settings.policies_dir)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw:
            writer = ArchiveWriter(public, raw)
            out = _ArchiveOut(writer, created)
            out.add_bytes(BEGIN_MEMBER, _canonical(begin))
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
            manifest = {
                "members": [asdict(m) for m in members],
                "mac": manifest_mac(secrets.audit_key, members),
            }
            out.add_bytes(MANIFEST_MEMBER, _canonical(manifest))
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


# -- restore -----------------------------------------------------------------------------------------------


def _damaged(chunk: int) -> BackupError:
    return BackupError(
        Refusal.damaged,
        f"Das Archiv ist beschädigt, verändert oder unvollständig (Abschnitt {chunk} lässt sich nicht "
        "öffnen).",
        f"The archive is damaged, altered or cut short (chunk {chunk} does not open).",
    )


def _unreadable(why_de: str, why_en: str) -> BackupError:
    return BackupError(
        Refusal.unreadable_contents,
        f"Der Inhalt des Archivs ist nicht lesbar: {why_de}.",
        f"The archive's contents are not readable: {why_en}.",
    )


def _not_authentic() -> BackupError:
    return BackupError(
        Refusal.not_authentic,
        "Das Archiv stammt nicht von diesem Dienst (die Prüfsumme passt nicht zum Audit-Schlüssel "
        "RUECKHALT_AUDIT_KEY) oder wurde verändert.",
        "The archive was not made by this service (its MAC does not match the audit key RUECKHALT_AUDIT_KEY) "
        "or it was altered.",
    )


def _open_archive(private: PrivateKey, raw: typing.BinaryIO) -> ArchiveReader:
    try:
        return ArchiveReader(private, raw)
    except ArchiveKeyMismatch as exc:
        raise BackupError(
            Refusal.wrong_key,
            f"Das Archiv ist für den Sicherungsschlüssel {exc.archive_key_id} verschlüsselt, der angegebene "
            f"private Schlüssel ist {exc.given_key_id}.",
            f"The archive is encrypted to backup key {exc.archive_key_id}; the private key given is "
            f"{exc.given_key_id}.",
        ) from None
    except ArchiveDamaged as exc:
        raise _damaged(exc.chunk) from None
    except DecryptionError:
        raise BackupError(
            Refusal.not_an_archive,
            "Das ist kein Rückhalt-Sicherungsarchiv (oder eines einer neueren Version).",
            "This is not a Rückhalt backup archive (or one of a newer version).",
        ) from None


def _check_data_dir(settings: Settings, url: str) -> None:
    """The data folder may hold the secrets (embedded mode) and an empty SQLite target, nothing else."""
    allowed = {SECRETS_FOLDER}
    if database.kind_of(url) is DatabaseKind.sqlite:
        path = database.sqlite_path(url)
        if path.parent == settings.data_dir.resolve():
            allowed |= {path.name, f"{path.name}-journal", f"{path.name}-wal", f"{path.name}-shm"}
    if not settings.data_dir.exists():
        return
    found = sorted(entry.name for entry in settings.data_dir.iterdir() if entry.name not in allowed)
    if found:
        shown = ", ".join(found[:5]) + (" …" if len(found) > 5 else "")
        raise BackupError(
            Refusal.data_dir_not_empty,
            f"Der Datenordner {settings.data_dir} ist nicht leer ({shown}). Wiederhergestellt wird nur in "
            "einen leeren Ordner (erlaubt ist nur secrets/).",
            f"The data folder {settings.data_dir} is not empty ({shown}). A restore goes into an empty "
            "folder only (secrets/ is allowed).",
        )


def _check_database(engine: Engine | None, url: str) -> None:
    if engine is None:
        tables = database.sqlite_tables(database.sqlite_path(url))
    else:
        tables = database.table_names(engine, url)
    if tables:
        shown = ", ".join(tables[:5]) + (" …" if len(tables) > 5 else "")
        raise BackupError(
            Refusal.database_not_empty,
            f"Die Datenbank (RUECKHALT_DATABASE_URL) ist nicht leer: sie hat {len(tables)} Tabellen "
            f"({shown}). Wiederhergestellt wird nur in eine neue, leere Datenbank (createdb).",
            f"The database (RUECKHALT_DATABASE_URL) is not empty: it has {len(tables)} tables ({shown}). A "
            "restore goes into a new, empty database only (createdb).",
        )


def _check_begin(begin: dict[str, Any], kind: DatabaseKind, secrets: Secrets, url: str) -> None:
    if begin.get("format") != FORMAT or begin.get("version") != FORMAT_VERSION:
        raise _unreadable("unbekanntes Format", "unknown format")
    if begin.get("database") != kind.value:
        raise BackupError(
            Refusal.database_kind,
            f"Das Archiv enthält eine {begin.get('database')}-Datenbank, RUECKHALT_DATABASE_URL zeigt auf "
            f"{kind.value}.",
            f"The archive holds a {begin.get('database')} database; RUECKHALT_DATABASE_URL points at "
            f"{kind.value}.",
        )
    archived = begin.get("secret_checks")
    if not isinstance(archived, dict):
        raise _unreadable("keine Prüfwerte der Geheimnisse", "no secret check values")
    current = {check.name: check.check for check in secret_checks(secrets)}

    def values(checks: dict[str, Any], name: str) -> set[str]:
        found = {checks.get(name)} | set(str(checks.get(f"{name}_previous") or "").split(","))
        return {value for value in found if isinstance(value, str) and value}

    # Data of the archive's day may be under its secret or under the previous one of a rotation then under
    # way (staff keys, receipts, the audit chain's older segments): every value it held must be held now, as
    # the current value or a previous one (after a rotation since, the archive's is the previous now).
    differing = [
        name
        for name in SECRET_NAMES
        if not (name in SECRETS_ADDED_LATER and name not in archived)
        # An archive made before a secret existed holds nothing that secret protects (the matching tokens
        # came with the matching key, migration 0014): any value of it restores that archive.
        and (not values(archived, name) or not values(archived, name) <= values(current, name))
    ]
    if differing:
        names = ", ".join(f"RUECKHALT_{name.upper()}" for name in differing)
        raise BackupError(
            Refusal.other_secrets,
            f"Das Archiv wurde mit anderen Server-Geheimnissen gemacht: {names} stimmt nicht. Setzen Sie die "
            "Geheimnisse vom Tag der Sicherung (docs/backup.md).",
            f"The archive was made with other server secrets: {names} differs. Set the secrets of the "
            "backup's day (docs/backup.md).",
        )
    revision = begin.get("alembic_revision")
    known, _head = database.known_revisions(url)
    if revision is not None and revision not in known:
        raise BackupError(
            Refusal.newer_release,
            f"Das Archiv stammt von einer neueren Version (Migration {revision} ist hier unbekannt): "
            "stellen Sie es mit dieser Version wieder her.",
            f"The archive comes from a newer release (migration {revision} is unknown here): restore it with "
            "that release.",
        )


def _read_json(source: typing.BinaryIO, size: int) -> tuple[dict[str, Any], bytes]:
    if size > MAX_JSON_BYTES:
        raise _unreadable("Verzeichnis zu groß", "index too large")
    data = source.read(size)
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise _unreadable("Verzeichnis nicht lesbar", "index not readable") from None
    if not isinstance(value, dict):
        raise _unreadable("Verzeichnis nicht lesbar", "index not readable")
    return value, data


def _copy_to(source: typing.BinaryIO, target: Path, size: int, mode: str = "xb") -> str:
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if mode == "xb" else os.O_APPEND), 0o600)
    with os.fdopen(fd, "wb" if mode == "xb" else "ab") as handle:
        remaining = size
        while remaining > 0:
            piece = source.read(min(COPY_BYTES, remaining))
            if not piece:
                raise _unreadable("Datei unvollständig", "file cut short")
            digest.update(piece)
            handle.write(piece)
            remaining -= len(piece)
    return digest.hexdigest()


@dataclass
class _Staged:
    begin: dict[str, Any]
    members: list[Member]
    database: Path
    blobs: Path
    policies: Path
    blob_count: int = 0
    blob_bytes: int = 0


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    try:
        yield from tar
    except tarfile.TarError:
        raise _unreadable("kein gültiges tar", "not a valid tar stream") from None


def _stage(
    reader: ArchiveReader,
    staging: Path,
    kind: DatabaseKind,
    secrets: Secrets,
    url: str,
    on_member: typing.Callable[[], None],
) -> _Staged:
    """Read the whole archive into ``staging``, checking everything; return what was staged."""
    staged = _Staged(
        begin={},
        members=[],
        database=staging / "database",
        blobs=staging / "blobs",
        policies=staging / "policies",
    )
    manifest: dict[str, Any] | None = None
    parts = 0
    # Not closed: closing a read stream only drops the buffer; the archive file is closed by the caller.
    tar = tarfile.open(fileobj=typing.cast(typing.IO[bytes], reader), mode="r|")  # noqa: SIM115
    for info in _members(tar):
        name = info.name
        if manifest is not None or not info.isreg():
            raise _unreadable("unerwarteter Eintrag", "unexpected entry")
        source = tar.extractfile(info)
        assert source is not None
        if not staged.begin:
            if name != BEGIN_MEMBER:
                raise _unreadable("Anfang fehlt", "beginning missing")
            staged.begin, data = _read_json(typing.cast(typing.BinaryIO, source), info.size)
            _check_begin(staged.begin, kind, secrets, url)
            staged.members.append(Member(name, info.size, hashlib.sha256(data).hexdigest()))
            continue
        if name == MANIFEST_MEMBER:
            manifest, _data = _read_json(typing.cast(typing.BinaryIO, source), info.size)
            continue
        part = _PG_PART.fullmatch(name)
        blob = _BLOB.fullmatch(name)
        policy = _POLICY.fullmatch(name)
        if part is not None and kind is DatabaseKind.postgresql and int(part.group(1)) == parts:
            digest = _copy_to(typing.cast(typing.BinaryIO, source), staged.database, info.size, mode="ab")
            parts += 1
        elif name == SQLITE_MEMBER and kind is DatabaseKind.sqlite and not staged.database.exists():
            digest = _copy_to(typing.cast(typing.BinaryIO, source), staged.database, info.size)
        elif blob is not None and blob.group(2)[:2] == blob.group(1):
            digest = _copy_to(
                typing.cast(typing.BinaryIO, source), staged.blobs / blob.group(1) / blob.group(2), info.size
            )
            staged.blob_count += 1
            staged.blob_bytes += info.size
        elif policy is not None and ".." not in policy.group(1).split("/"):
            digest = _copy_to(
                typing.cast(typing.BinaryIO, source), staged.policies / policy.group(1), info.size
            )
        else:
            raise _unreadable("unerwarteter Eintrag", "unexpected entry")
        staged.members.append(Member(name, info.size, digest))
        on_member()
    # Read to the very end: only the final chunk shows that nothing was cut off.
    while reader.read(COPY_BYTES):
        pass
    if manifest is None or not staged.begin:
        raise _damaged(reader.chunks_read)
    listed = manifest.get("members")
    mac = manifest.get("mac")
    if not isinstance(listed, list) or not isinstance(mac, str):
        raise _not_authentic()
    # Under the audit key of the backup's day: the current one, or one before a rotation since.
    expected = [manifest_mac(key, staged.members) for key in secrets.candidates("audit_key")]
    if listed != [asdict(m) for m in staged.members] or not any(
        constant_time_equal(mac.encode(), value.encode()) for value in expected
    ):
        raise _not_authentic()
    if not staged.database.exists():
        raise _unreadable("keine Datenbank", "no database")
    return staged


def _compare_policies(restored: Path, current: Path) -> tuple[PolicyComparison, ...]:
    def digests(root: Path) -> dict[str, str]:
        if not root.is_dir():
            return {}
        return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in _policy_files(root)}

    archived, here = digests(restored), digests(current)
    result = []
    for name in sorted(archived.keys() | here.keys()):
        if name not in here:
            status = "only_in_archive"
        elif name not in archived:
            status = "only_here"
        else:
            status = "same" if archived[name] == here[name] else "differs"
        result.append(PolicyComparison(name, status))
    return tuple(result)


def _install(staged: _Staged, settings: Settings, url: str, engine: Engine | None) -> None:
    """Only after every check: the database first (one transaction, or one rename), then the files."""
    if engine is not None:
        database.pg_restore(engine, url, staged.database)
    else:
        if not database.sqlite_check(staged.database):
            raise _unreadable("SQLite-Datei beschädigt", "SQLite file damaged")
        target = database.sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-journal", "-wal", "-shm"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        shutil.move(staged.database, target)
        target.chmod(0o600)
    if staged.blobs.exists():
        os.replace(staged.blobs, settings.blob_dir)
    if staged.policies.exists():
        os.replace(staged.policies, settings.data_dir / RESTORED_POLICIES)


def _verify_and_record(
    engine: Engine, secrets: Secrets, head: Checkpoint | None, key_id: str, current: bool
) -> VerifyResult:
    with make_sessionmaker(engine)() as session:
        result = verify(
            session,
            secrets.audit_key,
            previous=secrets.previous_of("audit_key"),
            checkpoints=[head] if head is not None else [],
        )
        if result.ok and current:
            # The restore itself is on the record (a migrated schema is needed to write to it).
            AuditLog.of(secrets).append(
                session,
                actor_kind="operator",
                actor_id=None,
                action=RESTORED_ACTION,
                object_type="backup_key",
                object_id=key_id,
                details={"from_seq": head.seq if head is not None else 0},
            )
            session.commit()
    return result


def restore_backup(
    settings: Settings,
    secrets: Secrets,
    private: PrivateKey,
    source: Path,
    *,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore ``source`` into the empty database and data folder of ``settings``; refuse anything else."""
    progress = progress or NoProgress()
    url = settings.resolved_database_url
    kind = database.kind_of(url)
    # Never connect to a SQLite target before it is restored: connecting creates the file.
    engine = make_engine(url) if kind is DatabaseKind.postgresql else None
    try:
        with source.open("rb") as raw:
            reader = _open_archive(private, raw)
            _check_database(engine, url)
            _check_data_dir(settings, url)
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            settings.data_dir.chmod(0o700)
            staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=settings.data_dir))
            total = source.stat().st_size
            progress.start("Archiv / archive", total)
            seen = 0

            def on_member() -> None:
                nonlocal seen
                position = raw.tell()
                progress.advance(position - seen)
                seen = position

            try:
                try:
                    staged = _stage(reader, staging, kind, secrets, url, on_member)
                except ArchiveDamaged as exc:
                    raise _damaged(exc.chunk) from None
                progress.finish()
                _install(staged, settings, url, engine)
            finally:
                progress.finish()
                shutil.rmtree(staging, ignore_errors=True)
        if engine is None:
            engine = make_engine(url)
        begin = staged.begin
        audit_head = begin.get("audit_head")
        head = (
            Checkpoint(seq=int(audit_head["seq"]), mac=str(audit_head["mac"]))
            if isinstance(audit_head, dict)
            else None
        )
        revision = begin.get("alembic_revision")
        _known, code_head = database.known_revisions(url)
        current = revision == code_head
        key_id = backup_key_id(private.public_key())
        audit = _verify_and_record(engine, secrets, head, key_id, current)
    finally:
        if engine is not None:
            engine.dispose()
    return RestoreResult(
        key_id=key_id,
        created_at=str(begin.get("created_at")),
        database=kind,
        revision=None if revision is None else str(revision),
        needs_migration=not current,
        blobs=staged.blob_count,
        blob_bytes=staged.blob_bytes,
        policies=_compare_policies(settings.data_dir / RESTORED_POLICIES, settings.policies_dir),
        policies_dir=settings.data_dir / RESTORED_POLICIES,
        audit=audit,
        audit_head_at_backup=head,
        secrets=secret_checks(secrets),
    )


# -- keeping archives ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneResult:
    deleted: tuple[Path, ...]
    kept: tuple[Path, ...]
    # The newest archive is never deleted, even when it is older than the period (backups stopped?).
    newest_too_old: Path | None


def _archive_time(path: Path) -> datetime | None:
    match = _ARCHIVE_NAME.fullmatch(path.name)
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
