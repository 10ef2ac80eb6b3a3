"""Fixtures for staff accounts: a controllable clock, weak Argon2, accounts, sign-ins, tight limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.runtime import Runtime, build_runtime
from tests.support.staff import Clock, weak_accounts, with_policy_organisations


@pytest.fixture
def limited_runtime(settings: Settings, clock: Clock) -> Iterator[Runtime]:
    """A runtime with tiny sign-in limits (3 per client, 2 per account) and weak Argon2."""
    limited = settings.model_copy(update={"login_limit_per_hour": 3, "login_account_limit_per_hour": 2})
    runtime = build_runtime(limited)
    with_policy_organisations(runtime)
    weak_accounts(runtime, clock)
    yield runtime
    runtime.dispose()


@pytest.fixture
def limited_client(limited_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=limited_runtime), base_url="http://127.0.0.1") as client:
        yield client
