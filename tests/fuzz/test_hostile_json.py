"""The hostile JSON of tests/corpus/json.yaml against every operation that takes a JSON body.

Every item gets its status; a refused request stores nothing (the row count of every table and the blob
folder are the same before and after) and its answer quotes none of the strings that were sent. Runs on
SQLite and PostgreSQL (the ``world`` fixture): NUL in a string was a 500 on PostgreSQL only.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.corpus.generate import applies, build_body
from tests.corpus.loader import JsonItem, json_items
from tests.support.fuzz import World, unchanged


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    # Who sends it: "anonymous" (the reporter's calls carry the receipt in the body) or "counsellor".
    sender: str
    # The valid body, with the marker in its strings; its first string is where splices go.
    body: Callable[[World, str], dict[str, Any]]
    # What the valid body gets (test_the_valid_bodies_are_accepted).
    status: int

    @property
    def fields(self) -> tuple[str, ...]:
        """The valid body's fields, in order (collection needs them before there is a world)."""
        return FIELDS[self.path]


def _sign_in(world: World, marker: str) -> dict[str, Any]:
    staff = world.staff["admin"]
    return {"email": staff.email, "password": staff.password, "totp": world.code(staff)}


def _password(world: World, marker: str) -> dict[str, Any]:
    staff = world.staff["changer"]
    return {"current_password": staff.password, "new_password": f"Neues-Kennwort-{marker}"}


FIELDS: dict[str, tuple[str, ...]] = {
    "/api/v1/reports": (
        "description",
        "place",
        "land",
        "district_ags",
        "type_codes",
        "channel",
        "consent_police",
    ),
    "/api/v1/reports/incidents": ("description", "receipt", "type_codes", "channel"),
    "/api/v1/reports/messages": ("body", "receipt"),
    "/api/v1/reports/notify": ("notify_email", "receipt"),
    "/api/v1/reports/lookup": ("receipt",),
    "/api/v1/reports/attachments/{attachment_id}": ("receipt",),
    "/api/v1/session": ("email", "password", "totp"),
    "/api/v1/session/password": ("current_password", "new_password"),
    "/api/v1/cases/{case_id}/messages": ("body",),
    "/api/v1/cases/{case_id}/notes": ("body",),
    "/api/v1/cases/{case_id}": ("assignee_id",),
    "/api/v1/cases/{case_id}/incidents/1/classification": ("type_codes",),
    "/api/v1/cases/{case_id}/referrals": ("organisation", "reporter_consent"),
}

ENDPOINTS: dict[str, Endpoint] = {
    "report": Endpoint(
        "POST",
        "/api/v1/reports",
        "anonymous",
        # Written out: the corpus addresses the fields in this order (``fields``), not the standard report's.
        lambda w, m: {
            "description": f"Drohung {m}",
            "place": f"Rathaus {m}",
            "land": "09",
            "district_ags": "09162",
            "type_codes": ["A3a"],
            "channel": "email",
            "consent_police": False,
        },
        201,
    ),
    "incident": Endpoint(
        "POST",
        "/api/v1/reports/incidents",
        "anonymous",
        lambda w, m: {
            "description": f"Wieder vor dem Haus {m}",
            "receipt": w.receipt,
            "type_codes": ["A11"],
            "channel": "in_person.home",
        },
        201,
    ),
    "reporter_message": Endpoint(
        "POST",
        "/api/v1/reports/messages",
        "anonymous",
        lambda w, m: {"body": f"Danke {m}", "receipt": w.receipt},
        201,
    ),
    "notify": Endpoint(
        "POST",
        "/api/v1/reports/notify",
        "anonymous",
        lambda w, m: {"notify_email": f"melder-{m.lower()}@example.org", "receipt": w.receipt},
        204,
    ),
    "lookup": Endpoint(
        "POST", "/api/v1/reports/lookup", "anonymous", lambda w, m: {"receipt": w.receipt}, 200
    ),
    "reporter_download": Endpoint(
        "POST",
        "/api/v1/reports/attachments/{attachment_id}",
        "anonymous",
        lambda w, m: {"receipt": w.receipt},
        200,
    ),
    "session": Endpoint("POST", "/api/v1/session", "anonymous", _sign_in, 200),
    "password": Endpoint("POST", "/api/v1/session/password", "changer", _password, 204),
    "staff_message": Endpoint(
        "POST",
        "/api/v1/cases/{case_id}/messages",
        "counsellor",
        lambda w, m: {"body": f"Wir rufen an {m}"},
        201,
    ),
    "staff_note": Endpoint(
        "POST", "/api/v1/cases/{case_id}/notes", "counsellor", lambda w, m: {"body": f"Notiz {m}"}, 201
    ),
    "case_patch": Endpoint(
        "PATCH",
        "/api/v1/cases/{case_id}",
        "counsellor",
        lambda w, m: {"assignee_id": w.staff["counsellor"].user_id},
        204,
    ),
    "classification": Endpoint(
        "POST",
        "/api/v1/cases/{case_id}/incidents/1/classification",
        "counsellor",
        lambda w, m: {"type_codes": ["A3b"]},
        204,
    ),
    "referral": Endpoint(
        "POST",
        "/api/v1/cases/{case_id}/referrals",
        "counsellor",
        lambda w, m: {"organisation": "rechtshilfe", "reporter_consent": True},
        204,
    ),
}


@dataclass
class Senders:
    anonymous: TestClient
    counsellor: TestClient
    changer: TestClient

    def of(self, name: str) -> TestClient:
        client: TestClient = getattr(self, name)
        return client


@pytest.fixture(scope="module")
def senders(world: World) -> Iterator[Senders]:
    # A staff member of its own for the password change, so that nobody else's password moves.
    world.staff.setdefault("changer", world.make_staff())
    with (
        world.client() as anonymous,
        world.staff_client("counsellor") as counsellor,
        world.staff_client("changer") as changer,
    ):
        yield Senders(anonymous, counsellor, changer)


def marker() -> str:
    return f"QXJ{uuid.uuid4().hex[:12].upper()}"


def strings_in(body: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for value in body.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and len(item) >= 8:
                found.add(item)
    return found


def send(
    client: TestClient, endpoint: Endpoint, world: World, content: bytes, item: JsonItem | None = None
) -> httpx2.Response:
    url = endpoint.path.format(case_id=world.case_id, attachment_id=world.attachment_id)
    headers = {"content-type": "application/json"}
    payload: bytes | Iterator[bytes] = content
    if item is not None:
        headers.update(item.headers)
        if item.gzip_inflated is not None:
            payload = gzip.compress(b"\0" * item.gzip_inflated)
            headers["content-encoding"] = "gzip"
        if item.chunked:
            # A generator has no length: the client sends it chunked, without Content-Length.
            payload = iter([content[i : i + 65536] for i in range(0, len(content), 65536)])
    return client.request(endpoint.method, url, content=payload, headers=headers)


def cases() -> list[tuple[JsonItem, str]]:
    return [
        (item, name)
        for item in json_items()
        for name in item.endpoints or tuple(ENDPOINTS)
        if applies(item.build, ENDPOINTS[name].fields)
    ]


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_the_valid_bodies_are_accepted(name: str, world: World, senders: Senders) -> None:
    """The control: each valid body gets through, so a refusal below is the hostile part's doing."""
    endpoint = ENDPOINTS[name]
    body = endpoint.body(world, marker())
    assert tuple(body) == endpoint.fields
    response = send(senders.of(endpoint.sender), endpoint, world, json.dumps(body).encode())
    assert response.status_code == endpoint.status, response.text
    if name == "password":
        world.staff["changer"].password = body["new_password"]


@pytest.mark.parametrize(("item", "name"), cases(), ids=lambda value: getattr(value, "id", value))
def test_hostile_json(item: JsonItem, name: str, world: World, senders: Senders) -> None:
    endpoint = ENDPOINTS[name]
    sent_marker = marker()
    body = endpoint.body(world, sent_marker)
    content = build_body(item.build, body, sent_marker)
    assert content is not None
    client = senders.of(endpoint.sender)
    if item.stored:
        response = send(client, endpoint, world, content, item)
        assert response.status_code == item.expect, response.text
        return
    with unchanged(world.runtime):
        response = send(client, endpoint, world, content, item)
    assert response.status_code == item.expect, f"{item.why}\n{response.text}"
    assert response.headers["content-type"].startswith("application/json")
    for sent in strings_in(body) | {sent_marker}:
        assert sent not in response.text, "an error never quotes what was sent"
