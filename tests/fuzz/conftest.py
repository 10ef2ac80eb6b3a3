"""The fuzz tests share one world per module (and database): building it (organisation keys, Argon2 for
five staff accounts, a filed case, a snapshot) costs more than most of the tests that use it.

``sqlite_world`` serves the Schemathesis volume (one database is enough there); ``world`` runs the hostile
corpus on SQLite and on PostgreSQL, because what a database refuses (NUL in text, for one) differs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fuzz import World, build_world, sqlite_copy, world_settings
from tests.support.stack import PgCluster

# Small upload limits, so that the oversized items of the corpus stay small.
SMALL_UPLOADS = {
    "max_attachment_bytes": 256 * 1024,
    "max_image_bytes": 128 * 1024,
    "max_upload_body_bytes": 1024 * 1024,
}


@pytest.fixture(scope="module")
def sqlite_world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    built = build_world(world_settings(data_dir, sqlite_copy(sqlite_template, data_dir)))
    yield built
    built.runtime.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    if request.param == "sqlite":
        built = build_world(world_settings(data_dir, sqlite_copy(sqlite_template, data_dir), **SMALL_UPLOADS))
        yield built
        built.runtime.dispose()
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = f"f_{uuid.uuid4().hex[:16]}"
    with cluster.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE rh_template')
    built = build_world(world_settings(data_dir, cluster.url(name), **SMALL_UPLOADS))
    yield built
    built.runtime.dispose()
    with cluster.admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
