"""Signed-in API clients for case-work tests: one client (cookie jar) per staff member."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient
from staff_helpers import Staff

from service.app import create_app
from service.runtime import Runtime

Login = Callable[[Staff], TestClient]


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
