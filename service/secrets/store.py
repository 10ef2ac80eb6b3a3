"""Embedded mode's secret files: the new value in ``<name>.key``, the one before in ``<name>.previous``.

Each file is written whole to a temporary name and renamed over the old one (0600), the previous file first:
a command stopped between the two leaves the old value in both, which ``load_secrets`` reads as no rotation
at all (a previous equal to its current one is ignored), so nothing is ever lost.
"""

from __future__ import annotations

import os
from pathlib import Path

from service.config import previous_file


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def key_file(folder: Path, name: str) -> Path:
    return folder / f"{name}.key"


def write_rotation(folder: Path, name: str, new: bytes, old: bytes, *, keep_all: bool) -> None:
    """Make ``new`` the current value and ``old`` the previous one (``keep_all``: before the earlier ones)."""
    earlier: list[str] = []
    previous = previous_file(folder, name)
    if keep_all and previous.exists():
        earlier = [line.strip() for line in previous.read_text().splitlines() if line.strip()]
    lines = [old.hex(), *(line for line in earlier if line != old.hex())]
    _write(previous, "\n".join(lines) + "\n")
    _write(key_file(folder, name), new.hex() + "\n")


def drop_previous(folder: Path, name: str) -> bool:
    path = previous_file(folder, name)
    if not path.exists():
        return False
    path.unlink()
    return True
