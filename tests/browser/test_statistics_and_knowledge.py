"""A coordinator opens the dashboard; a visitor opens /statistik and /wissen. JavaScript off, 360 px and
1280 px, axe-core at WCAG 2.1 AA, and no request leaves for another host."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Request, expect

from tests.support.browser import context_for, no_axe_violations, no_horizontal_scroll, phone_for
from tests.support.stack import LiveServer

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [360, 1280])
def test_visitor_and_coordinator_pages(browser: Browser, live_server: LiveServer, width: int) -> None:
    context = context_for(browser, width)
    hosts: set[str] = set()

    def note(request: Request) -> None:
        hosts.add(urlsplit(request.url).netloc)

    context.on("request", note)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/statistik")
        expect(page.locator("h1")).to_have_text("Statistik")
        # The demo publishes last year's release: a chart with twelve bars and the tables.
        expect(page.locator("svg rect")).to_have_count(12)
        expect(page.locator("main")).to_contain_text("Wie diese Zahlen entstehen")
        no_horizontal_scroll(page, width)
        no_axe_violations(browser, context, page.url, width)

        page.goto(f"{live_server.url}/wissen")
        expect(page.locator("h1")).to_have_text("Wissen: Handlungsempfehlungen")
        page.fill("#field-q", "Strafantrag")
        page.get_by_role("button", name="Suchen").click()
        page.get_by_role("link", name="Strafanzeige").first.click()
        expect(page.locator("main h2").first).to_be_visible()
        no_horizontal_scroll(page, width)
        no_axe_violations(browser, context, page.url, width)
        page.goto(f"{live_server.url}/wissen/selbstcheck/fragen")
        no_axe_violations(browser, context, page.url, width)

        account = next(
            a for a in live_server.demo_file("demo-credentials.json") if a["role"] == "coordinator"
        )
        page.goto(f"{live_server.url}/anmelden")
        page.fill("#field-email", account["email"])
        page.fill("#field-password", account["password"])
        page.fill("#field-code", phone_for(account).code())
        page.locator("main button[type=submit]").click()
        expect(page).to_have_url(f"{live_server.url}/intern")
        page.get_by_role("link", name="Auswertung für die Koordination").click()
        expect(page.locator("h1")).to_have_text("Auswertung für die Koordination")
        expect(page.locator("main")).to_contain_text("Reaktionszeiten je Organisation")
        no_horizontal_scroll(page, width)
        no_axe_violations(browser, context, page.url, width)
    finally:
        context.close()
    assert hosts == {urlsplit(live_server.url).netloc}, f"requests to other hosts: {hosts}"
