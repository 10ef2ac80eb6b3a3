"""Encrypted attachment blobs on disk.

Blob names are random and chosen here; an uploaded file name never becomes a path. A blob is written to a
temporary name and renamed only when complete, so a crash leaves no half blob that looks whole.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

_NAME_BYTES = 16


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def new_name() -> str:
        return secrets.token_hex(_NAME_BYTES)

    def path(self, name: str) -> Path:
        if len(name) != _NAME_BYTES * 2 or any(c not in "0123456789abcdef" for c in name):
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

    def exists(self, name: str) -> bool:
        return self.path(name).exists()
