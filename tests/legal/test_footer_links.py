"""Impressum and privacy notice (issue 15, "No imprint or privacy notice"): every page's footer links the
operator's pages; the embedded demo links placeholders that say they are placeholders; production refuses to
start without them (tests/core/test_production_defaults.py)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from fastapi.testclient import TestClient

from service.app import create_app
from service.identity.models import MembershipRole
from service.runtime import Runtime
from tests.support.staff import MakeStaff

IMPRINT = "https://traeger.example/impressum"
PRIVACY = "https://traeger.example/datenschutz"


def footer(page: str) -> str:
    found = re.search(r'<footer class="site-footer">(.*?)</footer>', page, re.S)
    assert found, "the page has the common footer"
    return found.group(1)


def test_the_demo_footer_links_placeholders_that_say_so(
    client: TestClient, make_staff: MakeStaff, login: Any
) -> None:
    """Given the embedded default without the two settings, then the public pages, the staff sign-in, a
    signed-in staff page and an error page all link /impressum and /datenschutz, and both say in words that
    they are placeholders of the demo."""
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    pages = {
        "/": client.get("/"),
        "/melden": client.get("/melden"),
        "/fall": client.get("/fall"),
        "/anmelden": client.get("/anmelden"),
        "/intern/faelle": counsellor.get("/intern/faelle"),
        "/gibt-es-nicht": client.get("/gibt-es-nicht"),
    }
    for path, page in pages.items():
        assert page.status_code == (404 if path == "/gibt-es-nicht" else 200), path
        links = footer(page.text)
        assert '<a href="/impressum">Impressum</a>' in links, path
        assert '<a href="/datenschutz">Datenschutzerklärung</a>' in links, path
    for path in ("/impressum", "/datenschutz"):
        placeholder = client.get(path)
        assert placeholder.status_code == 200
        assert "Platzhalter der Demo – keine echte Angabe" in placeholder.text
    assert "Demo placeholder – not a real notice" in client.get("/impressum?lang=en").text


def test_configured_pages_are_linked_everywhere_and_the_placeholders_are_gone(
    runtime: Runtime, make_staff: MakeStaff, login: Any
) -> None:
    settings = runtime.settings.model_copy(update={"imprint_url": IMPRINT, "privacy_url": PRIVACY})
    app = create_app(runtime=dataclasses.replace(runtime, settings=settings))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for path in ("/", "/melden", "/anmelden", "/statistik", "/wissen"):
            links = footer(client.get(path).text)
            assert f'<a href="{IMPRINT}" rel="noopener noreferrer">Impressum</a>' in links, path
            assert f'<a href="{PRIVACY}" rel="noopener noreferrer">Datenschutzerklärung</a>' in links, path
            assert 'href="/impressum"' not in links
        english = footer(client.get("/?lang=en").text)
        assert f'<a href="{IMPRINT}" rel="noopener noreferrer">Imprint (Impressum)</a>' in english
        assert client.get("/impressum").status_code == 404
        assert client.get("/datenschutz").status_code == 404
