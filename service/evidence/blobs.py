"""Encrypted attachment blobs on disk.

Blob names are random and chosen here; an uploaded file name never becomes a path. A blob is written to a
temporary name and renamed only when complete, so a crash leaves no half blob that looks whole.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

_NAME_BYTES = 16
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class StoredBlob:
    """A file in the store: a complete blob or the ``.part`` of one being written (or left by a crash)."""

    name: str
    partial: bool
    modified_at: datetime


def _is_name(text: str) -> bool:
    return len(text) == _NAME_BYTES * 2 and all(c in _HEX for c in text)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def new_name() -> str:
        return secrets.token_hex(_NAME_BYTES)

    def path(self, name: str) -> Path:
        if not _is_name(name):
            raise ValueError("not a blob name")
        return self.root / name[:2] / name

    def open_temp(self, name: str) -> BinaryIO:
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target.with_suffix(".part"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return os.fdopen(fd, "wb")

    def commit(self, name: str) -> None:
        target = self.path(name)
        os.replace(target.with_suffix(".part"), target)

    def open(self, name: str) -> BinaryIO:
        return self.path(name).open("rb")

    def delete(self, name: str) -> None:
        target = self.path(name)
        for candidate in (target, target.with_suffix(".part")):
            candidate.unlink(missing_ok=True)

    def delete_stored(self, blob: StoredBlob) -> None:
        """Delete exactly the file ``stored`` listed (the partial or the complete one, not both)."""
        target = self.path(blob.name)
        (target.with_suffix(".part") if blob.partial else target).unlink(missing_ok=True)

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def stored(self) -> Iterator[StoredBlob]:
        """Every blob file under the root, complete or partial; files the store did not name are skipped.

        For the retention sweep, which removes blobs that no attachment row references any more.
        """
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if folder.is_symlink() or not folder.is_dir() or len(folder.name) != 2:
                continue
            for entry in sorted(folder.iterdir()):
                partial = entry.suffix == ".part"
                name = entry.stem if partial else entry.name
                if not _is_name(name) or name[:2] != folder.name or entry.is_symlink() or not entry.is_file():
                    continue
                try:
                    mtime = entry.stat().st_mtime
                except FileNotFoundError:
                    # Renamed (.part -> complete) or deleted since the listing: a later sweep sees the rest.
                    continue
                yield StoredBlob(name=name, partial=partial, modified_at=datetime.fromtimestamp(mtime, UTC))
