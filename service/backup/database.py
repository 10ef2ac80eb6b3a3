"""The database part of a backup: ``pg_dump``/``pg_restore`` (custom format) on PostgreSQL, SQLite's online
backup API in the embedded mode, and the checks that a restore target is empty.

The PostgreSQL tools are chosen by the server's major version (Debian installs each release under
``/usr/lib/postgresql/MAJOR/bin``): an older ``pg_dump`` refuses a newer server, and a dump restores only
with a ``pg_restore`` at least as new. The password never goes on a command line (other users can read
those): it is handed over in ``PGPASSWORD``.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote, urlencode

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, make_url, text

from service.backup.errors import BackupError, Refusal
from service.migrate import alembic_config

# Lines of a tool's error output shown to the operator: enough to name the problem.
_TOOL_ERROR_LINES = 6


class DatabaseKind(StrEnum):
    postgresql = "postgresql"
    sqlite = "sqlite"


def kind_of(url: str) -> DatabaseKind:
    return DatabaseKind.sqlite if make_url(url).get_backend_name() == "sqlite" else DatabaseKind.postgresql


@dataclass(frozen=True)
class PgConnection:
    """What the PostgreSQL tools need: a libpq URI without the password, and the environment with it."""

    uri: str
    env: dict[str, str]


def pg_connection(url: str) -> PgConnection:
    parsed = make_url(url)
    user = quote(parsed.username or "", safe="")
    host = parsed.host or ""
    netloc = f"{user}@{host}" if user else host
    if parsed.port:
        netloc += f":{parsed.port}"
    query = {name: value for name, value in parsed.query.items() if isinstance(value, str)}
    uri = f"postgresql://{netloc}/{quote(parsed.database or '', safe='')}"
    if query:
        uri += "?" + urlencode(query)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return PgConnection(uri=uri, env=env)


def server_major(engine: Engine) -> int:
    with engine.connect() as connection:
        number = int(connection.execute(text("SHOW server_version_num")).scalar_one())
    return number // 10000


def _tool_major(path: str) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 - a PostgreSQL tool found above, no shell
            [path, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\b(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def pg_tool(name: str, major: int) -> str:
    """``pg_dump`` or ``pg_restore`` of the server's major version, or the newest installed one above it."""
    exact = Path(f"/usr/lib/postgresql/{major}/bin/{name}")
    if exact.is_file():
        return str(exact)
    candidates = [(found, _tool_major(found)) for found in glob.glob(f"/usr/lib/postgresql/*/bin/{name}")]
    on_path = shutil.which(name)
    if on_path is not None:
        candidates.append((on_path, _tool_major(on_path)))
    usable = sorted(
        (version, path) for path, version in candidates if version is not None and version >= major
    )
    if usable:
        return usable[0][1]
    raise BackupError(
        Refusal.tool_missing,
        f"{name} für PostgreSQL {major} fehlt: installieren Sie postgresql-client-{major} "
        "(Debian) oder ein neueres.",
        f"{name} for PostgreSQL {major} is missing: install postgresql-client-{major} (Debian) or newer.",
    )


def tool_failed(name: str, stderr: bytes) -> BackupError:
    lines = stderr.decode("utf-8", errors="replace").strip().splitlines()[-_TOOL_ERROR_LINES:]
    detail = "\n".join(lines) or "(no output)"
    return BackupError(
        Refusal.tool_failed,
        f"{name} ist fehlgeschlagen:\n{detail}",
        f"{name} failed (its last lines are above).",
    )


def start_pg_dump(engine: Engine, url: str) -> subprocess.Popen[bytes]:
    """``pg_dump`` in custom format (compressed, restorable table by table) writing to a pipe."""
    tool = pg_tool("pg_dump", server_major(engine))
    connection = pg_connection(url)
    return subprocess.Popen(  # noqa: S603 - a fixed tool path and arguments, no shell
        [tool, "--format=custom", "--no-owner", "--no-privileges", f"--dbname={connection.uri}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=connection.env,
    )


def pg_restore(engine: Engine, url: str, dump: Path) -> None:
    """Restore a custom-format dump in one transaction: on any error nothing of it stays in the database."""
    tool = pg_tool("pg_restore", server_major(engine))
    connection = pg_connection(url)
    done = subprocess.run(  # noqa: S603 - a fixed tool path and arguments, no shell
        [
            tool,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={connection.uri}",
            str(dump),
        ],
        capture_output=True,
        env=connection.env,
        check=False,
    )
    if done.returncode != 0:
        raise tool_failed("pg_restore", done.stderr)


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("the SQLite database must be a file")
    return Path(database).resolve()


def sqlite_snapshot(url: str, target: Path) -> None:
    """A consistent copy of the live SQLite database (its online backup API), written page by page."""
    source = sqlite3.connect(f"file:{sqlite_path(url)}?mode=ro", uri=True)
    try:
        destination = sqlite3.connect(target)
        try:
            source.backup(destination, pages=1024)
        finally:
            destination.close()
    finally:
        source.close()


def sqlite_tables(path: Path) -> list[str]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    finally:
        connection.close()
    return sorted(str(row[0]) for row in rows)


def sqlite_check(path: Path) -> bool:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return bool(connection.execute("PRAGMA quick_check").fetchone() == ("ok",))
    except sqlite3.DatabaseError:
        return False
    finally:
        connection.close()


def table_names(engine: Engine, url: str) -> list[str]:
    """The tables a restore would collide with (views and sequences count as well on PostgreSQL)."""
    if kind_of(url) is DatabaseKind.sqlite:
        return sqlite_tables(sqlite_path(url))
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
            )
        ).all()
    return sorted(str(row[0]) for row in rows)


def alembic_revision(engine: Engine) -> str | None:
    if not inspect(engine).has_table("alembic_version"):
        return None
    with engine.connect() as connection:
        value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def known_revisions(url: str) -> tuple[set[str], str | None]:
    """Every migration this release knows, and its head."""
    script = ScriptDirectory.from_config(alembic_config(url))
    return {revision.revision for revision in script.walk_revisions()}, script.get_current_head()
