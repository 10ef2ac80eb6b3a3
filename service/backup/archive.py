"""The backup archive's format, shared by writing and restoring (the format in docs/crypto-formats.md).

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
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeAlias

from service.config import SECRET_NAMES, Secrets
from service.crypto import keyed_hash

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

PG_PART = re.compile(r"database/pg_dump\.(\d{5})")
BLOB = re.compile(r"blobs/([0-9a-f]{2})/([0-9a-f]{32})")
POLICY_PART = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
POLICY = re.compile(rf"policies/((?:{POLICY_PART}/)*{POLICY_PART})")
ARCHIVE_NAME = re.compile(r"rueckhalt-(\d{8}T\d{6}Z)\.rhbk")


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


# What ``canonical`` encodes: a JSON value. Mapping and Sequence (not dict and list) so that a dict or a
# list of narrower values is one as it is.
JsonValue: TypeAlias = "str | int | float | bool | Sequence[JsonValue] | Mapping[str, JsonValue] | None"


def canonical(value: JsonValue) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def manifest_mac(audit_key: bytes, members: list[Member]) -> str:
    return keyed_hash(audit_key, MANIFEST_PURPOSE, canonical([asdict(m) for m in members])).hex()


def archive_name(now: datetime) -> str:
    return f"rueckhalt-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}{ARCHIVE_SUFFIX}"


def policy_files(policies_dir: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for path in sorted(policies_dir.rglob("*")):
        relative = path.relative_to(policies_dir).as_posix()
        if path.is_symlink() or not path.is_file() or not POLICY.fullmatch(f"policies/{relative}"):
            continue
        found.append((relative, path))
    return found
