"""The demo policy's organisations, set up once per test process and copied into each test's database.

``with_policy_organisations`` makes twenty organisations, each with a hybrid key pair, recovery shares and
an audit event: about a fifth of a second per test, and most tests ask for a runtime with organisations.
The rows it writes (organisations, key epochs, the audit chain) are made once here, on a database of
their own, and inserted into each test's fresh database before its runtime is built; the test's data
folder gets the secrets they were made under, so the audit chain verifies and every sealed value opens as
if the test had made them itself. What a test then does is its own: nothing of one test reaches another.

Tests that build their runtime in another way (other settings, several processes) still call
``with_policy_organisations``; it stays the reference, and this copy is checked against it
(tests/core/test_organisations_template.py).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, Table, func, select, text

from service.config import Settings, secrets_folder
from service.db import make_engine
from service.models import Base
from service.runtime import Runtime, build_runtime
from tests.support.staff import with_policy_organisations


@dataclass(frozen=True)
class OrganisationsTemplate:
    secrets: Path
    # Table -> rows as the column types read them, tables in dependency order.
    rows: tuple[tuple[Table, tuple[dict[str, Any], ...]], ...]
    shares: dict[str, list[str]]

    def install(self, settings: Settings) -> None:
        """The rows into ``settings``' (empty, migrated) database and the secrets into its data folder."""
        target = secrets_folder(settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.secrets, target, dirs_exist_ok=True)
        engine = make_engine(settings.resolved_database_url)
        try:
            with engine.begin() as connection:
                for table, rows in self.rows:
                    connection.execute(table.insert(), [dict(row) for row in rows])
                if connection.dialect.name == "postgresql":
                    # Rows inserted with their own numbers leave the sequence behind: move it on.
                    for table, _ in self.rows:
                        for column in table.primary_key.columns:
                            if isinstance(column.type, Integer) and column.autoincrement is not False:
                                connection.execute(
                                    text(
                                        f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                                        f"'{column.name}'), (SELECT max({column.name}) FROM {table.name}))"
                                    )
                                )
        finally:
            engine.dispose()

    def runtime(self, settings: Settings) -> Runtime:
        """A runtime on ``settings`` holding the organisations, as ``with_policy_organisations`` leaves it."""
        self.install(settings)
        runtime = build_runtime(settings)
        runtime.recovery_shares = {slug: list(shares) for slug, shares in self.shares.items()}  # type: ignore[attr-defined]
        return runtime


def make_template(folder: Path, sqlite_template: Path) -> OrganisationsTemplate:
    """Set the organisations up once, the reference way, on a copy of the migrated SQLite template."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    database = data / "rueckhalt.db"
    shutil.copyfile(sqlite_template, database)
    settings = Settings(data_dir=data, database_url=f"sqlite:///{database}")
    runtime = with_policy_organisations(build_runtime(settings))
    try:
        shares: dict[str, list[str]] = runtime.recovery_shares  # type: ignore[attr-defined]
        rows: list[tuple[Table, tuple[dict[str, Any], ...]]] = []
        with runtime.sessions() as session:
            for table in Base.metadata.sorted_tables:
                if session.scalar(select(func.count()).select_from(table)):
                    found = session.execute(select(table)).mappings().all()
                    rows.append((table, tuple(dict(row) for row in found)))
        return OrganisationsTemplate(secrets_folder(settings), tuple(rows), shares)
    finally:
        runtime.dispose()
