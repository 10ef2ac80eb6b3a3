"""Migration tests with data: an empty database of each kind, migrated to an old revision, rows written in
that revision's shapes, then upgraded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BindParameter, Engine, bindparam, text

from service.db import UTCDateTime
from service.migrate import upgrade
from tests.support.stack import PgCluster


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = f"m_{uuid.uuid4().hex[:16]}"
    with cluster.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield cluster.url(name)
    with cluster.admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate_to(engine: Engine, revision: str) -> None:
    upgrade(engine, revision)


def insert_row(engine: Engine, table: str, **values: Any) -> None:
    names = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    bound = text(f"INSERT INTO {table} ({names}) VALUES ({marks})").bindparams(
        # Times go through the product's own type, so SQLite stores them as the old code did.
        *[_time_param(name, value) for name, value in values.items() if isinstance(value, datetime)]
    )
    with engine.begin() as connection:
        connection.execute(bound, values)


def _time_param(name: str, value: datetime) -> BindParameter[datetime]:
    return bindparam(name, value, type_=UTCDateTime())


def insert_old_case(engine: Engine, case_id: str, at: datetime, **values: Any) -> None:
    """A ``case_file`` row in the shape of revisions 0009/0010: every required column, ``values`` on top."""
    row: dict[str, Any] = {
        "id": case_id,
        "lookup_hash": b"\x01" * 32,
        "reporter_salt": b"\x02" * 32,
        "reporter_wrapped_key": b"k",
        "status": "new",
        "urgency": "normal",
        "severity": 5,
        "land": "09",
        "consent_counselling": True,
        "consent_police": False,
        "details_ciphertext": b"d",
        "ack_deadline_at": at,
        "created_at": at,
        "updated_at": at,
        "labels": "[]",
    }
    insert_row(engine, "case_file", **{**row, **values})
