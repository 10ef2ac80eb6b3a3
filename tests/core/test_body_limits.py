"""Body limits per route, enforced while the body streams in (issue 14.5).

The client chooses its content type, never its limit: a JSON call or a page's form is small whatever it
claims to be; only the four forms that take files parse multipart and may be large.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.ratelimit.models import RateLimitCounter
from service.runtime import Runtime
from service.web import BodyKind, StrictRoute

UPLOAD_ROUTES = {
    ("POST", "/melden"),
    ("POST", "/fall/vorfall"),
    ("POST", "/fall/nachricht"),
    ("POST", "/intern/faelle/{case_id}/nachricht"),
}
MIB = 1024 * 1024


def _routes(client: TestClient) -> list[tuple[str, APIRoute]]:
    """(path, route) of every API route at any depth (FastAPI 0.165 includes routers lazily; see
    tests/authz route_keys)."""
    found = []
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        if isinstance(context.original_route, APIRoute):
            found.append((str(context.path), context.original_route))
    assert len(found) > 40
    return found


def test_only_the_forms_that_take_files_accept_multipart(client: TestClient) -> None:
    uploads: set[tuple[str, str]] = set()
    for path, route in _routes(client):
        assert isinstance(route, StrictRoute), path
        if route.body_kind is BodyKind.upload:
            uploads |= {(method, path) for method in route.methods or ()}
        if path.startswith("/api/"):
            assert route.body_kind is BodyKind.json, path
    assert uploads == UPLOAD_ROUTES


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("path", ["/api/v1/reports", "/api/v1/reports/lookup", "/api/v1/session"])
def test_a_json_route_claiming_multipart_gets_its_own_small_limit(
    client: TestClient, runtime: Runtime, path: str
) -> None:
    """Given 2 MiB declared as multipart (under the upload limit, far over the JSON one), the JSON route
    answers 413 before reading it, and no rate-limit counter moved (nothing was parsed or counted)."""
    headers = {"content-type": "multipart/form-data; boundary=x", "content-length": str(2 * MIB)}
    response = client.post(path, content=b"x" * (2 * MIB), headers=headers)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(RateLimitCounter)) == 0


def test_a_json_body_without_a_length_is_cut_off_while_it_streams(client: TestClient) -> None:
    response = client.post(
        "/api/v1/reports",
        content=_chunks(2 * MIB),
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 413


def test_a_page_form_without_files_refuses_multipart_with_a_page(client: TestClient) -> None:
    body = b'--x\r\nContent-Disposition: form-data; name="receipt"\r\n\r\nABCD\r\n--x--\r\n'
    response = client.post(
        "/fall/anmelden", content=body, headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("text/html")
    assert "Dieses Formular nimmt keine Dateien an" in response.text


@pytest.mark.parametrize("path", ["/fall/anmelden", "/anmelden", "/fall/abmelden"])
def test_a_page_form_is_small(client: TestClient, runtime: Runtime, path: str) -> None:
    """A form with a field far larger than anyone types is refused as a page, before it is parsed."""
    limit = runtime.settings.max_form_body_bytes
    big = {"receipt": "x" * (limit + 1)}
    response = client.post(path, data=big)
    assert response.status_code == 413
    assert "Zu große Datenmenge" in response.text
    streamed = client.post(
        path, content=_chunks(limit * 2), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert streamed.status_code == 413


def test_a_form_that_takes_files_still_takes_a_large_one(client: TestClient, runtime: Runtime) -> None:
    """The upload forms keep their large limit: 2 MiB of evidence is read (and refused for its missing
    fields and token, not for its size)."""
    files = [("attachments", ("beweis.pdf", b"%PDF-1.4\n" + b"0" * (2 * MIB), "application/pdf"))]
    response = client.post("/melden", data={"description": "x"}, files=files)
    assert response.status_code in (403, 422)
