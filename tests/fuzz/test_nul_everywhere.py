"""NUL in a URL or a form, on every route, on SQLite and PostgreSQL.

Regression: PostgreSQL refuses text with NUL in it (even to compare), and each of these was a 500 there:
the sign-in e-mail (API and page), the case filters status, urgency and assignee, a case id or an
attachment id in the path, a snapshot month, a knowledge slug, the assignee of the case page's form, and
a knowledge article's title. NUL names nothing and nobody types it: a path with one is not found (404),
a query string or form with one is refused (422), before any handler or dependency runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.support.forms import csrf_token
from tests.support.fuzz import World, unchanged

STAFF_FORMS = [
    # (who, url, fields): forms whose fields reached PostgreSQL with a NUL in them.
    ("anonymous", "/anmelden", {"email": "anna\x00@example.org", "password": "x", "code": "123456"}),
    ("counsellor", "/intern/faelle/{case_id}/zuweisen", {"action": "other", "assignee_id": "a\x00b"}),
    ("counsellor", "/intern/faelle/{case_id}/status", {"status": "in\x00_progress"}),
    (
        "coordinator",
        "/wissen/neu",
        {"slug": "neu", "title": "T\x00", "summary": "S", "body": "B", "codes": "A3a"},
    ),
    ("anonymous", "/fall/anmelden", {"receipt": "ABCD\x00"}),
]


def routes(app: Any) -> list[APIRoute]:
    """Every APIRoute of the app, also those of included routers (FastAPI keeps them in their router)."""
    found: list[APIRoute] = []
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        router = getattr(route, "original_router", None)
        if router is not None:
            pending.extend(router.routes)
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


@pytest.fixture(scope="module")
def anonymous(world: World) -> Iterator[TestClient]:
    with world.client() as client:
        yield client


def test_every_route_is_found(world: World) -> None:
    # The walk above depends on how FastAPI keeps included routers; a change there must not empty the tests.
    assert len(routes(world.app)) > 60


@pytest.mark.parametrize("where", ["path", "query"])
def test_nul_in_the_url_of_every_route_is_refused_before_anything_runs(
    where: str, world: World, anonymous: TestClient
) -> None:
    checked = 0
    for route in routes(world.app):
        names = re.findall(r"{([a-z_]+)}", route.path)
        if where == "path" and not names:
            continue
        filled = route.path
        for name in names:
            filled = filled.replace("{" + name + "}", "a%00b" if where == "path" else "1")
        url = filled if where == "path" else f"{filled}?q=%00&status=a%00b"
        for method in route.methods or ():
            with unchanged(world.runtime):
                answer = anonymous.request(method, url, follow_redirects=False)
            expected = 404 if where == "path" else 422
            assert answer.status_code == expected, f"{method} {url}: {answer.status_code}"
            checked += 1
    assert checked > (10 if where == "path" else 60)


@pytest.mark.parametrize(("who", "url", "fields"), STAFF_FORMS, ids=[form[1] for form in STAFF_FORMS])
def test_nul_in_a_form_field_is_refused(who: str, url: str, fields: dict[str, str], world: World) -> None:
    client = world.client() if who == "anonymous" else world.staff_client(who)
    with client:
        token = csrf_token(client.get("/melden").text)
        with unchanged(world.runtime):
            answer = client.post(
                url.format(case_id=world.case_id),
                data={"csrf_token": token, **fields},
                follow_redirects=False,
            )
    assert answer.status_code == 422, answer.text[:1000]
    assert "Unzulässige Zeichen" in answer.text
