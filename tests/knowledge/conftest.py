"""Fixtures of the knowledge tests: a runtime with the shipped articles, and browsers on it (signed out, or
signed in as a member of staff). test_support.py seeds the support directory too (its own ``seeded``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.knowledge.seed import seed_articles
from service.runtime import Runtime
from tests.support.forms import csrf_token
from tests.support.staff import Staff

Browser = Callable[[Staff | None], TestClient]


@pytest.fixture
def seeded(runtime: Runtime) -> Runtime:
    with runtime.sessions() as db:
        seed_articles(db)
    return runtime


@pytest.fixture
def browser(seeded: Runtime, code: Callable[[Staff], str]) -> Iterator[Browser]:
    with ExitStack() as stack:

        def open_browser(staff: Staff | None) -> TestClient:
            client = stack.enter_context(TestClient(create_app(runtime=seeded), base_url="http://127.0.0.1"))
            if staff is not None:
                form = {
                    "csrf_token": csrf_token(client.get("/anmelden").text),
                    "email": staff.email,
                    "password": staff.password,
                    "code": code(staff),
                }
                assert client.post("/anmelden", data=form, follow_redirects=False).status_code == 303
            return client

        yield open_browser
