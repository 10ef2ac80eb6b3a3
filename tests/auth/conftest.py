"""Fixtures for staff accounts: a controllable clock, weak Argon2, accounts, sign-ins, tight limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from staff_helpers import Clock, weak_accounts

from service.app import create_app
from service.config import Settings
from service.organisations.service import create_organisation
from service.runtime import Runtime, build_runtime


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
