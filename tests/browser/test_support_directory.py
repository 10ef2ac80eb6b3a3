"""A visitor on a 360 px phone with JavaScript off opens the support directory, filters it by a Land with the
form, and prints the dialogue checklist; axe-core finds nothing, and nothing scrolls sideways."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import context_for, no_axe_violations, no_horizontal_scroll
from tests.support.stack import LiveServer

pytestmark = pytest.mark.browser


def test_the_directory_filtered_by_a_land_at_360_px_without_javascript(
    browser: Browser, live_server: LiveServer
) -> None:
    context = context_for(browser, 360)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/wissen")
        page.get_by_role("link", name=re.compile("Unterstützung in Ihrem Land")).click()
        expect(page.locator("h1")).to_have_text("Unterstützung in den Ländern")
        everything = page.locator(".support-entry").count()

        page.select_option("#field-land", "09")
        page.get_by_role("button", name="Anzeigen").click()
        assert re.search(r"[?&]land=09(&|$)", page.url), page.url
        expect(page.locator("#field-land")).to_have_value("09")
        expect(page.locator("h2#land-09")).to_have_text("Bayern")
        expect(page.locator("h2#land-bund")).to_have_text("Bundesweit")
        expect(page.locator(".support-entry", has_text="RIAS Bayern")).to_have_count(1)
        expect(page.locator(".support-entry", has_text="(MBR)")).to_have_count(0)
        shown = page.locator(".support-entry")
        assert 0 < shown.count() < everything
        # Each entry names its source and the day it was checked.
        for index in range(shown.count()):
            text = shown.nth(index).inner_text()
            assert "Quelle:" in text, text
            assert re.search(r"geprüft am: \d{4}-\d\d-\d\d", text), text
        no_horizontal_scroll(page, 360)
        no_axe_violations(browser, context, page.url, 360)

        page.goto(f"{live_server.url}/wissen/unterstuetzung?land=09&lang=en")
        expect(page.locator("h2#land-09")).to_have_text("Bavaria")
        expect(page.locator(".support-count")).to_contain_text("for Bavaria and nationwide")
        no_horizontal_scroll(page, 360)
        no_axe_violations(browser, context, page.url, 360)
    finally:
        context.close()


def test_the_dialogue_checklist_prints_without_menus_and_forms(
    browser: Browser, live_server: LiveServer
) -> None:
    context = context_for(browser, 360)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/wissen/buergerdialog-checkliste?lang=de")
        expect(page.locator(".article--checklist li").first).to_be_visible()
        no_horizontal_scroll(page, 360)
        no_axe_violations(browser, context, page.url, 360)
        page.emulate_media(media="print")
        expect(page.locator(".site-nav")).to_be_hidden()
        expect(page.locator("nav.related")).to_be_hidden()
        expect(page.locator(".article--checklist li").first).to_be_visible()
        pdf = page.pdf(width="210mm", height="297mm")
        assert pdf.startswith(b"%PDF"), "the page prints"
    finally:
        context.close()
