"""The language link is built from the path the client asked for: it must only ever lead to this site."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from service.web import same_origin_path


def _switch_link(html: str) -> str:
    match = re.search(r'href="([^"]*lang=(?:en|de))"', html)
    assert match, "the page has a language link"
    return match.group(1).replace("&amp;", "&")


@pytest.mark.parametrize(
    "path",
    ["//evil.example", "//evil.example/melden", "/%2Fevil.example", "/%5Cevil.example", "/%09/evil.example"],
)
def test_a_path_that_names_another_host_gets_a_link_to_the_start_page(client: TestClient, path: str) -> None:
    """Given ``GET //evil.example`` (which a browser reads as another host), the page's language link is
    ``/?lang=en``, never ``//evil.example?lang=en``."""
    response = client.get(f"http://127.0.0.1{path}")
    assert response.status_code == 404
    link = _switch_link(response.text)
    assert link == "/?lang=en"


def test_a_page_of_this_site_keeps_its_own_path(client: TestClient) -> None:
    assert _switch_link(client.get("/melden").text) == "/melden?lang=en"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\r\nSet-Cookie:x", "/"),
        ("https://evil.example", "/"),
        ("", "/"),
        ("/wissen/a b", "/wissen/a%20b"),
        ("/a?b#c", "/a%3Fb%23c"),
        ("/fall", "/fall"),
    ],
)
def test_same_origin_path(path: str, expected: str) -> None:
    assert same_origin_path(path) == expected
