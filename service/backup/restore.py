"""Restoring a backup archive (docs/backup.md; the archive's members in service/backup/archive.py).

A restore reads the archive once into a staging folder inside the data folder, checks every chunk, every
member and the MAC, and only then restores the database (``pg_restore`` in one transaction, or the SQLite
file moved into place) and renames the staged blobs and policies into place. A refusal leaves the target
database and data folder as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import typing
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from service.audit import AuditLog
from service.audit.checkpoint import Checkpoint
from service.audit.verification import VerifyResult, verify
from service.backup import database
from service.backup.archive import (
    BEGIN_MEMBER,
    BLOB,
    COPY_BYTES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_MEMBER,
    MAX_JSON_BYTES,
    PG_PART,
    POLICY,
    SECRETS_ADDED_LATER,
    SQLITE_MEMBER,
    Member,
    NoProgress,
    Progress,
    SecretCheck,
    manifest_mac,
    policy_files,
    secret_checks,
)
from service.backup.database import DatabaseKind
from service.backup.errors import BackupError, Refusal
from service.config import SECRET_NAMES, Secrets, Settings
from service.crypto import (
    ArchiveDamaged,
    ArchiveKeyMismatch,
    ArchiveReader,
    DecryptionError,
    PrivateKey,
    backup_key_id,
    constant_time_equal,
)
from service.db import make_engine, make_sessionmaker

RESTORED_ACTION = "backup.restored"
RESTORED_POLICIES = "restored-policies"
SECRETS_FOLDER = "secrets"


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
        part = PG_PART.fullmatch(name)
        blob = BLOB.fullmatch(name)
        policy = POLICY.fullmatch(name)
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
        return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in policy_files(root)}

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
