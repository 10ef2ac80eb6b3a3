"""A municipality takes stock on a phone with JavaScript off: answers, keeps the answers under a code, comes
back with the code a year later, sees what changed, prints the plan with its next steps and downloads it as a
PDF; then makes a personal safety plan. 360 px, no horizontal scrolling, nothing leaves for another host."""

from __future__ import annotations

import io
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, expect
from pypdf import PdfReader

from tests.support.stack import LiveServer

pytestmark = pytest.mark.browser

CODE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}")


def fits(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def pdf_text(data: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages))


def test_take_stock_keep_it_under_a_code_and_compare(browser: Browser, live_server: LiveServer) -> None:
    context = browser.new_context(
        java_script_enabled=False,
        viewport={"width": 360, "height": 800},
        locale="de-DE",
        accept_downloads=True,
    )
    hosts: set[str] = set()

    def note(request: Request) -> None:
        hosts.add(urlsplit(request.url).netloc)

    context.on("request", note)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/wissen/selbstcheck")
        page.get_by_role("link", name="Zum Selbstcheck").click()
        expect(page.locator("h1")).to_have_text("Selbstcheck für Kommunen")
        expect(page.locator("h2")).to_have_count(3)
        fits(page)
        page.locator("input[name='a.integrationskonzept'][value=no]").check()
        page.locator("input[name='a.runder-tisch'][value=partly]").check()
        page.locator("input[name='a.zwei-faktor'][value=yes]").check()
        page.get_by_role("button", name="Auswerten").click()

        expect(page.locator("h1")).to_have_text("Auswertung des Selbstchecks")
        expect(page.locator("main")).to_contain_text("Ergebnis: 3 von")
        expect(page.locator("main")).to_contain_text("Bei 2 Fragen gibt es etwas zu tun")
        expect(page.locator("#area-integration a[href='/wissen/selbstcheck']")).to_have_count(1)
        fits(page)

        # Kept under a new code, shown once.
        page.fill("#field-note", "Bürgermeisterin, Hauptamt, Integrationsbeirat")
        page.get_by_role("button", name="Unter einem neuen Code speichern").click()
        shown = re.sub(r"\s", "", page.locator(".receipt__code").inner_text())
        assert CODE.fullmatch(shown), "the code is shown"
        fits(page)

        # A year later, in another browser: the code (typed in lower case) opens the answers again.
        later = browser.new_context(
            java_script_enabled=False,
            viewport={"width": 360, "height": 800},
            locale="de-DE",
            accept_downloads=True,
        )
        later.on("request", note)
        again = later.new_page()
        again.goto(f"{live_server.url}/wissen/selbstcheck/fragen")
        again.get_by_role("link", name=re.compile("mit Ihrem Code öffnen")).click()
        again.fill("#field-code", "0000-0000-0000-0000-0000")
        again.get_by_role("button", name="Öffnen").click()
        expect(again.locator(".error-summary")).to_contain_text(
            "Mit diesem Code lässt sich kein Selbstcheck öffnen"
        )
        again.fill("#field-code", shown.lower())
        again.get_by_role("button", name="Öffnen").click()
        expect(again.locator("input[name='a.integrationskonzept'][value=no]")).to_be_checked()
        expect(again.locator("main")).to_contain_text("Bürgermeisterin, Hauptamt, Integrationsbeirat")
        expect(again.locator("#q-integrationskonzept-previous")).to_contain_text("Nein")
        fits(again)
        again.locator("input[name='a.integrationskonzept'][value=yes]").check()
        again.get_by_role("button", name="Auswerten").click()
        expect(again.locator("#changes")).to_contain_text("Verändert seit")
        expect(again.locator("#changes")).to_contain_text("jetzt Ja, vorher Nein")

        # The three next steps with their owners: a page to print, and the PDF.
        again.fill("#field-step1", "Runden Tisch mit Vereinen einladen")
        again.fill("#field-owner1", "Integrationsbeauftragte")
        # The page to print opens in a tab of its own: the evaluation stays, to save it afterwards.
        with later.expect_page() as printed_info:
            again.get_by_role("button", name=re.compile("Seite zum Drucken")).click()
        printed = printed_info.value
        expect(printed.locator(".plan__steps")).to_contain_text("Runden Tisch mit Vereinen einladen")
        expect(printed.locator(".plan")).to_contain_text("jetzt Ja, vorher Nein")
        fits(printed)
        printed.close()
        with again.expect_download() as download_info:
            again.get_by_role("button", name="Als PDF herunterladen").click()
        path = download_info.value.path()
        text = pdf_text(path.read_bytes())
        assert "Runden Tisch mit Vereinen einladen" in text
        assert "Integrationsbeauftragte" in text
        assert "jetzt Ja, vorher Nein" in text

        # Saved as this year's take under the same code.
        again.get_by_role("button", name="Unter meinem Code speichern").click()
        expect(again.locator("main")).to_contain_text(
            "Die neue Bestandsaufnahme ist unter Ihrem Code gespeichert"
        )
        expect(again.locator(".receipt__code")).to_have_count(0)
        later.close()

        # The personal safety plan.
        page.goto(f"{live_server.url}/wissen/sicherheitsplan")
        fits(page)
        page.locator("input[name='a.adresse-oeffentlich'][value=yes]").check()
        page.fill("#field-f-vertrauensperson", "Tom, 0170 1234567")
        page.get_by_role("button", name="Seite zum Drucken").click()
        expect(page.locator("h1")).to_have_text("Mein Sicherheitsplan")
        expect(page.locator("main")).to_contain_text("Auskunftssperre")
        expect(page.locator("main")).to_contain_text("Tom, 0170 1234567")
        fits(page)
    finally:
        context.close()
    assert hosts == {urlsplit(live_server.url).netloc}, f"requests to other hosts: {hosts}"
