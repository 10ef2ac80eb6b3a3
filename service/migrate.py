"""Apply Alembic migrations programmatically (``rueckhalt migrate``, ``make run``, the tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

from service.config import PROJECT_ROOT


class MigrationError(RuntimeError):
    pass


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "service" / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextmanager
def foreign_keys_deferred_to_the_end(connection: Connection) -> Iterator[None]:
    """On SQLite, foreign keys off while migrating, and every reference checked before the commit.

    Alembic's batch mode changes a SQLite table by copying it and dropping the old one. With foreign keys
    on, that drop deletes the rows that refer to the table through ON DELETE CASCADE (an incident's
    attachments and routing records vanished that way) or fails on the others. SQLite ignores the pragma
    inside a transaction, so it is set before the migration's transaction begins, and put back after.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
    finally:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def _check_foreign_keys(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise MigrationError(f"the migration left rows whose references are broken in: {', '.join(tables)}")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision`` in one transaction; nothing is committed if a step or the check fails."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as connection, foreign_keys_deferred_to_the_end(connection), connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        _check_foreign_keys(connection)
