"""Fixtures for staff accounts: a controllable clock, weak Argon2, accounts, sign-ins, tight limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from staff_helpers import Clock, MakeStaff, Staff, staff_factory, weak_accounts

from service.app import create_app
from service.auth import sessions
from service.auth.service import AccountService
from service.auth.sessions import STAFF_SESSION
from service.auth.subject import Subject
from service.config import Settings
from service.crypto import totp_code
from service.organisations.service import create_organisation
from service.runtime import Runtime, build_runtime


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

    def current(staff: Staff) -> str:
        value = totp_code(staff.totp_secret, clock())
        clock.advance(30)
        return value

    return current


@pytest.fixture
def api_login(client: TestClient, code: Callable[[Staff], str]) -> Callable[..., httpx.Response]:
    def login(staff: Staff, *, password: str | None = None, totp: str | None = None) -> httpx.Response:
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
            cookie = sessions.create(db, STAFF_SESSION, logged_in.user.id, logged_in.private_key.raw)
            db.commit()
            opened = sessions.resume(db, STAFF_SESSION, cookie)
            assert opened is not None
            subject = accounts.subject_for(db, opened)
        assert subject is not None
        return subject

    return open_subject


@pytest.fixture
def limited_runtime(settings: Settings, clock: Clock) -> Iterator[Runtime]:
    """A runtime with tiny sign-in limits (3 per client, 2 per account) and weak Argon2."""
    limited = settings.model_copy(update={"login_limit_per_hour": 3, "login_account_limit_per_hour": 2})
    runtime = build_runtime(limited)
    recovery = {}
    with runtime.sessions() as db:
        for org in runtime.policy.organisations:
            recovery[org.slug] = create_organisation(db, org.slug, org.display_name, org.kind).recovery_key
        db.commit()
    runtime.recovery_keys = recovery  # type: ignore[attr-defined]
    weak_accounts(runtime, clock)
    yield runtime
    runtime.dispose()


@pytest.fixture
def limited_client(limited_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=limited_runtime), base_url="http://127.0.0.1") as client:
        yield client
