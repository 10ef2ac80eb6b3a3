"""One world per database for the whole matrix module.

The shared fixtures of tests/conftest.py give every test a fresh database; the matrix instead builds its
world (two cases, fourteen subjects, figures, articles) once per database and lets every route's test use it,
so that a test per route costs requests, not a new world. The database is made and dropped as
``database_url`` does, from the same migrated templates.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.config import Settings
from service.runtime import build_runtime
from tests.support.authz import World, app_client, build_world
from tests.support.stack import migrated_database
from tests.support.staff import Clock, staff_factory, totp_codes, weak_accounts, with_policy_organisations


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp(f"authz-{request.param}")
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgres" else None
    with migrated_database(request.param, folder, request.getfixturevalue("sqlite_template"), cluster) as url:
        # Thousands of requests from the one address of the test client: limits far above that.
        settings = Settings(
            data_dir=folder / "data",
            database_url=url,
            intake_limit_per_hour=100_000,
            receipt_limit_per_hour=100_000,
            login_limit_per_hour=100_000,
            login_account_limit_per_hour=100_000,
        )
        runtime = with_policy_organisations(build_runtime(settings))
        try:
            clock = Clock()
            make_staff = staff_factory(runtime, weak_accounts(runtime, clock))
            with app_client(runtime) as client:
                yield build_world(runtime, client, make_staff, totp_codes(clock))
        finally:
            runtime.dispose()
