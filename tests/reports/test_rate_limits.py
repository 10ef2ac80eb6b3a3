"""Intake and receipt look-ups are limited per client, keyed without ever storing the address."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.config import Settings
from service.organisations.service import create_organisation
from service.ratelimit.models import RateLimitCounter
from service.runtime import Runtime, build_runtime

REPORT = {"land": "09", "type_codes": ["A1"], "description": "Beleidigung im Netz.", "channel": "email"}


@pytest.fixture
def strict_runtime(settings: Settings) -> Iterator[Runtime]:
    limited = settings.model_copy(update={"intake_limit_per_hour": 3, "receipt_limit_per_hour": 2})
    runtime = build_runtime(limited)
    with runtime.sessions() as session:
        for org in runtime.policy.organisations:
            create_organisation(session, org.slug, org.display_name, org.kind)
        session.commit()
    yield runtime
    runtime.dispose()


def test_intake_is_limited_per_client(strict_runtime: Runtime) -> None:
    with TestClient(create_app(runtime=strict_runtime), base_url="http://127.0.0.1") as client:
        statuses = [client.post("/api/v1/reports", json=REPORT).status_code for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]


def test_receipt_lookups_are_limited_per_client(strict_runtime: Runtime) -> None:
    with TestClient(create_app(runtime=strict_runtime), base_url="http://127.0.0.1") as client:
        statuses = [
            client.post("/api/v1/reports/lookup", json={"receipt": "ABCD-EFGH-JKMN-PQRS-TVWX"}).status_code
            for _ in range(4)
        ]
    assert statuses == [404, 404, 429, 429]


def test_the_html_form_is_limited_too_and_says_so_in_german(strict_runtime: Runtime) -> None:
    with TestClient(create_app(runtime=strict_runtime), base_url="http://127.0.0.1") as client:
        for _ in range(3):
            client.post("/api/v1/reports", json=REPORT)
        response = client.post("/melden", data={"description": "x"})
    assert response.status_code == 429
    assert '<html lang="de"' in response.text


def test_counters_hold_no_client_address(strict_runtime: Runtime) -> None:
    with TestClient(create_app(runtime=strict_runtime), base_url="http://127.0.0.1") as client:
        client.post("/api/v1/reports", json=REPORT)
    with strict_runtime.sessions() as session:
        keys = list(session.scalars(select(RateLimitCounter.key)))
    assert keys
    for key in keys:
        assert "127.0.0.1" not in key
        assert "testclient" not in key
        assert len(key) == 64
