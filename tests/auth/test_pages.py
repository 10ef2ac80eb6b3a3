"""Staff pages: sign-in, forced password change, start page, two-factor set-up, sign-out."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit.models import AuditEvent
from service.auth.models import WebSession
from service.auth.passwords import PasswordProblem
from service.crypto import totp_code, totp_secret_from_base32
from service.i18n import I18N_DIR, SUPPORTED, load_catalogue
from service.identity.models import MembershipRole, StaffUser
from service.runtime import Runtime
from tests.support.forms import csrf_token
from tests.support.staff import PASSWORD, Clock, MakeStaff, Staff

Code = Callable[[Staff], str]


def sign_in(client: TestClient, staff: Staff, code_of: Code, **overrides: str) -> httpx2.Response:
    fields = {
        "csrf_token": csrf_token(client.get("/anmelden").text),
        "email": staff.email,
        "password": staff.password,
        "code": code_of(staff),
        **overrides,
    }
    return client.post("/anmelden", data=fields, follow_redirects=False)


def test_the_sign_in_page_in_german_and_english(client: TestClient) -> None:
    german = client.get("/anmelden")
    assert german.status_code == 200
    assert "Anmeldung für Mitarbeitende" in german.text
    for name in ("email", "password", "code"):
        assert f'name="{name}"' in german.text
    assert 'autocomplete="one-time-code"' in german.text
    english = client.get("/anmelden?lang=en")
    assert "Staff sign-in" in english.text
    assert "default-src 'none'" in english.headers["content-security-policy"]


def test_first_sign_in_forces_the_password_change_then_shows_the_start_page(
    client: TestClient, make_staff: MakeStaff, code: Code
) -> None:
    staff = make_staff(
        name="Anna Berger",
        must_change_password=True,
        memberships=[("beratung-by", MembershipRole.lead)],
    )
    response = sign_in(client, staff, code)
    assert response.status_code == 303
    assert response.headers["location"] == "/konto/passwort"
    assert client.get("/intern", follow_redirects=False).headers["location"] == "/konto/passwort"

    page = client.get("/konto/passwort")
    assert "Erstpasswort" in page.text
    form = {"csrf_token": csrf_token(page.text), "current_password": PASSWORD}
    mismatch = client.post(
        "/konto/passwort", data={**form, "new_password": "ein ganz neuer Satz", "new_password_repeat": "x"}
    )
    assert mismatch.status_code == 422
    assert "stimmen nicht überein" in mismatch.text
    common = client.post(
        "/konto/passwort",
        data={**form, "new_password": "qwerty123456", "new_password_repeat": "qwerty123456"},
    )
    assert common.status_code == 422
    assert "häufigsten Passwörtern" in common.text
    assert 'href="#field-new_password"' in common.text
    assert "qwerty123456" not in common.text, "passwords are never filled in again"

    new = "ein ganz neuer Satz"
    done = client.post(
        "/konto/passwort",
        data={**form, "new_password": new, "new_password_repeat": new},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/intern"
    home = client.get("/intern")
    assert home.status_code == 200
    assert "Anna Berger" in home.text
    assert "Beratungsstelle Rückhalt Bayern (Demo)" in home.text
    assert "Leitung" in home.text
    assert 'action="/abmelden"' in home.text
    assert "keine Wiederherstellungscodes" in home.text


def test_a_failed_sign_in_says_one_thing_and_keeps_only_the_address(
    client: TestClient, make_staff: MakeStaff, code: Code
) -> None:
    staff = make_staff(email="anna@example.org")
    response = sign_in(client, staff, code, password="Falsches-Passwort-123")
    assert response.status_code == 401
    text = response.text
    assert "E-Mail, Passwort oder Code falsch" in text
    assert 'value="anna@example.org"' in text
    assert "Falsches-Passwort-123" not in text
    unknown = sign_in(client, Staff("x", "niemand@example.org", PASSWORD, staff.totp_secret), code)
    assert unknown.status_code == 401
    assert "E-Mail, Passwort oder Code falsch" in unknown.text


def test_sign_in_without_the_form_token_is_refused(
    client: TestClient, make_staff: MakeStaff, code: Code
) -> None:
    staff = make_staff()
    response = sign_in(client, staff, code, csrf_token="0" * 64)
    assert response.status_code == 403
    assert "rh_staff" not in response.headers.get("set-cookie", "")


def test_too_many_attempts_get_a_clear_page(limited_client: TestClient) -> None:
    fields = {"email": "x@example.org", "password": "Falsches-Passwort-123", "code": "000000"}
    statuses = []
    for _ in range(4):
        page = limited_client.get("/anmelden")
        response = limited_client.post("/anmelden", data={**fields, "csrf_token": csrf_token(page.text)})
        statuses.append(response.status_code)
    assert statuses == [401, 401, 429, 429]
    assert "Zu viele Anmeldeversuche" in response.text


def test_pages_without_a_session_redirect_to_sign_in(client: TestClient) -> None:
    for path in ("/intern", "/konto/passwort", "/konto/zwei-faktor"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/anmelden"
    assert client.get("/api/v1/session").json() == {"detail": "Not signed in."}


def test_a_signed_in_visit_to_the_sign_in_page_goes_to_the_start_page(
    client: TestClient, make_staff: MakeStaff, code: Code
) -> None:
    sign_in(client, make_staff(), code)
    assert client.get("/anmelden", follow_redirects=False).headers["location"] == "/intern"


def test_new_authenticator_app_with_qr_code_then_recovery_codes_once(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, code: Code, clock: Clock
) -> None:
    staff = make_staff()
    sign_in(client, staff, code)
    page = client.get("/konto/zwei-faktor")
    assert page.status_code == 200
    started = client.post("/konto/zwei-faktor", data={"csrf_token": csrf_token(page.text), "action": "start"})
    assert started.status_code == 200
    html = started.text
    assert '<img class="qr" src="data:image/svg+xml' in html
    assert " style=" not in html, "no inline styles: the CSP would block them"
    uri = re.search(r"otpauth://totp/[^<\s]+", html)
    assert uri
    secret_text = re.search(r"secret=([A-Z2-7]+)", unquote(uri.group(0)))
    assert secret_text
    new_secret = totp_secret_from_base32(secret_text.group(1))
    token = re.search(r'name="token" value="([0-9a-f]+)"', html)
    assert token
    confirm = {"csrf_token": csrf_token(html), "action": "confirm", "token": token.group(1)}

    # A live session alone is not enough: without the password and a current code nothing changes.
    clock.advance(30)
    no_password = client.post(
        "/konto/zwei-faktor",
        data={
            **confirm,
            "code": totp_code(new_secret, clock()),
            "current_code": code(staff),
            "password": "x",
        },
    )
    assert no_password.status_code == 422
    assert "Es wurde nichts geändert" in no_password.text
    no_current_code = client.post(
        "/konto/zwei-faktor",
        data={**confirm, "code": totp_code(new_secret, clock()), "current_code": "", "password": PASSWORD},
    )
    assert no_current_code.status_code == 422

    clock.advance(30)
    reauth = {"password": PASSWORD}
    wrong = client.post(
        "/konto/zwei-faktor",
        data={
            **confirm,
            **reauth,
            "current_code": code(staff),
            "code": totp_code(staff.totp_secret, clock()),
        },
    )
    assert wrong.status_code == 422
    assert "Der Code passt nicht" in wrong.text

    clock.advance(30)
    done = client.post(
        "/konto/zwei-faktor",
        data={**confirm, **reauth, "current_code": code(staff), "code": totp_code(new_secret, clock())},
    )
    assert done.status_code == 200
    assert "ist eingerichtet" in done.text
    codes = re.findall(r"<code>([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})</code>", done.text)
    assert len(codes) == 10
    # Shown once: the page afterwards counts them but does not show them.
    again = client.get("/konto/zwei-faktor")
    assert codes[0] not in again.text
    assert "Noch 10 unbenutzte" in again.text

    # The old app no longer works; the new one and a recovery code do.
    client.cookies.clear()
    assert sign_in(client, staff, code).status_code == 401
    clock.advance(30)
    renewed = Staff(staff.user_id, staff.email, staff.password, new_secret)
    assert sign_in(client, renewed, code).status_code == 303
    client.cookies.clear()
    assert sign_in(client, staff, code, code=codes[0]).status_code == 303


def test_a_forged_enrolment_token_sets_nothing_up(
    client: TestClient, make_staff: MakeStaff, code: Code, clock: Clock
) -> None:
    staff = make_staff()
    sign_in(client, staff, code)
    page = client.get("/konto/zwei-faktor")
    response = client.post(
        "/konto/zwei-faktor",
        data={"csrf_token": csrf_token(page.text), "action": "confirm", "token": "00" * 60, "code": "123456"},
    )
    assert response.status_code == 422
    assert "abgelaufen" in response.text


def test_new_recovery_codes_from_the_page(client: TestClient, make_staff: MakeStaff, code: Code) -> None:
    staff = make_staff()
    sign_in(client, staff, code)
    page = client.get("/konto/zwei-faktor")
    without = client.post("/konto/zwei-faktor", data={"csrf_token": csrf_token(page.text), "action": "codes"})
    assert without.status_code == 422
    assert "Es wurde nichts geändert" in without.text
    response = client.post(
        "/konto/zwei-faktor",
        data={
            "csrf_token": csrf_token(page.text),
            "action": "codes",
            "password": PASSWORD,
            "current_code": code(staff),
        },
    )
    assert response.status_code == 200
    assert len(re.findall(r"<code>[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}</code>", response.text)) == 10
    refused = client.post("/konto/zwei-faktor", data={"csrf_token": "0" * 64, "action": "codes"})
    assert refused.status_code == 403


def test_sign_out_from_the_page(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, code: Code
) -> None:
    sign_in(client, make_staff(), code)
    home = client.get("/intern")
    assert client.post("/abmelden", data={"csrf_token": "0" * 64}).status_code == 403
    out = client.post("/abmelden", data={"csrf_token": csrf_token(home.text)})
    assert out.status_code == 200
    assert "Sie sind abgemeldet." in out.text
    with runtime.sessions() as db:
        assert db.scalars(select(WebSession)).all() == []
    assert client.get("/intern", follow_redirects=False).headers["location"] == "/anmelden"


def test_the_texts_the_staff_pages_look_up_exist_in_both_languages() -> None:
    """Keys the server (not a template) asks for: tests/test_i18n.py cannot see these calls."""
    keys = [
        "staff_login.failed",
        "staff_login.rate_limited",
        "staff_login.busy",
        "staff_login.signed_out",
        "staff_totp.expired",
        "staff_totp.confirm.failed",
        "staff_totp.enrolled",
        *(f"password.{problem.value}" for problem in PasswordProblem),
        *(
            f"error.{name}.{part}"
            for name in ("not_signed_in", "busy", "password_change_required")
            for part in ("title", "message")
        ),
    ]
    for lang in SUPPORTED:
        catalogue = load_catalogue(I18N_DIR / f"{lang}.yaml")
        assert [key for key in keys if not catalogue.get(key, "").strip()] == [], lang


def test_a_two_factor_change_that_fails_half_way_leaves_nothing_half_written(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, code: Code, clock: Clock, monkeypatch: Any
) -> None:
    """Given a confirmed new authenticator app whose recovery codes are made and audited but then fail, then
    the page's unit of work rolls back all of it: the old app still signs in, the new one does not, and no
    audit event of the change is left (the new secret, the used code and the new codes went with it)."""
    staff = make_staff()
    sign_in(client, staff, code)
    page = client.get("/konto/zwei-faktor")
    started = client.post("/konto/zwei-faktor", data={"csrf_token": csrf_token(page.text), "action": "start"})
    secret_text = re.search(r"secret=([A-Z2-7]+)", unquote(started.text))
    token = re.search(r'name="token" value="([0-9a-f]+)"', started.text)
    assert secret_text
    assert token
    new_secret = totp_secret_from_base32(secret_text.group(1))

    with runtime.sessions() as db:
        events_before = _audit_actions(db, staff.user_id)
        codes_before = runtime.accounts.recovery_codes_left(db, staff.user_id)
    made = runtime.accounts.replace_recovery_codes_after_enrolment

    def made_then_failed(session: Session, user: StaffUser) -> list[str]:
        made(session, user)
        session.flush()
        raise RuntimeError("the step after the recovery codes failed")

    monkeypatch.setattr(runtime.accounts, "replace_recovery_codes_after_enrolment", made_then_failed)
    clock.advance(30)
    fields = {
        "csrf_token": csrf_token(started.text),
        "action": "confirm",
        "token": token.group(1),
        "password": PASSWORD,
        "current_code": code(staff),
        "code": totp_code(new_secret, clock()),
    }
    with pytest.raises(RuntimeError):
        client.post("/konto/zwei-faktor", data=fields)

    with runtime.sessions() as db:
        assert _audit_actions(db, staff.user_id) == events_before, "no event of the change is left"
        assert runtime.accounts.recovery_codes_left(db, staff.user_id) == codes_before
    client.cookies.clear()
    clock.advance(30)
    renewed = Staff(staff.user_id, staff.email, staff.password, new_secret)
    assert sign_in(client, renewed, code).status_code == 401, "the new app was never stored"
    assert sign_in(client, staff, code).status_code == 303, "the old app still signs in"


def _audit_actions(db: Session, user_id: str) -> list[str]:
    return list(db.scalars(select(AuditEvent.action).where(AuditEvent.object_id == user_id)))
