"""Guesses from anywhere must not lock a counsellor out (issue 14.2).

Her browser keeps a device cookie from her last sign-in: attempts with it have an allowance of their own.
Unknown browsers are limited per account and client address; past the account's total they are slowed
down, never refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from service.app import create_app
from service.auth.deps import DEVICE_COOKIE
from service.runtime import Runtime
from tests.support.staff import MakeStaff, Staff

Code = Callable[[Staff], str]
WRONG = "falsches-Passwort-123"


def _client(app: object, address: str) -> TestClient:
    # Without `with`: no lifespan per client (the thread pool serves), fifty of them stay cheap.
    return TestClient(app, base_url="http://127.0.0.1", client=(address, 40_000))  # type: ignore[arg-type]


def _attempt(client: TestClient, staff: Staff, password: str, totp: str) -> int:
    body = {"email": staff.email, "password": password, "totp": totp}
    return client.post("/api/v1/session", json=body).status_code


def test_fifty_attacker_addresses_guessing_do_not_keep_her_from_signing_in(
    runtime: Runtime, make_staff: MakeStaff, code: Code
) -> None:
    """Given a counsellor who signed in from her browser before, when 50 addresses guess her password three
    times each (150 guesses: fifteen times the per-account limit), she still signs in from her browser at
    once; and a single address that keeps guessing meets its own limit."""
    she = make_staff()
    # The guesses past the account's total are slowed down; kept short here, the count is what matters.
    runtime.settings = runtime.settings.model_copy(update={"login_slowdown_max_seconds": 0.01})
    app = create_app(runtime=runtime)
    browser = _client(app, "198.51.100.7")
    assert _attempt(browser, she, she.password, code(she)) == 200
    assert browser.cookies.get(DEVICE_COOKIE), "her browser keeps a device cookie"

    for n in range(50):
        attacker = _client(app, f"203.0.113.{n + 1}")
        statuses = {_attempt(attacker, she, WRONG, "000000") for _ in range(3)}
        assert statuses == {401}, "guesses are answered, each address within its own allowance"

    assert _attempt(browser, she, she.password, code(she)) == 200, "not locked out"

    persistent = _client(app, "203.0.113.200")
    limit = runtime.settings.login_account_limit_per_hour
    answers = [_attempt(persistent, she, WRONG, "000000") for _ in range(limit + 1)]
    assert answers == [401] * limit + [429], "one address guessing meets its limit for the account"


def test_her_new_browser_after_a_flood_is_slowed_down_not_refused(
    runtime: Runtime, make_staff: MakeStaff, code: Code
) -> None:
    """Given the account's total for unknown browsers used up by guesses from many addresses, her sign-in
    from a browser that never signed in before (and a new address) is slowed down, and succeeds."""
    she = make_staff()
    slow = runtime.settings.model_copy(
        update={"login_account_total_per_hour": 20, "login_slowdown_max_seconds": 0.3}
    )
    runtime.settings = slow  # the limits are read per request
    app = create_app(runtime=runtime)
    for n in range(25):
        assert _attempt(_client(app, f"192.0.2.{n + 1}"), she, WRONG, "000000") == 401
    new_browser = _client(app, "198.51.100.99")
    started = time.monotonic()
    assert _attempt(new_browser, she, she.password, code(she)) == 200
    assert time.monotonic() - started >= 0.3, "slowed down"


def test_a_device_cookie_counts_only_for_its_own_account_and_cannot_be_forged(
    runtime: Runtime, make_staff: MakeStaff, code: Code
) -> None:
    """Given a browser that signed in to account A, its device cookie gives no allowance for account B, and
    a made-up cookie is no device: both are counted like any unknown browser."""
    a, b = make_staff(), make_staff()
    runtime.settings = runtime.settings.model_copy(update={"login_slowdown_max_seconds": 0.01})
    app = create_app(runtime=runtime)
    browser = _client(app, "198.51.100.8")
    assert _attempt(browser, a, a.password, code(a)) == 200
    device_of_a = browser.cookies.get(DEVICE_COOKIE)
    assert device_of_a
    limit = runtime.settings.login_account_limit_per_hour
    for cookie in (device_of_a, "forged.0123456789abcdef0123456789abcdef"):
        guesser = _client(app, f"203.0.113.{1 if cookie == device_of_a else 2}")
        guesser.cookies.set(DEVICE_COOKIE, cookie)
        statuses = [_attempt(guesser, b, WRONG, "000000") for _ in range(limit + 1)]
        assert statuses[-1] == 429
    # Her own browser's device allowance is hers alone: the guesses at B did not touch it.
    assert _attempt(browser, a, a.password, code(a)) == 200


def test_the_device_cookie_is_http_only_strict_and_long_lived(
    runtime: Runtime, make_staff: MakeStaff, code: Code
) -> None:
    she = make_staff()
    browser = _client(create_app(runtime=runtime), "198.51.100.9")
    response = browser.post(
        "/api/v1/session", json={"email": she.email, "password": she.password, "totp": code(she)}
    )
    header = next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{DEVICE_COOKIE}="))
    lowered = header.lower()
    assert "httponly" in lowered
    assert "samesite=strict" in lowered
    assert "max-age=15552000" in lowered
