"""Fixtures with real parts: a PostgreSQL cluster started for the session, SQLite files, the real app.

Every test that asks for ``database_url`` runs twice, on SQLite (the embedded default) and on PostgreSQL.
PostgreSQL's initdb refuses to run as root, so as root the cluster runs as the ``postgres`` system user in
a temporary folder that user owns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import sessions
from service.auth.service import AccountService
from service.auth.sessions import STAFF_SESSION
from service.auth.subject import Subject
from service.config import Settings
from service.db import make_engine
from service.migrate import upgrade
from service.runtime import Runtime, build_runtime
from tests.support.migration import empty_database  # noqa: F401 - a fixture, for every migration test with data
from tests.support.organisations_template import OrganisationsTemplate, make_template
from tests.support.stack import PgCluster, migrated_database
from tests.support.staff import (
    Clock,
    Login,
    MakeStaff,
    Staff,
    staff_factory,
    totp_codes,
    weak_accounts,
)
from tools.line_coverage import measure_files_loaded_by_path_in_worker

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    measure_files_loaded_by_path_in_worker()  # before the first migration loads service/migrations/env.py


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadfile`` as `make test` runs it (tests/support/parallel.py); other modes as xdist's."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from tests.support.parallel import ModuleScheduling

    return ModuleScheduling(config, log)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster()
    try:
        engine = make_engine(cluster.url("postgres"))
        with cluster.admin() as conn:
            conn.execute("CREATE DATABASE rh_template")
        template = make_engine(cluster.url("rh_template"))
        upgrade(template)
        template.dispose()
        engine.dispose()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A migrated, empty database of each kind, fresh for every test."""
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgres" else None
    with migrated_database(request.param, tmp_path, sqlite_template, cluster) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        intake_limit_per_hour=1000,
        receipt_limit_per_hour=1000,
    )


@pytest.fixture
def runtime_without_orgs(settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(settings)
    yield runtime
    runtime.dispose()


@pytest.fixture(scope="session")
def organisations_template(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> OrganisationsTemplate:
    return make_template(tmp_path_factory.mktemp("organisations-template"), sqlite_template)


@pytest.fixture
def runtime(settings: Settings, organisations_template: OrganisationsTemplate) -> Iterator[Runtime]:
    """A runtime whose database holds every organisation of the demo policy, each with a key: the rows
    ``with_policy_organisations`` writes, made once per process and copied in (tests/support/
    organisations_template.py)."""
    runtime = organisations_template.runtime(settings)
    yield runtime
    runtime.dispose()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def wait_for() -> object:
    def _wait(predicate: object, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if callable(predicate) and predicate():
                return True
            time.sleep(0.05)
        return False

    return _wait


@pytest.fixture(autouse=True)
def _capture_all_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture every logger at DEBUG so canary tests can search all log output."""
    caplog.set_level(logging.DEBUG)


# -- staff accounts (shared by tests/auth, tests/cases) ------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(runtime: Runtime, clock: Clock) -> AccountService:
    return weak_accounts(runtime, clock)


@pytest.fixture
def make_staff(runtime: Runtime, accounts: AccountService) -> MakeStaff:
    return staff_factory(runtime, accounts)


@pytest.fixture
def code(clock: Clock) -> Callable[[Staff], str]:
    """The current TOTP code of a staff member; the clock moves on, so the next call gets a fresh one."""
    return totp_codes(clock)


@pytest.fixture
def api_login(client: TestClient, code: Callable[[Staff], str]) -> Callable[..., httpx2.Response]:
    def login(staff: Staff, *, password: str | None = None, totp: str | None = None) -> httpx2.Response:
        body = {
            "email": staff.email,
            "password": staff.password if password is None else password,
            "totp": code(staff) if totp is None else totp,
        }
        return client.post("/api/v1/session", json=body)

    return login


@pytest.fixture
def subject_of(
    runtime: Runtime, accounts: AccountService, code: Callable[[Staff], str]
) -> Callable[[Staff], Subject]:
    """Sign in through the service and open the session again, as the web layer does per request."""

    def open_subject(staff: Staff) -> Subject:
        with runtime.sessions() as db:
            logged_in = accounts.login(db, staff.email, staff.password, code(staff))
            assert logged_in is not None
            assert logged_in.private_key is not None
            cookie = sessions.create(db, STAFF_SESSION, logged_in.user.id, logged_in.private_key.raw)
            db.commit()
            opened = sessions.open_session(db, STAFF_SESSION, cookie)
            assert opened is not None
            subject = accounts.subject_for(db, opened)
        assert subject is not None
        return subject

    return open_subject


@pytest.fixture
def login(runtime: Runtime, code: Callable[[Staff], str]) -> Iterator[Login]:
    """Sign a staff member in through the API; state-changing calls carry the session's CSRF header."""
    with ExitStack() as stack:

        def sign_in(staff: Staff) -> TestClient:
            client = stack.enter_context(TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1"))
            body = {"email": staff.email, "password": staff.password, "totp": code(staff)}
            response = client.post("/api/v1/session", json=body)
            assert response.status_code == 200, response.text
            client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
            return client

        yield sign_in
