"""Counsellor case work over the JSON API: who can open what, the workflow, and the two-way channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.app import create_app
from service.audit import verify
from service.audit.models import AuditEvent
from service.cases.models import Case, CaseMessage, CaseNote, EventLink, MergeProposal
from service.identity.models import MembershipRole
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from tests.support.forms import report_body, report_form_tokens
from tests.support.staff import MakeStaff, Staff

REPORT = report_body(
    district_ags="09162",
    type_codes=["A3a"],
    description="Todesdrohung im Briefkasten, handschriftlich.",
    channel="letter",
    urgency="high",
    contact_email="buergermeisterin@example.org",
)

Login = Callable[[Staff], TestClient]  # the `login` fixture of tests/conftest.py
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@pytest.fixture
def filed(client: TestClient) -> dict[str, str]:
    response = client.post("/api/v1/reports", json=REPORT)
    assert response.status_code == 201
    receipt = response.json()["receipt"]
    return {"receipt": receipt}


@pytest.fixture
def people(make_staff: MakeStaff) -> dict[str, Staff]:
    return {
        "counsellor": make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]),
        "lead": make_staff(memberships=[("beratung-by", MembershipRole.lead)]),
        "other_org": make_staff(memberships=[("beratung-sn", MembershipRole.counsellor)]),
        "escalation_only": make_staff(memberships=[("rufbereitschaft", MembershipRole.counsellor)]),
        "admin": make_staff(admin=True),
        "coordinator": make_staff(coordinator=True),
    }


def only_case_id(client: TestClient) -> str:
    cases = client.get("/api/v1/cases").json()
    assert len(cases) == 1
    return str(cases[0]["id"])


def test_the_counsellor_of_the_routed_organisation_reads_the_case_as_filed(
    filed: dict[str, str], people: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    counsellor = login(people["counsellor"])
    case_id = only_case_id(counsellor)

    response = counsellor.get(f"/api/v1/cases/{case_id}")

    assert response.status_code == 200
    case = response.json()
    assert case["incidents"][0]["description"] == REPORT["description"]
    assert case["contact"]["email"] == REPORT["contact_email"]
    assert {holder["name"] for holder in case["holders"] if holder["active"]}
    assert case["routing"][0]["reasons"]
    with runtime.sessions() as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.object_id == case_id))]
    assert actions == ["case.decrypt"]


@pytest.mark.parametrize("who", ["other_org", "escalation_only", "admin", "coordinator"])
def test_nobody_else_opens_it_and_every_answer_is_404(
    who: str, filed: dict[str, str], people: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    case_id = only_case_id(login(people["counsellor"]))
    outsider = login(people[who])

    assert outsider.get("/api/v1/cases").json() == []
    assert outsider.get(f"/api/v1/cases/{case_id}").status_code == 404
    assert outsider.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True}).status_code == 404
    assert outsider.post(f"/api/v1/cases/{case_id}/messages", json={"body": "Hallo"}).status_code == 404
    assert outsider.post(f"/api/v1/cases/{case_id}/notes", json={"body": "Notiz"}).status_code == 404
    # The same answer as for a case that does not exist at all.
    assert outsider.get("/api/v1/cases/00000000-0000-0000-0000-000000000000").status_code == 404
    with runtime.sessions() as db:
        assert db.scalars(select(AuditEvent).where(AuditEvent.object_id == case_id)).all() == []


def test_without_a_session_the_api_answers_401(client: TestClient, filed: dict[str, str]) -> None:
    assert client.get("/api/v1/cases").status_code == 401
    assert client.get("/api/v1/cases/x").status_code == 401


def test_state_changes_need_the_csrf_header(
    filed: dict[str, str], people: dict[str, Staff], login: Login
) -> None:
    counsellor = login(people["counsellor"])
    case_id = only_case_id(counsellor)
    token = counsellor.headers.pop("X-CSRF-Token")
    assert counsellor.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True}).status_code == 403
    assert counsellor.get("/api/v1/cases").json()[0]["status"] == "new"
    counsellor.headers["X-CSRF-Token"] = token
    assert counsellor.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True}).status_code == 204


@pytest.mark.parametrize("assignee", ["", "0" * 36, "x"])
def test_an_assignee_id_that_names_nobody_is_422_and_changes_nothing(
    filed: dict[str, str], people: dict[str, Staff], login: Login, assignee: str
) -> None:
    """Found by Schemathesis: an empty assignee id passed the membership check and failed at the database
    (a 500 on PostgreSQL). Any id that is not a member of a holder is refused with the field named."""
    lead = login(people["lead"])
    case_id = only_case_id(lead)
    refused = lead.patch(f"/api/v1/cases/{case_id}", json={"assignee_id": assignee})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"][-1] == "assignee_id"
    assert lead.get("/api/v1/cases").json()[0]["assignee_id"] is None


def test_acknowledge_assign_and_close_with_an_outcome(
    filed: dict[str, str], people: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    lead = login(people["lead"])
    case_id = only_case_id(lead)

    assert lead.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True}).status_code == 204
    summary = lead.get("/api/v1/cases").json()[0]
    assert summary["status"] == "acknowledged"
    assert summary["acknowledged_at"]

    counsellor_id = people["counsellor"].user_id
    assert lead.patch(f"/api/v1/cases/{case_id}", json={"assignee_id": counsellor_id}).status_code == 204
    assert lead.get(f"/api/v1/cases?assignee={counsellor_id}").json()[0]["id"] == case_id

    outsider_id = people["other_org"].user_id
    refused = lead.patch(f"/api/v1/cases/{case_id}", json={"assignee_id": outsider_id})
    assert refused.status_code == 422
    assert lead.get("/api/v1/cases").json()[0]["assignee_id"] == counsellor_id

    no_outcome = lead.patch(f"/api/v1/cases/{case_id}", json={"status": "closed"})
    assert no_outcome.status_code == 422
    assert lead.get("/api/v1/cases").json()[0]["status"] == "acknowledged"

    closed = lead.patch(f"/api/v1/cases/{case_id}", json={"status": "closed", "outcome": "supported"})
    assert closed.status_code == 204
    assert lead.get("/api/v1/cases?status=closed").json()[0]["id"] == case_id

    with runtime.sessions() as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        result = verify(db, runtime.secrets.audit_key)
    assert {"case.acknowledge", "case.assign", "case.status"} <= set(actions)
    assert result.ok


def test_unknown_codes_in_a_change_are_refused_and_change_nothing(
    filed: dict[str, str], people: dict[str, Staff], login: Login
) -> None:
    counsellor = login(people["counsellor"])
    case_id = only_case_id(counsellor)
    response = counsellor.patch(f"/api/v1/cases/{case_id}", json={"status": "vanished", "labels": ["x"]})
    assert response.status_code == 422
    assert {e["loc"][0] for e in response.json()["detail"]} == {"status", "labels"}
    assert counsellor.get("/api/v1/cases").json()[0]["status"] == "new"


def test_messages_go_both_ways_and_notes_stay_internal(
    client: TestClient, filed: dict[str, str], people: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    counsellor = login(people["counsellor"])
    case_id = only_case_id(counsellor)

    sent = counsellor.post(f"/api/v1/cases/{case_id}/messages", json={"body": "Wir sind für Sie da."})
    assert sent.status_code == 201
    noted = counsellor.post(f"/api/v1/cases/{case_id}/notes", json={"body": "Polizei noch nicht informiert."})
    assert noted.status_code == 201

    seen = client.post("/api/v1/reports/lookup", json={"receipt": filed["receipt"]}).json()
    assert [m["body"] for m in seen["messages"]] == ["Wir sind für Sie da."]
    assert seen["messages"][0]["organisation"]
    assert "Polizei noch nicht informiert." not in str(seen)

    reply = client.post("/api/v1/reports/messages", json={"receipt": filed["receipt"], "body": "Danke!"})
    assert reply.status_code == 201
    case = counsellor.get(f"/api/v1/cases/{case_id}").json()
    assert [m["body"] for m in case["messages"]] == ["Wir sind für Sie da.", "Danke!"]
    assert [n["body"] for n in case["notes"]] == ["Polizei noch nicht informiert."]
    assert case["status"] == "in_progress"

    with runtime.sessions() as db:
        topics = {m.topic: m.payload for m in db.scalars(select(OutboxMessage))}
    assert topics["notifications.reporter_message"] == {"case_id": case_id}
    assert set(topics["notifications.reporter_reply"]) == {"case_id", "organisation_id"}


def test_a_wrong_receipt_cannot_write_a_message(client: TestClient, filed: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/reports/messages", json={"receipt": "ABCD-EFGH-JKMN-PQRS-TVWX", "body": "x"}
    )
    assert response.status_code == 404


def test_a_revoked_member_loses_the_case_at_once(
    filed: dict[str, str], people: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    counsellor = login(people["counsellor"])
    case_id = only_case_id(counsellor)
    with runtime.sessions() as db:
        from service.identity import repository as organisations

        org = organisations.by_slug(db, "beratung-by")
        assert org is not None
        assert runtime.accounts.revoke_membership(db, org.id, people["counsellor"].user_id)
        db.commit()
    assert counsellor.get(f"/api/v1/cases/{case_id}").status_code == 404


def test_attachments_download_decrypted_for_holders_only(
    client: TestClient, people: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    page = client.get("/melden").text
    evidence = b"Screenshot-Text: Wir wissen, wo du wohnst.\n" * 3000
    fields = {k: v for k, v in REPORT.items() if k != "contact_email"}
    response = client.post(
        "/melden",
        data={**fields, **report_form_tokens(page)},
        files=[("attachments", ("../Drohbrief März.txt", evidence, "text/plain"))],
    )
    assert response.status_code == 201
    counsellor = login(people["counsellor"])
    case_id = only_case_id(counsellor)
    case = counsellor.get(f"/api/v1/cases/{case_id}").json()
    attachment = case["attachments"][0]
    assert attachment["filename"] == "../Drohbrief März.txt"

    download = counsellor.get(f"/api/v1/cases/{case_id}/attachments/{attachment['id']}")

    assert download.status_code == 200
    assert download.content == evidence
    disposition = download.headers["content-disposition"]
    assert disposition.startswith('attachment; filename=".._Drohbrief_M_rz.txt"; ')
    assert "filename*=UTF-8''..%2FDrohbrief%20M%C3%A4rz.txt" in disposition
    outsider = login(people["other_org"])
    assert outsider.get(f"/api/v1/cases/{case_id}/attachments/{attachment['id']}").status_code == 404
    with runtime.sessions() as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.object_id == case_id))]
    assert "attachment.download" in actions


def test_a_change_that_fails_midway_stores_nothing(
    filed: dict[str, str],
    people: dict[str, Staff],
    login: Login,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request is the unit of work (DbSession): the acknowledgement and its audit row are written, then
    the labels' audit fails, and the case is as it was, without either audit row."""
    counsellor = login(people["counsellor"])
    case_id = only_case_id(counsellor)
    audit_case = runtime.cases.audit_case

    def failing_at_the_labels(*args: Any, **kwargs: Any) -> None:
        if "case.labels" in args:
            raise RuntimeError("injected failure after the acknowledgement was written")
        audit_case(*args, **kwargs)

    monkeypatch.setattr(runtime.cases, "audit_case", failing_at_the_labels)
    with pytest.raises(RuntimeError):
        counsellor.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True, "labels": ["legal"]})
    monkeypatch.undo()

    summary = counsellor.get("/api/v1/cases").json()[0]
    assert (summary["status"], summary["acknowledged_at"], summary["labels"]) == ("new", None, [])
    with runtime.sessions() as db:
        actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.object_id == case_id)))
    assert not actions & {"case.acknowledge", "case.labels"}


def test_a_change_is_stored_before_the_answer_starts(
    filed: dict[str, str], people: dict[str, Staff], runtime: Runtime, code: Callable[[Staff], str]
) -> None:
    """A client that reads the 204 can rely on the change: the request's session is committed before the
    response starts (seen from a session of its own at that moment, as in tests/core/test_unit_of_work.py)."""
    app = create_app(runtime=runtime)
    seen: list[str] = []

    async def watching(scope: Scope, receive: Receive, send: Send) -> None:
        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and scope.get("method") == "PATCH":
                with runtime.sessions() as db:
                    seen.append(str(db.scalar(select(Case.status))))
            await send(message)

        await app(scope, receive, watch)

    staff = people["counsellor"]
    with TestClient(watching, base_url="http://127.0.0.1") as counsellor:
        body = {"email": staff.email, "password": staff.password, "totp": code(staff)}
        signed_in = counsellor.post("/api/v1/session", json=body)
        assert signed_in.status_code == 200, signed_in.text
        counsellor.headers["X-CSRF-Token"] = signed_in.json()["csrf_token"]
        case_id = only_case_id(counsellor)
        answer = counsellor.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True})
    assert answer.status_code == 204
    assert seen == ["acknowledged"]


def test_proceedings_links_and_merge_proposals_over_the_api(
    client: TestClient, people: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    """What the case page can do after filing, a tool can do over the API: record proceedings (a bad date
    is 422 and stores nothing), declare two incidents one event and take it back, propose a merge into the
    earlier case and withdraw it. Another organisation's counsellor gets 404 for each, as for no case."""
    first = client.post("/api/v1/reports", json=REPORT)
    second = client.post("/api/v1/reports", json={**REPORT, "description": "Wieder ein Drohbrief."})
    assert first.status_code == second.status_code == 201
    counsellor, stranger = login(people["counsellor"]), login(people["other_org"])
    cases = sorted(counsellor.get("/api/v1/cases").json(), key=lambda case: case["created_at"])
    older, newer = cases[0]["id"], cases[1]["id"]

    def audited(case_id: str) -> list[str]:
        with runtime.sessions() as db:
            events = db.scalars(select(AuditEvent).where(AuditEvent.object_id == case_id))
            return [event.action for event in events if event.action != "case.decrypt"]

    proceedings = f"/api/v1/cases/{newer}/incidents/1/proceedings"
    assert counsellor.put(proceedings, json={"complaint_on": "2999-01-01"}).status_code == 422
    assert audited(newer) == []
    assert stranger.put(proceedings, json={"file_number": "1 Js 1/26"}).status_code == 404
    assert (
        counsellor.put(proceedings, json={"file_number": "1 Js 1/26", "outcome": "running"}).status_code
        == 204
    )
    incident = counsellor.get(f"/api/v1/cases/{newer}").json()["incidents"][0]
    assert incident["proceedings"]["file_number"] == "1 Js 1/26"

    event = f"/api/v1/cases/{newer}/incidents/1/event"
    assert stranger.put(event, json={"other_case": older[:8], "other_seq": 1}).status_code == 404
    assert counsellor.put(event, json={"other_case": older[:8], "other_seq": 1}).status_code == 204
    with runtime.sessions() as db:
        assert len(db.scalars(select(EventLink)).all()) == 2, "both incidents in one event"
    assert counsellor.delete(event).status_code == 204
    with runtime.sessions() as db:
        assert db.scalars(select(EventLink)).all() == []

    merge = f"/api/v1/cases/{newer}/merge-proposal"
    assert counsellor.put(merge, json={"older_case": newer}).status_code == 422, "the case itself"
    assert stranger.put(merge, json={"older_case": older}).status_code == 404
    assert counsellor.put(merge, json={"older_case": older[:8]}).status_code == 204
    with runtime.sessions() as db:
        proposal = db.get(MergeProposal, newer)
        assert proposal is not None
        assert proposal.older_case_id == older
    assert counsellor.delete(merge).status_code == 204
    with runtime.sessions() as db:
        assert db.get(MergeProposal, newer) is None
    assert audited(newer) == [
        "case.proceedings",
        "case.event_link",
        "case.event_unlink",
        "case.merge_proposed",
        "case.merge_withdrawn",
    ]


# -- a message or a note sent again through the API (Idempotency-Key) -----------------------------------

KEY = "retry-after-a-lost-answer-0001"


def stored_count(runtime: Runtime, model: type[Any], **where: Any) -> int:
    with runtime.sessions() as db:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(db.scalar(query) or 0)


@pytest.mark.parametrize(("path", "model"), [("messages", CaseMessage), ("notes", CaseNote)])
def test_a_retry_with_the_same_idempotency_key_and_text_stores_once(
    path: str,
    model: type[Any],
    filed: dict[str, str],
    people: dict[str, Staff],
    login: Login,
    runtime: Runtime,
) -> None:
    """A client whose answer was lost sends the same message again with the same key: it is stored once,
    the reporter is told once, and the retry is a 409 that says so. The same key with another text is
    stored (a client that reuses a key loses nothing); without a key every request stores."""
    counsellor = login(people["counsellor"])
    case_id = only_case_id(counsellor)
    url = f"/api/v1/cases/{case_id}/{path}"
    body = {"body": "Wir rufen Sie morgen um 9 Uhr an."}

    first = counsellor.post(url, json=body, headers={"Idempotency-Key": KEY})
    again = counsellor.post(url, json=body, headers={"Idempotency-Key": KEY})

    assert first.status_code == 201, first.text
    assert again.status_code == 409
    assert "nothing was stored a second time" in again.json()["detail"]
    assert stored_count(runtime, model) == 1
    told = stored_count(runtime, OutboxMessage, topic="notifications.reporter_message")
    assert told == (1 if path == "messages" else 0)

    other = counsellor.post(url, json={"body": "Und noch etwas."}, headers={"Idempotency-Key": KEY})
    plain = [counsellor.post(url, json=body) for _ in range(2)]
    assert other.status_code == 201
    assert [answer.status_code for answer in plain] == [201, 201]
    assert stored_count(runtime, model) == 4


@pytest.mark.parametrize(
    "key", ["short", "x" * 129, "mit leerzeichen und mehr als 22", "key/with/slashes/1234567890"]
)
def test_a_malformed_idempotency_key_is_422_naming_the_header_and_stores_nothing(
    key: str, filed: dict[str, str], people: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    counsellor = login(people["counsellor"])
    case_id = only_case_id(counsellor)
    headers = {"Idempotency-Key": key}

    answer = counsellor.post(f"/api/v1/cases/{case_id}/messages", json={"body": "Hallo"}, headers=headers)

    assert answer.status_code == 422
    assert "Idempotency-Key" in answer.text
    assert stored_count(runtime, CaseMessage) == 0


def test_a_used_key_tells_a_subject_who_may_not_see_the_case_nothing_but_404(
    filed: dict[str, str], people: dict[str, Staff], login: Login, runtime: Runtime
) -> None:
    counsellor = login(people["counsellor"])
    case_id = only_case_id(counsellor)
    body = {"body": "Hallo"}
    assert (
        counsellor.post(
            f"/api/v1/cases/{case_id}/messages", json=body, headers={"Idempotency-Key": KEY}
        ).status_code
        == 201
    )

    outsider = login(people["other_org"])
    answer = outsider.post(f"/api/v1/cases/{case_id}/messages", json=body, headers={"Idempotency-Key": KEY})

    assert answer.status_code == 404
    assert stored_count(runtime, CaseMessage) == 1


def test_the_reporters_message_through_the_api_is_stored_once_per_key_and_text(
    client: TestClient, filed: dict[str, str], runtime: Runtime
) -> None:
    body = {"receipt": filed["receipt"], "body": "Danke, ich bin morgen erreichbar."}

    first = client.post("/api/v1/reports/messages", json=body, headers={"Idempotency-Key": KEY})
    again = client.post("/api/v1/reports/messages", json=body, headers={"Idempotency-Key": KEY})
    other = client.post(
        "/api/v1/reports/messages", json={**body, "body": "Noch etwas."}, headers={"Idempotency-Key": KEY}
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 409, 201)
    assert stored_count(runtime, CaseMessage) == 2
