"""A threatened mayor on a phone at night, with JavaScript off: file, keep the code, come back, add more."""

from __future__ import annotations

import re
import sqlite3

import pytest
from playwright.sync_api import Browser, Route, expect

from tests.support.browser import no_horizontal_scroll
from tests.support.stack import LiveServer

pytestmark = pytest.mark.browser

RECEIPT = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}")


def test_file_a_report_in_german_sign_back_in_and_add_an_incident(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 360, "height": 800}, locale="de-DE"
    )
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/melden")
        expect(page.locator("html")).to_have_attribute("lang", "de")
        # No horizontal scrolling on a 360 px phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360

        page.locator("#field-type_codes-A3a, input[name=type_codes][value=A3a]").first.check()
        page.fill("#field-description", "Im Briefkasten lag ein Drohbrief gegen meine Familie.")
        page.select_option("#field-channel", "letter")
        page.select_option("#field-land", "09")
        page.fill("#field-place", "Rathaus, Hintereingang")
        page.click("button[type=submit]")

        # The code is shown in groups (flex items); a person reads it without the gaps.
        shown = re.sub(r"\s", "", page.locator(".receipt__code").inner_text())
        match = RECEIPT.fullmatch(shown)
        assert match, "the receipt page shows the code"
        receipt = match.group(0)

        page.goto(f"{live_server.url}/fall")
        page.fill("#field-receipt", receipt.lower().replace("-", " "))
        page.click("button[type=submit]")
        expect(page.locator("main")).to_contain_text("Im Briefkasten lag ein Drohbrief gegen meine Familie.")

        page.locator("input[name=type_codes][value=A11]").first.check()
        page.fill("#field-description", "Heute Abend standen zwei Männer vor dem Haus.")
        page.select_option("#field-channel", "in_person.home")
        page.locator("form[action='/fall/vorfall'] button[type=submit]").click()
        expect(page.locator("main")).to_contain_text("Heute Abend standen zwei Männer vor dem Haus.")
        expect(page.locator("main")).to_contain_text("Im Briefkasten lag ein Drohbrief gegen meine Familie.")
    finally:
        context.close()


def test_a_missing_field_comes_back_with_a_summary_and_the_text_kept(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/melden")
        page.fill("#field-description", "Text, der nicht verloren gehen darf.")
        page.select_option("#field-channel", "letter")
        page.select_option("#field-land", "09")
        page.click("button[type=submit]")
        summary = page.locator("[role=alert]")
        expect(summary).to_be_visible()
        expect(summary.locator("a[href='#field-type_codes']")).to_have_count(1)
        expect(page.locator("#field-description")).to_have_value("Text, der nicht verloren gehen darf.")
    finally:
        context.close()


def _cases(live_server: LiveServer) -> int:
    with sqlite3.connect(f"file:{live_server.data_dir / 'rueckhalt.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM case_file").fetchone()[0])


def _kept_answers(live_server: LiveServer) -> int:
    with sqlite3.connect(f"file:{live_server.data_dir / 'rueckhalt.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM submission_token WHERE answer IS NOT NULL").fetchone()[0])


def test_a_second_tap_on_send_shows_the_receipt_that_opens_the_one_case(
    browser: Browser, live_server: LiveServer
) -> None:
    """The first submission reaches the server, which files the report, but the phone shows the answer to
    the second tap on "send" (the same form, the same token): that answer is the same receipt, said to be
    shown again, and the code opens the one case that was filed. "Code notiert" then erases the copy kept
    for that and leads to the sign-in."""
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 360, "height": 800}, locale="de-DE"
    )
    page = context.new_page()
    first: list[str] = []

    def tap_twice(route: Route) -> None:
        if route.request.method == "POST" and not first:
            first.append(route.fetch().text())  # the first tap: filed, its answer never shown
        route.continue_()  # the second tap, whose answer the phone shows

    try:
        before = _cases(live_server)
        page.goto(f"{live_server.url}/melden")
        page.locator("input[name=type_codes][value=A3a]").first.check()
        page.fill("#field-description", "Zweimal auf Senden getippt: Drohbrief am Gartentor.")
        page.select_option("#field-channel", "letter")
        page.select_option("#field-land", "09")
        page.route(f"{live_server.url}/melden", tap_twice)
        page.click("button[type=submit]")

        expect(page.locator("[role=status]")).to_contain_text("mehr als einmal gesendet")
        shown = re.sub(r"\s", "", page.locator(".receipt__code").inner_text())
        assert RECEIPT.fullmatch(shown)
        assert shown in re.sub(r"<[^>]+>|\s", "", first[0]), "the receipt the first tap filed"
        assert _cases(live_server) == before + 1
        no_horizontal_scroll(page, 360)

        # Noted: the kept copy is erased, and the button leads to the sign-in, which says so.
        assert _kept_answers(live_server) >= 1
        kept = _kept_answers(live_server)
        page.get_by_role("button", name="Code notiert – weiter zu „Mein Fall“").click()
        expect(page.locator("main")).to_contain_text("Der Code wird nicht mehr angezeigt.")
        assert _kept_answers(live_server) == kept - 1
        page.fill("#field-receipt", shown)
        page.click("button[type=submit]")
        expect(page.locator("main")).to_contain_text("Zweimal auf Senden getippt: Drohbrief am Gartentor.")
    finally:
        context.close()
