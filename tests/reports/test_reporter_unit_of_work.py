"""The reporter's changes on /fall and through the API run on the request's unit of work (on both databases).

- A change is stored when its answer starts: an ASGI wrapper reads the database from a session of its own
  at ``http.response.start``, which is what a reporter (or a tool) that reads the 303 or 204 relies on.
- A failure in the middle of a change keeps nothing of it: the first step's writes (the proceedings sealed,
  the identifiers sealed and flushed) go with the failed second step (the audit event, the matching).
- A case gone while the session lived leads back to /fall, for every form alike (``on_my_case``).
- The API's reporter calls are one transaction each (``DbSession``), stored before the answer too.
- The sign-in commits before the waiting identifiers are registered, in a transaction of their own.
- A merge and the move of the reporter's session are one change.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.audit.models import AuditEvent
from service.auth import sessions
from service.cases.models import Case, Incident, MergeProposal
from service.errors import NotFound
from service.identity.models import MembershipRole
from service.matching.models import PerpetratorToken
from service.runtime import Runtime
from tests.support.forms import csrf_token
from tests.support.staff import MakeStaff

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def file(client: TestClient) -> str:
    """A report through the JSON intake: its receipt."""
    body = {
        "land": "09",
        "type_codes": ["A1"],
        "description": "Beleidigung im Gemeinderat.",
        "channel": "email",
    }
    response = client.post("/api/v1/reports", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["receipt"])


def the_case(runtime: Runtime) -> Case:
    with runtime.sessions() as db:
        case = db.scalars(select(Case)).one()
        db.expunge(case)
        return case


def audited(runtime: Runtime, action: str) -> int:
    with runtime.sessions() as db:
        return len(db.scalars(select(AuditEvent).where(AuditEvent.action == action)).all())


@pytest.fixture
def reporter(runtime: Runtime, client: TestClient) -> Iterator[TestClient]:
    """A reporter signed in on /fall, whose server errors come back as 500 (the test looks behind them)."""
    receipt = file(client)
    with TestClient(
        create_app(runtime=runtime), base_url="http://127.0.0.1", raise_server_exceptions=False
    ) as browser:
        token = csrf_token(browser.get("/fall").text)
        signed_in = browser.post("/fall/anmelden", data={"receipt": receipt, "csrf_token": token})
        assert signed_in.status_code == 200, signed_in.text
        yield browser


def record_proceedings(reporter: TestClient) -> Any:
    """The reporter records a Strafantrag for the first incident on /fall."""
    data = {"seq": "1", "complaint_on": "2026-01-05", "outcome": "running"}
    token = csrf_token(reporter.get("/fall").text)
    return reporter.post("/fall/verfahren", data={"csrf_token": token, **data}, follow_redirects=False)


def test_proceedings_whose_audit_fails_leave_the_incident_as_it_was(
    runtime: Runtime, reporter: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """record_proceedings seals the proceedings into the incident, then appends the audit event: that
    second step fails, and the first is rolled back with it."""
    before = the_case(runtime)

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the audit log is out of reach")

    monkeypatch.setattr(runtime.intake.audit, "append", broken)
    failed = record_proceedings(reporter)
    assert failed.status_code == 500
    with runtime.sessions() as db:
        assert db.scalars(select(Incident.proceedings)).one() is None, "nothing half-written"
    assert the_case(runtime).updated_at == before.updated_at
    assert audited(runtime, "case.proceedings") == 0
    monkeypatch.undo()
    saved = record_proceedings(reporter)
    assert saved.status_code == 303, saved.text
    with runtime.sessions() as db:
        assert db.scalars(select(Incident.proceedings)).one() is not None
    assert audited(runtime, "case.proceedings") == 1


def test_identifiers_whose_matching_fails_are_not_kept_sealed(
    runtime: Runtime, reporter: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """add_identifiers seals the identifiers into the case and flushes them, then registers their tokens:
    the registration fails, and the sealed identifiers go with it."""

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the matching is out of reach")

    monkeypatch.setattr(runtime.intake.matching, "register", broken)
    failed = reporter.post(
        "/fall/merkmale",
        data={
            "csrf_token": csrf_token(reporter.get("/fall").text),
            "action": "save",
            "match_handle": "@max_m",
            "match_platform": "instagram",
            "consent_matching": "1",
        },
        follow_redirects=False,
    )
    assert failed.status_code == 500
    assert the_case(runtime).perpetrator_ciphertext is None, "nothing half-written"
    with runtime.sessions() as db:
        assert db.scalars(select(PerpetratorToken)).all() == []


def test_a_case_gone_while_the_session_lived_leads_back_to_fall(
    runtime: Runtime, reporter: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Purged while the session lived: the case is not found when the form opens it, and every form of
    /fall answers alike, with the way back to /fall (the sign-in page), and nothing changed."""
    token = csrf_token(reporter.get("/fall").text)

    def gone(*_: object, **__: object) -> None:
        raise NotFound()

    monkeypatch.setattr(runtime.intake, "open_case_by_id", gone)
    for path, data in (
        ("/fall/benachrichtigung", {"notify_email": "melder@example.org"}),
        ("/fall/tatperson", {"seq": "1", "perpetrator_known_on": "2026-01-05"}),
        ("/fall/verfahren", {"seq": "1", "outcome": "running"}),
        ("/fall/merkmale", {"action": "withdraw"}),
        ("/fall/zusammenfuehren", {"action": "decline"}),
    ):
        answer = reporter.post(path, data={"csrf_token": token, **data}, follow_redirects=False)
        assert (answer.status_code, answer.headers.get("location")) == (303, "/fall"), path
    case = the_case(runtime)
    assert case.notify_ciphertext is None
    assert audited(runtime, "case.proceedings") == 0


def test_a_merge_whose_session_move_fails_merges_nothing(
    runtime: Runtime,
    client: TestClient,
    make_staff: MakeStaff,
    subject_of: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The confirmed merge and the move of the reporter's session are one change: the move fails, and the
    newer case is still there, unmerged, with its proposal."""
    older = file(client)
    newer = file(client)
    counsellor = subject_of(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    with runtime.sessions() as db:
        newer_id = runtime.intake.open_case(db, newer).case.id
        older_id = runtime.intake.open_case(db, older).case.id
        runtime.case_links.propose_merge(db, counsellor, newer_id, older_id[:8])
        db.commit()
    with TestClient(
        create_app(runtime=runtime), base_url="http://127.0.0.1", raise_server_exceptions=False
    ) as browser:
        token = csrf_token(browser.get("/fall").text)
        assert browser.post("/fall/anmelden", data={"receipt": newer, "csrf_token": token}).status_code == 200

        def broken(*_: object, **__: object) -> str:
            raise RuntimeError("the session store is out of reach")

        monkeypatch.setattr(sessions, "create", broken)
        failed = browser.post(
            "/fall/zusammenfuehren",
            data={"csrf_token": csrf_token(browser.get("/fall").text), "action": "confirm", "receipt": newer},
            follow_redirects=False,
        )
    assert failed.status_code == 500
    with runtime.sessions() as db:
        assert db.get(Case, newer_id) is not None, "nothing half-written"
        assert db.get(MergeProposal, newer_id) is not None
        assert len(db.scalars(select(Incident).where(Incident.case_id == older_id)).all()) == 1


def test_the_sign_in_is_kept_when_the_waiting_identifiers_fail(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The sign-in commits first; the identifiers that wait are registered in a transaction of their own,
    whose failure is logged by its kind and never fails the sign-in."""
    receipt = file(client)

    def broken(*_: object, **__: object) -> bool:
        raise RuntimeError("the matching is out of reach")

    monkeypatch.setattr(runtime.intake, "resume_matching", broken)
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as browser:
        token = csrf_token(browser.get("/fall").text)
        signed_in = browser.post("/fall/anmelden", data={"receipt": receipt, "csrf_token": token})
        assert signed_in.status_code == 200, signed_in.text
        assert 'action="/fall/abmelden"' in signed_in.text, "signed in: the case page"
    assert "waiting identifiers not registered at sign-in (RuntimeError)" in caplog.text


def _watching(runtime: Runtime, seen: list[bool]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The app, with a look into the database (a session of its own) when each answer starts."""
    app = create_app(runtime=runtime)

    async def watching(scope: Scope, receive: Receive, send: Send) -> None:
        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and scope.get("method") == "POST":
                seen.append(the_case(runtime).notify_ciphertext is not None)
            await send(message)

        await app(scope, receive, watch)

    return watching


def test_the_address_is_stored_before_the_answer_starts(runtime: Runtime, client: TestClient) -> None:
    receipt = file(client)
    seen: list[bool] = []
    with TestClient(_watching(runtime, seen), base_url="http://127.0.0.1") as browser:
        token = csrf_token(browser.get("/fall").text)
        assert (
            browser.post("/fall/anmelden", data={"receipt": receipt, "csrf_token": token}).status_code == 200
        )
        seen.clear()
        page = browser.get("/fall").text
        saved = browser.post(
            "/fall/benachrichtigung",
            data={"csrf_token": csrf_token(page), "notify_email": "melder@example.org"},
            follow_redirects=False,
        )
        assert saved.status_code == 303
        assert re.search(r"notice=notify_saved", saved.headers["location"])
        # Through the API as well (DbSession): 204 only once the address is gone for good.
        removed = browser.post("/api/v1/reports/notify", json={"receipt": receipt, "notify_email": None})
        assert removed.status_code == 204, removed.text
    assert seen == [True, False], "visible to another session when each answer began"
