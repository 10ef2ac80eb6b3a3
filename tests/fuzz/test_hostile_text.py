"""The hostile text of tests/corpus/text.yaml in every free-text field of every place that takes text.

Refused text: 422, nothing stored, an API error never quotes it, a refused form gives it back only escaped.
Accepted text: stored as sent, escaped on the counsellor's case page and the reporter's /fall (the raw
markup never appears), never in a mail, and an internal note never on /fall. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import markupsafe
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.outbox.models import OutboxMessage
from tests.corpus.generate import expand
from tests.corpus.loader import TextItem, text_items
from tests.support.forms import REPORT_TEXT_FIELDS, csrf_token, submission_token
from tests.support.fuzz import World, receipt_from, unchanged
from workers.context import context_for

# Every free-text field of a report but the phone number, whose 40 characters are too few for the corpus.
REPORT_FIELDS = tuple(field for field in REPORT_TEXT_FIELDS if field != "contact_phone")
INCIDENT_FIELDS = ("description", "type_other", "place", "platform", "url", "perpetrator_details")
REPORT_CODES = {"land": "09", "district_ags": "09162", "type_codes": ["A3a"], "channel": "email"}
INCIDENT_CODES = {"type_codes": ["A11"], "channel": "in_person.home"}


@dataclass
class Clients:
    anonymous: TestClient
    # Signed in on /fall with the world's receipt.
    reporter: TestClient
    # Signed in by API (cookie and X-CSRF-Token), which opens the staff pages too.
    counsellor: TestClient


@pytest.fixture(scope="module")
def clients(world: World) -> Iterator[Clients]:
    with (
        world.client() as anonymous,
        world.client() as reporter,
        world.staff_client("counsellor") as counsellor,
    ):
        world.reporter(reporter)
        # The reporter is told of new messages: the mails that this sets off are searched for text too.
        told = {"receipt": world.receipt, "notify_email": "melderin@example.org"}
        assert anonymous.post("/api/v1/reports/notify", json=told).status_code == 204
        yield Clients(anonymous, reporter, counsellor)


@dataclass(frozen=True)
class Sent:
    response: httpx2.Response
    # Where accepted text went: the case, and the receipt that opens it on /fall.
    case_id: str
    receipt: str


@dataclass(frozen=True)
class Place:
    fields: tuple[str, ...]
    send: Callable[[World, Clients, dict[str, str]], Sent]
    # The answer to accepted text (the forms that redirect answer 303).
    ok: int
    # Whether the reporter's /fall shows what was sent here (an internal note: never).
    on_fall: bool
    api: bool


def _case_of(world: World, receipt: str) -> str:
    with world.runtime.sessions() as db:
        return world.runtime.intake.open_case(db, receipt).case.id


def _form(client: TestClient, url: str, fields: dict[str, Any], multipart: bool) -> httpx2.Response:
    # The form token belongs to the client's CSRF cookie, whatever page it comes from; /melden is a page
    # whose view is not audited (a case page's is, and would count as a change).
    page = client.get("/melden").text
    data = {"csrf_token": csrf_token(page), **fields}
    # The two forms that file (a report, an incident) take a view's single-use token.
    if url == "/melden":
        data["submission_token"] = submission_token(page)
    elif url == "/fall/vorfall":
        data["submission_token"] = submission_token(client.get("/fall").text)
    # An empty file part makes the request multipart/form-data, as a browser's form with a file field does.
    files = [("attachments", ("", b"", "application/octet-stream"))] if multipart else None
    return client.post(url, data=data, files=files, follow_redirects=False)


def _api_report(world: World, clients: Clients, text: dict[str, str]) -> Sent:
    response = clients.anonymous.post("/api/v1/reports", json={**REPORT_CODES, **text})
    receipt = response.json().get("receipt", "") if response.status_code == 201 else ""
    return Sent(response, _case_of(world, receipt) if receipt else "", receipt)


def _form_report(world: World, clients: Clients, text: dict[str, str]) -> Sent:
    response = _form(clients.anonymous, "/melden", {**REPORT_CODES, **text}, multipart=True)
    receipt = receipt_from(response.text) if response.status_code == 201 else ""
    return Sent(response, _case_of(world, receipt) if receipt else "", receipt)


def _on_world_case(send: Callable[[World, Clients, dict[str, str]], httpx2.Response]) -> Callable[..., Sent]:
    def sent(world: World, clients: Clients, text: dict[str, str]) -> Sent:
        return Sent(send(world, clients, text), world.case_id, world.receipt)

    return sent


PLACES: dict[str, Place] = {
    "api-report": Place(REPORT_FIELDS, _api_report, 201, on_fall=True, api=True),
    "api-incident": Place(
        INCIDENT_FIELDS,
        _on_world_case(
            lambda w, c, text: c.anonymous.post(
                "/api/v1/reports/incidents", json={"receipt": w.receipt, **INCIDENT_CODES, **text}
            )
        ),
        201,
        on_fall=True,
        api=True,
    ),
    "api-reporter-message": Place(
        ("body",),
        _on_world_case(
            lambda w, c, text: c.anonymous.post(
                "/api/v1/reports/messages", json={"receipt": w.receipt, **text}
            )
        ),
        201,
        on_fall=True,
        api=True,
    ),
    "api-staff-message": Place(
        ("body",),
        _on_world_case(
            lambda w, c, text: c.counsellor.post(f"/api/v1/cases/{w.case_id}/messages", json=text)
        ),
        201,
        on_fall=True,
        api=True,
    ),
    "api-staff-note": Place(
        ("body",),
        _on_world_case(lambda w, c, text: c.counsellor.post(f"/api/v1/cases/{w.case_id}/notes", json=text)),
        201,
        on_fall=False,
        api=True,
    ),
    "form-report": Place(REPORT_FIELDS, _form_report, 201, on_fall=True, api=False),
    "form-incident": Place(
        INCIDENT_FIELDS,
        _on_world_case(
            lambda w, c, text: _form(c.reporter, "/fall/vorfall", {**INCIDENT_CODES, **text}, True)
        ),
        200,
        on_fall=True,
        api=False,
    ),
    "form-reporter-message": Place(
        ("message",),
        _on_world_case(lambda w, c, text: _form(c.reporter, "/fall/nachricht", text, True)),
        303,
        on_fall=True,
        api=False,
    ),
    "form-staff-message": Place(
        ("message",),
        _on_world_case(
            lambda w, c, text: _form(c.counsellor, f"/intern/faelle/{w.case_id}/nachricht", text, True)
        ),
        303,
        on_fall=True,
        api=False,
    ),
    "form-staff-note": Place(
        ("note",),
        _on_world_case(
            lambda w, c, text: _form(c.counsellor, f"/intern/faelle/{w.case_id}/notiz", text, False)
        ),
        303,
        on_fall=False,
        api=False,
    ),
}


def escaped(text: str) -> str:
    return str(markupsafe.escape(text))


def lines(text: str) -> str:
    # Forms and JSON may carry CRLF; comparisons are about characters, not line ends.
    return text.replace("\r\n", "\n")


def assert_escaped(page: str, text: str, *, shown: bool, item: TextItem | None = None) -> None:
    page, text = lines(page), lines(text)
    name = item.id if item else "the text"
    if escaped(text) != text:
        assert text not in page, f"{name}: the raw markup appears on the page"
    if shown:
        assert escaped(text) in page, f"{name}: the text is shown, escaped"
    assert 'href="javascript:' not in page


def mails(world: World) -> str:
    """Delivers every pending notification into the Maildir (the embedded default) and reads them all."""
    notifications = context_for(world.runtime).notifications
    with world.runtime.sessions() as db:
        pending = db.scalars(select(OutboxMessage.id).where(OutboxMessage.completed_at.is_(None))).all()
    for outbox_id in pending:
        notifications.deliver(world.runtime.sessions, outbox_id)
    folder = world.runtime.settings.maildir
    return "\n".join(path.read_text(errors="replace") for path in sorted(folder.rglob("*")) if path.is_file())


REFUSED = [item for item in text_items() if not item.accepted]
ACCEPTED = [item for item in text_items() if item.accepted]


def new_marker() -> str:
    return f"QXT{uuid.uuid4().hex[:12].upper()}"


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("item", REFUSED, ids=lambda item: item.id)
def test_refused_text_stores_nothing_and_is_not_echoed(
    item: TextItem, place: str, world: World, clients: Clients
) -> None:
    where = PLACES[place]
    marker = new_marker()
    text = expand(item.text, marker)
    with unchanged(world.runtime):
        for field in where.fields:
            # One field hostile at a time, the others ordinary: each field refuses on its own.
            fields = {name: f"Gewöhnlicher Text {name}" for name in where.fields}
            answer = where.send(world, clients, {**fields, field: text}).response
            assert answer.status_code == 422, f"{item.why} ({field})\n{answer.text[:2000]}"
            if where.api:
                assert marker not in answer.text, "an API error never quotes what was sent"
            else:
                # The form comes back with what was typed, in its field and escaped: at most once.
                assert lines(answer.text).count(marker) <= 1
                assert_escaped(answer.text, text, shown=False)


@pytest.mark.parametrize("place", sorted(PLACES))
def test_accepted_text_is_stored_as_sent_and_shown_escaped(
    place: str, world: World, clients: Clients
) -> None:
    """Every accepted item of the corpus goes to this place (all of its text fields), then the pages that
    show it are read once: the counsellor's case page, the case as the API gives it, and /fall."""
    where = PLACES[place]
    sent: list[tuple[TextItem, str, str, Sent]] = []
    for item in ACCEPTED:
        marker = new_marker()
        text = expand(item.text, marker)
        answer = where.send(world, clients, dict.fromkeys(where.fields, text))
        assert answer.response.status_code == where.ok, (
            f"{item.id}: {item.why}\n{answer.response.text[:2000]}"
        )
        sent.append((item, marker, text.strip(), answer))

    case_pages: dict[str, str] = {}
    filed: dict[str, list[str]] = {}
    fall_pages: dict[str, str] = {}
    for _item, _marker, _text, answer in sent:
        if answer.case_id not in case_pages:
            page = clients.counsellor.get(f"/intern/faelle/{answer.case_id}")
            assert page.status_code == 200
            case_pages[answer.case_id] = page.text
            case = clients.counsellor.get(f"/api/v1/cases/{answer.case_id}").json()
            filed[answer.case_id] = [incident["description"] for incident in case["incidents"]] + [
                entry["body"] for entry in case["messages"] + case["notes"]
            ]
        if answer.receipt not in fall_pages:
            fall_pages[answer.receipt] = reporter_page(world, clients, answer.receipt)
    everything_mailed = mails(world)

    for item, marker, text, answer in sent:
        assert_escaped(case_pages[answer.case_id], text, shown=True, item=item)
        if {"description", "body", "message", "note"} & set(where.fields):
            assert text in filed[answer.case_id], f"{item.id}: the API gives the text back exactly as filed"
        assert_escaped(fall_pages[answer.receipt], text, shown=where.on_fall, item=item)
        if not where.on_fall:
            assert marker not in fall_pages[answer.receipt], "an internal note never reaches the reporter"
        assert marker not in everything_mailed, f"{item.id}: mails carry no content"


def reporter_page(world: World, clients: Clients, receipt: str) -> str:
    if receipt == world.receipt:
        page = clients.reporter.get("/fall")
    else:
        with world.client() as reporter:
            token = csrf_token(reporter.get("/fall").text)
            reporter.post("/fall/anmelden", data={"csrf_token": token, "receipt": receipt})
            page = reporter.get("/fall")
    assert page.status_code == 200
    return page.text
