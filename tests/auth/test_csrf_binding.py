"""Form CSRF tokens are bound to the session, behind TLS every cookie is __Host-, and sign-in rotates the
signed-out CSRF cookie (issue 14.6)."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.app import create_app
from service.auth.models import WebSession
from service.config import Settings
from service.runtime import Runtime, build_runtime
from tests.support.forms import csrf_token, report_body
from tests.support.staff import (
    Clock,
    MakeStaff,
    Staff,
    staff_factory,
    weak_accounts,
    with_policy_organisations,
)

Code = Callable[[Staff], str]
REPORT = report_body()


def _page_sign_in(client: TestClient, staff: Staff, code_of: Code) -> httpx2.Response:
    fields = {
        "csrf_token": csrf_token(client.get("/anmelden").text),
        "email": staff.email,
        "password": staff.password,
        "code": code_of(staff),
    }
    return client.post("/anmelden", data=fields, follow_redirects=False)


def _sessions(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(WebSession)) or 0)


def test_a_tossed_csrf_cookie_with_its_token_is_refused_for_a_signed_in_counsellor(
    runtime: Runtime, make_staff: MakeStaff, code: Code
) -> None:
    """Given an attacker who fetched a CSRF cookie and its token for himself and planted the cookie in a
    counsellor's browser (cookie tossing from a sibling subdomain), a form posted from her browser with his
    token is refused: her tokens are bound to her session, which he does not know."""
    app = create_app(runtime=runtime)
    attacker = TestClient(app, base_url="http://127.0.0.1")
    planted = attacker.get("/melden")
    cookie, token = planted.cookies["rh_csrf"], csrf_token(planted.text)

    victim = TestClient(app, base_url="http://127.0.0.1")
    assert _page_sign_in(victim, make_staff(), code).status_code == 303
    victim.cookies.set("rh_csrf", cookie)
    before = _sessions(runtime)
    response = victim.post("/abmelden", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 403
    assert _sessions(runtime) == before, "she is still signed in"
    # Her own page's token works.
    own = csrf_token(victim.get("/intern").text)
    assert victim.post("/abmelden", data={"csrf_token": own}).status_code == 200
    assert _sessions(runtime) == before - 1


def test_a_token_of_one_session_does_not_work_in_another(
    runtime: Runtime, make_staff: MakeStaff, code: Code
) -> None:
    app = create_app(runtime=runtime)
    first, second = TestClient(app, base_url="http://127.0.0.1"), TestClient(app, base_url="http://127.0.0.1")
    assert _page_sign_in(first, make_staff(), code).status_code == 303
    assert _page_sign_in(second, make_staff(), code).status_code == 303
    token_of_first = csrf_token(first.get("/intern").text)
    second.cookies.set("rh_csrf", first.cookies["rh_csrf"])  # even with the same CSRF cookie
    assert second.post("/abmelden", data={"csrf_token": token_of_first}).status_code == 403


def test_sign_in_replaces_the_csrf_cookie_and_sign_out_gives_a_working_form(
    runtime: Runtime, make_staff: MakeStaff, code: Code
) -> None:
    """The signed-out CSRF cookie seen before the sign-in is replaced at the sign-in (staff and reporter);
    the sign-in page shown after signing out carries a token that works for the next sign-in."""
    staff = make_staff()
    client = TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1")
    before = client.get("/anmelden").cookies["rh_csrf"]
    signed_in = _page_sign_in(client, staff, code)
    assert signed_in.status_code == 303
    assert signed_in.cookies.get("rh_csrf") not in (None, before)

    signed_out = client.post("/abmelden", data={"csrf_token": csrf_token(client.get("/intern").text)})
    assert signed_out.status_code == 200
    again = {
        "csrf_token": csrf_token(signed_out.text),
        "email": staff.email,
        "password": staff.password,
        "code": code(staff),
    }
    assert client.post("/anmelden", data=again, follow_redirects=False).status_code == 303

    reporter = TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1")
    receipt = reporter.post("/api/v1/reports", json=REPORT).json()["receipt"]
    page = reporter.get("/fall")
    anonymous = page.cookies["rh_csrf"]
    login = reporter.post(
        "/fall/anmelden",
        data={"csrf_token": csrf_token(page.text), "receipt": receipt},
        follow_redirects=False,
    )
    assert login.status_code == 303
    assert login.cookies.get("rh_csrf") not in (None, anonymous)
    # The token of the signed-out page no longer works once she is signed in: tokens follow the session.
    stale = reporter.post("/fall/abmelden", data={"csrf_token": csrf_token(page.text)})
    assert stale.status_code == 403
    fresh = csrf_token(reporter.get("/fall").text)
    assert reporter.post("/fall/abmelden", data={"csrf_token": fresh}).status_code == 200


def test_behind_tls_every_cookie_is_host_prefixed_and_still_read(
    settings: Settings, clock: Clock, code: Code
) -> None:
    """Behind TLS the cookies are __Host- (Secure, Path=/, no Domain), which no sibling subdomain and no
    plain-HTTP page can set; the service reads them under those names (staff, device, reporter, CSRF)."""
    runtime = with_policy_organisations(build_runtime(settings.model_copy(update={"behind_tls": True})))
    try:
        staff = staff_factory(runtime, weak_accounts(runtime, clock))()
        client = TestClient(create_app(runtime=runtime), base_url="https://127.0.0.1")
        page = client.get("/melden?lang=en")
        assert page.status_code == 200
        set_cookies = page.headers.get_list("set-cookie")
        assert {header.split("=", 1)[0] for header in set_cookies} == {"__Host-rh_csrf", "__Host-rh_lang"}
        for header in set_cookies:
            lowered = header.lower()
            assert "secure" in lowered
            assert "path=/" in lowered
            assert "domain=" not in lowered

        signed_in = _page_sign_in(client, staff, code)
        assert signed_in.status_code == 303
        names = {header.split("=", 1)[0] for header in signed_in.headers.get_list("set-cookie")}
        assert {"__Host-rh_staff", "__Host-rh_device", "__Host-rh_csrf"} <= names
        assert not any(name.startswith("rh_") for name in names)
        assert client.get("/intern").status_code == 200, "the prefixed session cookie is read"
        assert client.get("/api/v1/session").status_code == 200

        reporter = TestClient(create_app(runtime=runtime), base_url="https://127.0.0.1")
        receipt = reporter.post("/api/v1/reports", json=REPORT).json()["receipt"]
        form = reporter.get("/fall")
        login = reporter.post(
            "/fall/anmelden",
            data={"csrf_token": csrf_token(form.text), "receipt": receipt},
            follow_redirects=False,
        )
        assert login.status_code == 303
        assert "__Host-rh_reporter" in {h.split("=", 1)[0] for h in login.headers.get_list("set-cookie")}
        assert 'action="/fall/abmelden"' in reporter.get("/fall").text, "the prefixed session is read"
    finally:
        runtime.dispose()
