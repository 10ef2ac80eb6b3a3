"""The fuzz tests share one world per module: building it (organisation keys, Argon2 for five staff
accounts, a filed case) costs more than most of the tests that use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzz_helpers import World, build_world, world_settings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    built = build_world(world_settings(tmp_path_factory.mktemp("fuzz") / "data", sqlite_template))
    yield built
    built.runtime.dispose()
