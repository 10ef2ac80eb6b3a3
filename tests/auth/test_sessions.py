"""Staff sessions: split keys, timeouts, sign-out, and the API's CSRF header (security.md, "Sessions")."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.auth import sessions
from service.auth.account_keys import user_key_context
from service.auth.deps import STAFF_COOKIE
from service.auth.models import WebSession
from service.auth.sessions import REPORTER_SESSION, STAFF_SESSION
from service.config import Settings
from service.crypto import Context, DecryptionError, open_sealed, open_with_password_and_pepper
from service.db import utcnow
from service.identity.models import StaffUser
from service.runtime import Runtime, build_runtime
from tests.support.staff import PASSWORD, MakeStaff

Login = Callable[..., httpx2.Response]


def the_session(runtime: Runtime) -> WebSession:
    with runtime.sessions() as db:
        return db.scalars(select(WebSession).where(WebSession.kind == "staff")).one()


def move(runtime: Runtime, **changes: object) -> None:
    with runtime.sessions() as db:
        row = db.scalars(select(WebSession)).one()
        for name, value in changes.items():
            setattr(row, name, value)
        db.commit()


def test_the_session_store_alone_opens_nothing(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, api_login: Login
) -> None:
    """Given the stored row (a dump of the database or of Redis) but not the cookie, then the private key
    stays closed: the row holds only ciphertext under a key that lives in the cookie."""
    staff = make_staff()
    assert api_login(staff).status_code == 200
    row = the_session(runtime)
    with runtime.sessions() as db:
        user = db.get(StaffUser, staff.user_id)
        assert user is not None
        assert user.sealed_private_key is not None
        private = open_with_password_and_pepper(
            PASSWORD, user.sealed_private_key, user_key_context(user.id), runtime.secrets.key_peppers
        )
    assert private not in row.sealed_secret
    context = Context("session", field="staff", record_id=row.id_hash)
    for guess in (bytes(32), runtime.secrets.session_key, bytes.fromhex(row.id_hash)):
        try:
            open_sealed(guess, row.sealed_secret, context)
        except DecryptionError:
            continue
        raise AssertionError("the stored session opened without the cookie key")
    # Knowing the row, an attacker still lacks the session id (only its hash is stored) and the key: a cookie
    # made up from what the row shows does not resume the session.
    forged = f"{row.id_hash[:43]}.{row.id_hash[:43]}"
    client.cookies.clear()
    client.cookies.set(STAFF_COOKIE, forged)
    assert client.get("/api/v1/session").status_code == 401


def test_the_cookie_alone_opens_nothing(
    client: TestClient,
    make_staff: MakeStaff,
    api_login: Login,
    settings: Settings,
    sqlite_template: Path,
    tmp_path: Path,
) -> None:
    """Given a valid cookie but a fresh database (same server secrets), then the session does not exist."""
    staff = make_staff()
    assert api_login(staff).status_code == 200
    cookie = client.cookies.get(STAFF_COOKIE)
    assert cookie
    fresh_db = tmp_path / "fresh.db"
    shutil.copyfile(sqlite_template, fresh_db)
    other = build_runtime(settings.model_copy(update={"database_url": f"sqlite:///{fresh_db}"}))
    try:
        with TestClient(create_app(runtime=other), base_url="http://127.0.0.1") as stranger:
            stranger.cookies.set(STAFF_COOKIE, cookie)
            assert stranger.get("/api/v1/session").status_code == 401
            assert stranger.get("/intern", follow_redirects=False).headers["location"] == "/anmelden"
    finally:
        other.dispose()


def test_an_idle_session_ends_after_30_minutes(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, api_login: Login
) -> None:
    assert api_login(make_staff()).status_code == 200
    move(runtime, last_seen_at=utcnow() - timedelta(minutes=29))
    assert client.get("/api/v1/session").status_code == 200, "activity within 30 minutes keeps it"
    move(runtime, last_seen_at=utcnow() - timedelta(minutes=31))
    assert client.get("/api/v1/session").status_code == 401
    with runtime.sessions() as db:
        assert db.scalars(select(WebSession)).all() == [], "the ended session is deleted"


def test_a_session_ends_after_12_hours_whatever_the_activity(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, api_login: Login
) -> None:
    assert api_login(make_staff()).status_code == 200
    row = the_session(runtime)
    assert row.expires_at - row.created_at == timedelta(hours=12)
    move(runtime, expires_at=utcnow() - timedelta(seconds=1))
    assert client.get("/api/v1/session").status_code == 401


def test_sign_out_destroys_the_server_half(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, api_login: Login
) -> None:
    signed_in = api_login(make_staff())
    cookie = client.cookies.get(STAFF_COOKIE)
    token = signed_in.json()["csrf_token"]
    response = client.delete("/api/v1/session", headers={"X-CSRF-Token": token})
    assert response.status_code == 204
    assert 'rh_staff=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    with runtime.sessions() as db:
        assert db.scalars(select(WebSession)).all() == []
    # The old cookie, sent again (say, copied before sign-out), opens nothing.
    client.cookies.clear()
    client.cookies.set(STAFF_COOKIE, cookie or "")
    assert client.get("/api/v1/session").status_code == 401


def test_state_changing_api_calls_need_the_csrf_header(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, api_login: Login
) -> None:
    staff = make_staff()
    token = api_login(staff).json()["csrf_token"]
    change = {"current_password": PASSWORD, "new_password": "ein ganz neuer Satz als Passwort"}
    for headers in ({}, {"X-CSRF-Token": "0" * 64}, {"X-CSRF-Token": token[:-1]}):
        assert client.delete("/api/v1/session", headers=headers).status_code == 403
        assert client.post("/api/v1/session/password", json=change, headers=headers).status_code == 403
    assert client.get("/api/v1/session").status_code == 200, "the refused calls changed nothing"
    assert client.delete("/api/v1/session", headers={"X-CSRF-Token": token}).status_code == 204


def test_a_token_of_another_session_is_refused(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, api_login: Login
) -> None:
    first = api_login(make_staff()).json()["csrf_token"]
    client.cookies.clear()
    second = api_login(make_staff()).json()["csrf_token"]
    assert first != second
    assert client.delete("/api/v1/session", headers={"X-CSRF-Token": first}).status_code == 403
    assert client.delete("/api/v1/session", headers={"X-CSRF-Token": second}).status_code == 204


def test_password_change_through_the_api(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, api_login: Login
) -> None:
    """Given an initial password, the session is good for the change only; after it, for everything, and
    other sessions of the account have ended."""
    staff = make_staff(must_change_password=True)
    with runtime.sessions() as db:
        other_cookie = sessions.create(db, STAFF_SESSION, staff.user_id, b"x" * 96)
        db.commit()
    signed_in = api_login(staff)
    assert signed_in.json()["must_change_password"] is True
    headers = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
    assert client.get("/intern", follow_redirects=False).headers["location"] == "/konto/passwort"

    weak = client.post(
        "/api/v1/session/password",
        json={"current_password": PASSWORD, "new_password": "Password123456"},
        headers=headers,
    )
    assert weak.status_code == 422
    assert weak.json()["detail"][0]["type"] == "password.common"
    assert "Password123456" not in weak.text
    wrong = client.post(
        "/api/v1/session/password",
        json={"current_password": "nicht das Passwort", "new_password": "ein ganz neuer Satz"},
        headers=headers,
    )
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["body", "current_password"]

    changed = client.post(
        "/api/v1/session/password",
        json={"current_password": PASSWORD, "new_password": "ein ganz neuer Satz"},
        headers=headers,
    )
    assert changed.status_code == 204
    me = client.get("/api/v1/session").json()
    assert me["must_change_password"] is False
    assert client.get("/intern").status_code == 200
    with runtime.sessions() as db:
        assert sessions.open_session(db, STAFF_SESSION, other_cookie) is None, "the other session ended"


def test_the_retention_purge_deletes_sessions_no_cookie_can_open_any_more(runtime: Runtime) -> None:
    """Given sessions ended by their absolute limit or by their kind's idle window, and live ones, when the
    daily retention purge runs, then exactly the ended ones are deleted, and a live one still opens."""
    now = utcnow()
    rows = {
        "staff, live": (STAFF_SESSION, {}),
        "staff, idle 25 minutes (limit 30)": (STAFF_SESSION, {"last_seen_at": now - timedelta(minutes=25)}),
        "staff, past 12 hours": (STAFF_SESSION, {"expires_at": now - timedelta(seconds=1)}),
        "staff, idle 31 minutes": (STAFF_SESSION, {"last_seen_at": now - timedelta(minutes=31)}),
        "reporter, live": (REPORTER_SESSION, {}),
        "reporter, idle 21 minutes (limit 20)": (
            REPORTER_SESSION,
            {"last_seen_at": now - timedelta(minutes=21)},
        ),
    }
    cookies: dict[str, str] = {}
    with runtime.sessions() as db:
        for name, (policy, changes) in rows.items():
            cookies[name] = sessions.create(db, policy, str(uuid.uuid4()), b"secret of " + name.encode())
            db.flush()
            row = db.get(WebSession, sessions.id_hash_of(cookies[name]))
            assert row is not None
            for column, value in changes.items():
                setattr(row, column, value)
        db.commit()
    dead = {"staff, past 12 hours", "staff, idle 31 minutes", "reporter, idle 21 minutes (limit 20)"}

    with runtime.sessions() as db:
        dry = runtime.retention.purge(db, utcnow(), dry_run=True)
        real = runtime.retention.purge(db, utcnow(), dry_run=False)
        db.commit()  # the task's transaction

    assert (dry.expired_sessions, real.expired_sessions) == (3, 3)
    with runtime.sessions() as db:
        kept = set(db.scalars(select(WebSession.id_hash)))
        assert kept == {sessions.id_hash_of(cookies[name]) for name in rows.keys() - dead}
        opened = sessions.open_session(db, STAFF_SESSION, cookies["staff, live"])
        assert opened is not None
        assert opened.secret == b"secret of staff, live"
    with runtime.sessions() as db:
        assert runtime.retention.purge(db, utcnow(), dry_run=False).expired_sessions == 0
