"""Helpers shared by tests: the PostgreSQL cluster run as the postgres system user, free ports, the live
server of the browser tests."""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Table, func, select

from service.db import make_engine


@dataclass(frozen=True)
class LiveServer:
    """The server of tests/browser (fixture ``live_server``): its address and its data folder."""

    url: str
    # `rueckhalt demo` writes demo-credentials.json and demo-receipts.json here (0600, demo only).
    data_dir: Path

    def demo_file(self, name: str) -> Any:
        return json.loads((self.data_dir / name).read_text())


# Under pytest-xdist (``make test``) each worker draws ports from a block of its own below the kernel's
# ephemeral range (32768 and up on Linux): two workers never hand out the same port, and the source port of
# an outgoing connection (there are thousands, to PostgreSQL and Redis) cannot take a port between
# ``free_port`` and the bind of the server it is for. 25 workers fit below 32768.
_PORT_BLOCK_START = 20_000
_PORT_BLOCK_SIZE = 500
_port_offset = secrets.randbelow(_PORT_BLOCK_SIZE)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A loopback port that nothing listens on now: from this xdist worker's block, else the kernel's pick."""
    global _port_offset
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if re.fullmatch(r"gw\d+", worker) else None
    if index is not None and _PORT_BLOCK_START + (index + 1) * _PORT_BLOCK_SIZE <= 32_768:
        first = _PORT_BLOCK_START + index * _PORT_BLOCK_SIZE
        for _ in range(_PORT_BLOCK_SIZE):
            _port_offset = (_port_offset + 1) % _PORT_BLOCK_SIZE
            if _bindable(first + _port_offset):
                return first + _port_offset
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is missing: run `make test`, which installs it")
    return path


def as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class PgCluster:
    """A PostgreSQL server of its own in a temporary folder, on a free loopback port.

    ``durable_commits`` keeps PostgreSQL's default ``synchronous_commit=on``: a commit is written to the WAL
    before the client hears of it, so a crash of the server (``halt("immediate")``, then ``start()``) loses
    no committed row. The suite turns it off for speed; a fault test that kills the server needs it on, as
    production has it. (fsync stays off: only a crash of the whole machine would need it.)
    """

    def __init__(self, *, durable_commits: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rh-pg-"))
        self.port = free_port()
        self.data = self.dir / "data"
        self.durable_commits = durable_commits
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            as_postgres(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.start()

    def start(self) -> None:
        """Start the server (again) on the same port and data folder; returns when it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir} "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        if not self.durable_commits:
            options += " -c synchronous_commit=off"
        subprocess.run(
            as_postgres(
                [
                    pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def halt(self, mode: str = "fast") -> None:
        """Stop the server and keep its data: ``fast`` ends every session and shuts down cleanly,
        ``immediate`` is a crash (recovery from the WAL at the next start)."""
        subprocess.run(
            as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
            check=True,
            capture_output=True,
        )

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        )

    def stop(self) -> None:
        subprocess.run(
            as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def migrated_database(
    kind: str, folder: Path, sqlite_template: Path, cluster: PgCluster | None
) -> Iterator[str]:
    """A migrated, empty database of one kind ("sqlite" in ``folder``, or "postgres" in ``cluster``), made
    from the migrated template and dropped afterwards; yields its URL."""
    if kind == "sqlite":
        target = folder / "data" / "rueckhalt.db"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sqlite_template, target)
        yield f"sqlite:///{target}"
        return
    assert cluster is not None
    name = f"t_{uuid.uuid4().hex[:16]}"
    with cluster.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE rh_template')
    yield cluster.url(name)
    with cluster.admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def all_bytes_under(folder: Path) -> list[tuple[Path, bytes]]:
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            found.append((path, path.read_bytes()))
    return found


def pg_dump(url: str) -> bytes:
    # url: postgresql+psycopg://postgres@127.0.0.1:PORT/NAME
    match = re.match(r".*@127\.0\.0\.1:(\d+)/(\w+)$", url)
    assert match
    port, name = match.groups()
    return subprocess.run(
        as_postgres([pg_bin("pg_dump"), "-h", "127.0.0.1", "-p", port, "-U", "postgres", name]),
        check=True,
        capture_output=True,
    ).stdout


def rows_in(url: str, table: Table) -> int:
    """How many rows ``table`` holds, read on a connection of its own (what another process sees)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()
