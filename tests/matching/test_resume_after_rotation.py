"""Waiting identifiers are registered again without the reporter typing them, on SQLite and PostgreSQL.

A rotation of the matching key (`rueckhalt secrets rotate matching_key`, run as an operator's shell runs it)
deletes every token: a token cannot be recomputed without the case key. After it, the reporter's next sign-in
on /fall registers the sealed identifiers under the new key, and so does the button "Abgleich jetzt
ausführen" of a counsellor holding the case; a match with another case fires again. A case whose consent was
withdrawn has no sealed identifiers and is never registered again, by either way. The budget is respected,
and the sign-in never fails for the matching.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from service.app import create_app
from service.audit.models import AuditEvent
from service.config import Settings, get_settings
from service.crypto import case_reference, perpetrator_token
from service.identity.models import MembershipRole
from service.matching.models import PerpetratorToken
from service.matching.service import MATCH_TOPIC, Budget
from service.outbox.models import OutboxMessage
from service.runtime import Runtime, build_runtime
from tests.support.backup import point_cli_at
from tests.support.forms import csrf_token, report_body
from tests.support.forms import file_json as file
from tests.support.staff import Clock, MakeStaff, Staff, weak_accounts

BAYERN, SACHSEN, NRW = "beratung-by", "beratung-sn", "beratung-nw"
LAND_OF = {BAYERN: "09", SACHSEN: "14", NRW: "05"}
RESUME = "Abgleich jetzt ausführen"
PENDING = "Der Abgleich steht noch aus"


# -- as in test_repeat_perpetrators.py (test modules cannot import each other under importlib) --
def report(org: str, handle: str) -> dict[str, Any]:
    return report_body(
        land=LAND_OF[org],
        description="Drohbriefe nach der Ratssitzung.",
        channel="letter",
        perpetrator_identifiers=[{"kind": "handle", "value": handle, "platform": "instagram"}],
        consent_matching=True,
    )


def notices(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """The match notices in the outbox, by their row id."""
    with runtime.sessions() as db:
        rows = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == MATCH_TOPIC))
        return {row.id: dict(row.payload) for row in rows}


def told_since(runtime: Runtime, before: dict[str, dict[str, Any]]) -> set[str]:
    """The cases whose holders were told since ``before``."""
    return {item["case_id"] for id_, item in notices(runtime).items() if id_ not in before}


def tokens(runtime: Runtime) -> list[PerpetratorToken]:
    with runtime.sessions() as db:
        rows = list(db.scalars(select(PerpetratorToken)))
        db.expunge_all()
        return rows


def match_events(runtime: Runtime) -> list[AuditEvent]:
    with runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent).where(AuditEvent.action == "matching.match").order_by(AuditEvent.seq)
            )
        )


def shared(runtime: Runtime, case_id: str) -> Any:
    with runtime.sessions() as db:
        return runtime.matching.shared_with(db, case_id)


def reporter_session(client: TestClient, receipt: str) -> None:
    signed = client.post(
        "/fall/anmelden",
        data={"csrf_token": csrf_token(client.get("/fall").text), "receipt": receipt},
        follow_redirects=False,
    )
    assert signed.status_code == 303


@pytest.fixture
def restarted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> Iterator[Callable[[], Runtime]]:
    """Rotate the matching key with the command line, then a runtime as a restarted process builds it."""
    point_cli_at(monkeypatch, settings.data_dir, settings.resolved_database_url)
    built: list[Runtime] = []

    def rotate_and_restart() -> Runtime:
        from service.cli import app

        result = CliRunner().invoke(app, ["secrets", "rotate", "matching_key", "--yes"])
        assert result.exit_code == 0, result.output
        # The operator is told how the identifiers come back.
        assert "signs in on /fall" in " ".join(result.output.split())
        runtime = build_runtime(settings)
        built.append(runtime)
        # The staff accounts of the tests use the fast test parameters and clock, as before the restart.
        weak_accounts(runtime, clock)
        return runtime

    yield rotate_and_restart
    for runtime in built:
        runtime.dispose()
    get_settings.cache_clear()


@pytest.fixture
def clients() -> Iterator[Callable[[Runtime], TestClient]]:
    opened: list[TestClient] = []

    def open_client(runtime: Runtime) -> TestClient:
        client = TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1")
        client.__enter__()
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.__exit__(None, None, None)


def staff_client(
    open_client: Callable[[Runtime], TestClient], runtime: Runtime, staff: Staff, code: Callable[[Staff], str]
) -> TestClient:
    """A counsellor signed in to the restarted service (the app of the new matching key)."""
    client = open_client(runtime)
    body = {"email": staff.email, "password": staff.password, "totp": code(staff)}
    response = client.post("/api/v1/session", json=body)
    assert response.status_code == 200, response.text
    return client


def withdraw(client: TestClient, receipt: str) -> None:
    reporter_session(client, receipt)
    page = client.get("/fall").text
    gone = client.post(
        "/fall/merkmale", data={"csrf_token": csrf_token(page), "action": "withdraw"}, follow_redirects=False
    )
    assert gone.status_code == 303


def token_of(runtime: Runtime, handle: str) -> bytes:
    return perpetrator_token(runtime.secrets.matching_key, "handle", "instagram", handle)


def refs(runtime: Runtime, *case_ids: str) -> set[bytes]:
    return {case_reference(runtime.secrets.matching_key, case_id) for case_id in case_ids}


@pytest.fixture
def before_rotation(client: TestClient, runtime: Runtime) -> dict[str, Any]:
    """Two reporters (Sachsen, Bayern) name the same handle and match; a third (NRW) names it too and then
    withdraws the consent."""
    other_receipt, other = file(client, runtime, report(SACHSEN, "max_m"))
    mine_receipt, mine = file(client, runtime, report(BAYERN, "@Max_M"))
    withdrawn_receipt, withdrawn = file(client, runtime, report(NRW, "MAX_M"))
    withdraw(client, withdrawn_receipt)
    assert {item["case_id"] for item in notices(runtime).values()} == {other, mine, withdrawn}
    assert len(tokens(runtime)) == 2
    return {
        "other": other,
        "other_receipt": other_receipt,
        "mine": mine,
        "mine_receipt": mine_receipt,
        "withdrawn": withdrawn,
        "withdrawn_receipt": withdrawn_receipt,
        "old_token": token_of(runtime, "max_m"),
    }


def test_the_reporters_sign_in_registers_again_and_the_match_fires_under_the_new_key(
    before_rotation: dict[str, Any],
    restarted: Callable[[], Runtime],
    clients: Callable[[Runtime], TestClient],
) -> None:
    case = before_rotation
    service = restarted()
    assert tokens(service) == []
    events_before = len(match_events(service))
    told_before = notices(service)
    browser = clients(service)
    # Bayern's reporter signs in: the sealed handle is registered under the new key; no other case has a
    # token yet, so nobody is told.
    reporter_session(browser, case["mine_receipt"])
    assert PENDING not in browser.get("/fall").text
    rows = tokens(service)
    assert [(row.token, row.case_ref) for row in rows] == [
        (token_of(service, "max_m"), case_reference(service.secrets.matching_key, case["mine"]))
    ]
    assert case["old_token"] not in {row.token for row in rows}
    assert told_since(service, told_before) == set()
    # Sachsen's reporter signs in: the match with Bayern's case fires again and is audited as before. Both
    # cases' holders were told within the day and have a notice scheduled for its end (the NRW case's match
    # in the fixture), so nobody is told once more (service.matching.service.MATCH_NOTICE_INTERVAL).
    reporter_session(browser, case["other_receipt"])
    assert {row.case_ref for row in tokens(service)} == refs(service, case["mine"], case["other"])
    assert len(match_events(service)) == events_before + 1
    assert match_events(service)[-1].details == {"cases": 2, "organisations": 2}
    assert told_since(service, told_before) == set()
    assert shared(service, case["mine"]).cases == 1
    # The withdrawn case's reporter signs in: nothing sealed, nothing registered, no match.
    reporter_session(browser, case["withdrawn_receipt"])
    assert {row.case_ref for row in tokens(service)} == refs(service, case["mine"], case["other"])
    assert shared(service, case["withdrawn"]) is None
    assert len(match_events(service)) == events_before + 1
    # Signing in again costs no look-up: nothing waits.
    looked_up: list[int] = []
    original = service.matching.reserve

    def counted(count: int) -> Budget:
        looked_up.append(count)
        return original(count)

    service.matching.reserve = counted  # type: ignore[method-assign]
    reporter_session(browser, case["mine_receipt"])
    assert looked_up == []


def test_the_counsellors_button_registers_again_and_the_match_fires(
    before_rotation: dict[str, Any],
    restarted: Callable[[], Runtime],
    clients: Callable[[Runtime], TestClient],
    make_staff: MakeStaff,
    code: Callable[[Staff], str],
) -> None:
    case = before_rotation
    bayern = make_staff(memberships=[(BAYERN, MembershipRole.counsellor)])
    sachsen = make_staff(memberships=[(SACHSEN, MembershipRole.counsellor)])
    nrw = make_staff(memberships=[(NRW, MembershipRole.counsellor)])
    service = restarted()
    events_before = len(match_events(service))
    told_before = notices(service)
    by = staff_client(clients, service, bayern, code)
    url = f"/intern/faelle/{case['mine']}"
    page = by.get(url).text
    assert RESUME in page
    assert "Teilt ein Merkmal der Tatperson" not in page
    # Without the form's token: refused, nothing registered.
    refused = by.post(url + "/abgleich", data={}, follow_redirects=False)
    assert refused.status_code == 403
    assert tokens(service) == []
    # Sachsen's counsellor cannot press it on Bayern's case: 404, nothing registered.
    sn = staff_client(clients, service, sachsen, code)
    theirs = csrf_token(sn.get(f"/intern/faelle/{case['other']}").text)
    assert sn.post(url + "/abgleich", data={"csrf_token": theirs}).status_code == 404
    assert tokens(service) == []
    pressed = by.post(url + "/abgleich", data={"csrf_token": csrf_token(page)}, follow_redirects=False)
    assert pressed.status_code == 303
    assert pressed.headers["location"] == f"{url}?notice=matching_done#matching"
    after = re.sub(r"\s+", " ", by.get(url + "?notice=matching_done").text)
    assert "Kein Merkmal dieses Falls wartet mehr darauf" in after
    assert RESUME not in after
    assert {row.case_ref for row in tokens(service)} == refs(service, case["mine"])
    assert len(match_events(service)) == events_before
    # Sachsen's counsellor presses it on their own case: the match fires again.
    other_url = f"/intern/faelle/{case['other']}"
    assert (
        sn.post(other_url + "/abgleich", data={"csrf_token": theirs}, follow_redirects=False)
        .headers["location"]
        .endswith("notice=matching_done#matching")
    )
    assert len(match_events(service)) == events_before + 1
    # Audited, but nobody told once more: told within the day, a notice already scheduled (see above).
    assert told_since(service, told_before) == set()
    shown = re.sub(r"\s+", " ", by.get(url).text)
    assert (
        "Teilt ein Merkmal der Tatperson mit 1 Fall, gehalten von: Beratungsstelle Rückhalt Sachsen" in shown
    )
    # Audited without content: who pressed it on which case, and whether the budget allowed it.
    with service.sessions() as db:
        pressed_events = list(
            db.scalars(select(AuditEvent).where(AuditEvent.action == "case.matching_resume"))
        )
    assert [(event.object_id, event.details) for event in pressed_events] == [
        (case["mine"], {"done": True}),
        (case["other"], {"done": True}),
    ]
    assert all("max" not in str(event.details).lower() for event in pressed_events)
    # The withdrawn case: no button, and pressing it anyway registers nothing.
    nw = staff_client(clients, service, nrw, code)
    withdrawn_url = f"/intern/faelle/{case['withdrawn']}"
    withdrawn_page = nw.get(withdrawn_url).text
    assert RESUME not in withdrawn_page
    done = nw.post(
        withdrawn_url + "/abgleich", data={"csrf_token": csrf_token(withdrawn_page)}, follow_redirects=False
    )
    assert done.status_code == 303
    assert {row.case_ref for row in tokens(service)} == refs(service, case["mine"], case["other"])
    assert shared(service, case["withdrawn"]) is None


def test_over_the_budget_they_wait_and_the_sign_in_never_fails(
    before_rotation: dict[str, Any],
    restarted: Callable[[], Runtime],
    clients: Callable[[Runtime], TestClient],
    make_staff: MakeStaff,
    code: Callable[[Staff], str],
) -> None:
    case = before_rotation
    bayern = make_staff(memberships=[(BAYERN, MembershipRole.counsellor)])
    service = restarted()
    service.matching.reserve = lambda count: Budget(granted=False, count=count)  # type: ignore[method-assign]
    browser = clients(service)
    reporter_session(browser, case["mine_receipt"])
    assert PENDING in browser.get("/fall").text
    assert tokens(service) == []
    by = staff_client(clients, service, bayern, code)
    url = f"/intern/faelle/{case['mine']}"
    pressed = by.post(
        url + "/abgleich", data={"csrf_token": csrf_token(by.get(url).text)}, follow_redirects=False
    )
    assert pressed.headers["location"] == f"{url}?notice=matching_waiting#matching"
    assert RESUME in by.get(url).text
    assert tokens(service) == []

    # A failure of the matching itself: the reporter is signed in all the same, and nothing is stored.
    def broken(count: int) -> Budget:
        raise RuntimeError("the rate limiter is down")

    service.matching.reserve = broken  # type: ignore[method-assign]
    reporter_session(browser, case["mine_receipt"])
    assert browser.get("/fall").status_code == 200
    assert tokens(service) == []
