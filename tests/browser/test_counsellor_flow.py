"""A counsellor answers the demo case from Bayern; the reporter reads it and replies. JavaScript off.

Runs on a 360 px phone and on a 1280 px desk screen, against the live server's demo data: the staff
credentials and receipts that `rueckhalt demo` wrote into its data folder. The demo case exists once, so
the first pass acknowledges it and the second finds it acknowledged; both write and answer a message.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import (
    Authenticator,
    context_for,
    no_axe_violations,
    no_horizontal_scroll,
    phone_for,
)
from tests.support.stack import LiveServer

pytestmark = pytest.mark.browser

BAYERN = "Beratungsstelle Rückhalt Bayern (Demo)"
DEMO_DESCRIPTION = "Demo: Drohschreiben mit Todesdrohung nach der Ratssitzung."


def demo_counsellor(live_server: LiveServer) -> dict[str, Any]:
    accounts = live_server.demo_file("demo-credentials.json")
    return next(a for a in accounts if a["role"] == "counsellor" and BAYERN in a["organisations"])


def demo_receipt(live_server: LiveServer) -> str:
    receipts = live_server.demo_file("demo-receipts.json")
    return str(next(r["receipt"] for r in receipts if BAYERN in r["routed_to"]))


def counsellor_opens_the_demo_case(
    browser: Browser,
    page: Page,
    live_server: LiveServer,
    width: int,
    account: dict[str, Any],
    phone: Authenticator,
) -> None:
    page.goto(f"{live_server.url}/anmelden")
    page.fill("#field-email", account["email"])
    page.fill("#field-password", account["password"])
    page.fill("#field-code", phone.code())
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(f"{live_server.url}/intern")

    page.get_by_role("link", name="Zum Posteingang").click()
    expect(page.locator("h1")).to_have_text("Fälle")
    no_horizontal_scroll(page, width)
    no_axe_violations(browser, page.context, page.url, width)

    # The reporter tests file Bayern cases of their own; the demo case is the urgent one.
    page.select_option("#filter-land", "09")
    page.select_option("#filter-urgency", "high")
    page.get_by_role("button", name="Filter anwenden").click()
    rows = page.locator(".cases__link")
    expect(rows).to_have_count(1)
    rows.first.click()
    expect(page.locator("main")).to_contain_text(DEMO_DESCRIPTION)
    no_horizontal_scroll(page, width)


def test_counsellor_and_reporter_talk_through_the_demo_case(
    browser: Browser, live_server: LiveServer
) -> None:
    account = demo_counsellor(live_server)
    phone = phone_for(account)
    receipt = demo_receipt(live_server)

    for width in (360, 1280):
        staff = context_for(browser, width)
        reporter = context_for(browser, width)
        try:
            page = staff.new_page()
            counsellor_opens_the_demo_case(browser, page, live_server, width, account, phone)

            acknowledge = page.get_by_role("button", name="Eingang bestätigen")
            if width == 360:
                acknowledge.click()
                expect(page.locator("[role=status]")).to_contain_text("Der Eingang ist bestätigt.")
            expect(acknowledge).to_have_count(0)
            expect(page.locator(".case-head")).to_contain_text("bestätigt am")
            no_axe_violations(browser, staff, page.url, width)

            answer = (
                f"Guten Tag, wir haben Ihren Bericht gelesen ({width} px).\nWann können wir telefonieren?"
            )
            page.fill("#field-message", answer)
            page.get_by_role("button", name="Nachricht senden").click()
            conversation = page.locator("#conversation")
            expect(conversation.locator("[role=status]")).to_contain_text("verschlüsselt gesendet")
            expect(conversation).to_contain_text(f"({width} px).")

            mayor = reporter.new_page()
            mayor.goto(f"{live_server.url}/fall")
            mayor.fill("#field-receipt", receipt)
            mayor.locator("form[action='/fall/anmelden'] button[type=submit]").click()
            messages = mayor.locator("#messages")
            expect(messages).to_contain_text(f"wir haben Ihren Bericht gelesen ({width} px).")
            expect(messages).to_contain_text(BAYERN)
            no_horizontal_scroll(mayor, width)

            reply = f"Danke! Morgen ab 9 Uhr ({width} px)."
            mayor.fill("#field-message", reply)
            mayor.get_by_role("button", name="Nachricht verschlüsselt senden").click()
            expect(mayor.locator("#messages [role=status]")).to_contain_text("verschlüsselt gesendet")
            expect(mayor.locator("#messages")).to_contain_text(reply)

            page.reload()
            expect(page.locator("#conversation")).to_contain_text(reply)
        finally:
            staff.close()
            reporter.close()
