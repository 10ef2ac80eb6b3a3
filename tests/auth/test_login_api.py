"""POST /api/v1/session: one answer for every failure, code before password, limits, bounded Argon2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from service.auth import account_keys
from service.auth.gate import Argon2Gate
from service.crypto import totp_code
from service.identity.models import MembershipRole
from service.runtime import Runtime
from tests.support.staff import PASSWORD, Clock, MakeStaff, Staff, staff_factory

Login = Callable[..., httpx2.Response]
FAILED = {"detail": "Wrong e-mail, password or code."}


def count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Spy on a function as the account keys see it (service/auth/account_keys.py); one more per call."""
    calls: list[int] = []
    original = getattr(account_keys, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(account_keys, name, spy)
    return calls


def test_sign_in_sets_a_strict_cookie_and_answers_who_it_is(
    client: TestClient, make_staff: MakeStaff, api_login: Login
) -> None:
    staff = make_staff(email="Anna.Berger@Example.org", memberships=[("beratung-by", MembershipRole.lead)])
    response = api_login(staff)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["must_change_password"] is False
    assert len(body["csrf_token"]) == 64
    assert body["user"]["email"] == "anna.berger@example.org"
    assert body["user"]["is_admin"] is False
    [membership] = body["user"]["memberships"]
    assert (membership["organisation_slug"], membership["role"]) == ("beratung-by", "lead")
    # Beside it come the device cookie (tests/auth/test_lockout.py) and a new CSRF cookie.
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("rh_staff="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Max-Age" not in cookie

    me = client.get("/api/v1/session")
    assert me.status_code == 200
    assert me.json() == body


@pytest.mark.parametrize("case", ["password", "totp", "unknown", "disabled", "malformed_code", "empty_email"])
def test_every_failure_gets_the_same_answer(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, api_login: Login, clock: Clock, case: str
) -> None:
    staff = make_staff()
    if case == "password":
        response = api_login(staff, password="Falsches-Passwort-123")
    elif case == "totp":
        response = api_login(staff, totp=totp_code(staff.totp_secret, clock() + 300))
    elif case == "unknown":
        response = api_login(Staff("x", "niemand@example.org", PASSWORD, staff.totp_secret))
    elif case == "disabled":
        with runtime.sessions() as db:
            runtime.accounts.disable(db, runtime.accounts.user_by_id(db, staff.user_id))
            db.commit()
        response = api_login(staff)
    elif case == "malformed_code":
        response = api_login(staff, totp="12ab56")
    else:
        response = client.post("/api/v1/session", json={"email": " ", "password": "x", "totp": "123456"})
    assert response.status_code == 401
    assert response.json() == FAILED
    assert "set-cookie" not in response.headers
    assert client.get("/api/v1/session").status_code == 401


def test_a_replayed_code_is_refused_even_with_the_right_password(
    client: TestClient, make_staff: MakeStaff, api_login: Login, clock: Clock
) -> None:
    staff = make_staff()
    code = totp_code(staff.totp_secret, clock())
    assert api_login(staff, totp=code).status_code == 200
    client.cookies.clear()
    replay = api_login(staff, totp=code)
    assert replay.status_code == 401
    assert replay.json() == FAILED


def test_the_code_is_checked_before_the_password(
    monkeypatch: pytest.MonkeyPatch, make_staff: MakeStaff, api_login: Login, clock: Clock
) -> None:
    """Given a wrong code and the right password, then the sealed key is never tried (no password oracle),
    and one dummy Argon2 run keeps the timing of a real check."""
    staff = make_staff()
    opened = count_calls(monkeypatch, "open_with_password_and_pepper")
    dummy = count_calls(monkeypatch, "derive_password_key")
    response = api_login(staff, totp=totp_code(staff.totp_secret, clock() - 600))
    assert response.status_code == 401
    assert opened == []
    assert dummy == [1]


def test_an_unknown_address_costs_one_argon2_run_too(
    monkeypatch: pytest.MonkeyPatch, make_staff: MakeStaff, api_login: Login
) -> None:
    staff = make_staff()
    opened = count_calls(monkeypatch, "open_with_password_and_pepper")
    dummy = count_calls(monkeypatch, "derive_password_key")
    response = api_login(Staff("x", "unbekannt@example.org", PASSWORD, staff.totp_secret))
    assert response.status_code == 401
    assert opened == []
    assert dummy == [1]


def test_a_real_check_runs_argon2_once_and_no_dummy(
    monkeypatch: pytest.MonkeyPatch, make_staff: MakeStaff, api_login: Login
) -> None:
    staff = make_staff()
    opened = count_calls(monkeypatch, "open_with_password_and_pepper")
    dummy = count_calls(monkeypatch, "derive_password_key")
    assert api_login(staff, password="Falsches-Passwort-123").status_code == 401
    assert (opened, dummy) == ([1], [])


def test_sign_in_with_a_recovery_code_works_once(
    client: TestClient,
    runtime: Runtime,
    make_staff: MakeStaff,
    api_login: Login,
    code: Callable[[Staff], str],
) -> None:
    staff = make_staff()
    with runtime.sessions() as db:
        codes = runtime.accounts.new_recovery_codes(
            db, runtime.accounts.user_by_id(db, staff.user_id), password=PASSWORD, current_code=code(staff)
        )
        db.commit()
    assert codes is not None
    assert api_login(staff, totp=codes[3]).status_code == 200
    client.cookies.clear()
    assert api_login(staff, totp=codes[3]).json() == FAILED


def test_sign_in_is_limited_per_account(
    limited_client: TestClient, limited_runtime: Runtime, clock: Clock
) -> None:
    """Given two attempts for one account within the hour, the third is refused, even with the right code."""
    staff = staff_factory(limited_runtime, limited_runtime.accounts)()
    body = {"email": staff.email, "password": "Falsches-Passwort-123", "totp": "000000"}
    assert limited_client.post("/api/v1/session", json=body).status_code == 401
    assert limited_client.post("/api/v1/session", json=body).status_code == 401
    right = {**body, "password": PASSWORD, "totp": totp_code(staff.totp_secret, clock())}
    refused = limited_client.post("/api/v1/session", json=right)
    assert refused.status_code == 429
    assert "set-cookie" not in refused.headers


def test_sign_in_is_limited_per_client(limited_client: TestClient) -> None:
    """Given three attempts from one address for different accounts, the fourth is refused."""
    statuses = [
        limited_client.post(
            "/api/v1/session", json={"email": f"n{i}@example.org", "password": "x", "totp": "000000"}
        ).status_code
        for i in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


def test_a_full_argon2_gate_answers_503_at_once(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, api_login: Login
) -> None:
    staff = make_staff()
    gate = Argon2Gate(slots=1, wait_seconds=0.05)
    runtime.argon2_gate = gate
    assert gate._semaphore.acquire(blocking=False)  # someone else's derivation is running
    try:
        busy = api_login(staff)
    finally:
        gate._semaphore.release()
    assert busy.status_code == 503
    assert busy.json() == {"detail": "The service is busy. Please try again in a moment."}
    assert api_login(staff).status_code == 200


def test_failures_leave_no_address_or_password_in_logs_or_answers(
    client: TestClient, make_staff: MakeStaff, api_login: Login, caplog: pytest.LogCaptureFixture
) -> None:
    staff = make_staff(email="geheim.adresse@example.org")
    response = api_login(staff, password="Canary-Passwort-4711")
    assert response.status_code == 401
    invalid = client.post("/api/v1/session", json={"email": staff.email, "password": "Canary-Passwort-4711"})
    assert invalid.status_code == 422
    for text in (caplog.text, response.text, invalid.text):
        assert "Canary-Passwort-4711" not in text
        assert "geheim.adresse" not in text


def test_the_session_api_is_in_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/v1/session"]) == {"get", "post", "delete"}
    assert set(paths["/api/v1/session/password"]) == {"post"}
    assert "401" in paths["/api/v1/session"]["post"]["responses"]
