"""A threatened council member on a phone (360 px, JavaScript off) makes a letter from the case: the
Auskunftssperre for the household, as a PDF download; a mistyped field comes back with the summary and
everything typed kept. What was typed is in the PDF and nowhere on the server (tests/dossier,
tests/system/test_canary_everywhere.py)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from pypdf import PdfReader

from tests.support.browser import context_for, no_axe_violations, no_horizontal_scroll
from tests.support.stack import LiveServer

pytestmark = pytest.mark.browser

RECEIPT = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}")
DESCRIPTION = "Zwei Männer standen nachts vor unserem Haus und riefen meinen Namen."


def test_a_letter_without_javascript_on_a_phone(
    browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    context = context_for(browser, 360)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/melden")
        page.locator("input[name=type_codes][value=A11]").first.check()
        page.fill("#field-description", DESCRIPTION)
        page.select_option("#field-channel", "in_person.home")
        page.select_option("#field-land", "09")
        page.fill("#field-occurred_on", "2026-11-28")
        page.click("button[type=submit]")
        receipt = RECEIPT.fullmatch(re.sub(r"\s", "", page.locator(".receipt__code").inner_text()))
        assert receipt

        page.goto(f"{live_server.url}/fall")
        page.fill("#field-receipt", receipt.group(0))
        page.locator("form[action='/fall/anmelden'] button[type=submit]").click()
        letters = page.locator("form[action='/fall/brief']")
        expect(letters).to_be_visible()
        no_horizontal_scroll(page, 360)

        # A mistyped e-mail address: the page comes back with the summary, the choice and the text kept.
        page.check("#field-letter_kind-auskunftssperre")
        page.fill("#field-letter_name", "Erika Mustermann")
        page.fill("#field-letter_household", "Max Mustermann, 01.02.2003\nMia Mustermann, 03.04.2015")
        # The browser accepts "name@host"; the service asks for a domain with a dot.
        page.fill("#field-letter_email", "erika@rathaus")
        letters.get_by_role("button", name="Entwurf als PDF").click()
        summary = page.locator(".error-summary")
        expect(summary).to_contain_text("E-Mail-Adresse")
        expect(page.locator("#field-letter_kind-auskunftssperre")).to_be_checked()
        expect(page.locator("#field-letter_household")).to_have_value(
            "Max Mustermann, 01.02.2003\nMia Mustermann, 03.04.2015"
        )
        no_horizontal_scroll(page, 360)

        page.fill("#field-letter_email", "")
        with page.expect_download() as started:
            page.locator("form[action='/fall/brief']").get_by_role("button", name="Entwurf als PDF").click()
        download = started.value
        assert re.fullmatch(r"Auskunftssperre-Entwurf-\d{4}-\d\d-\d\d\.pdf", download.suggested_filename)
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        reader = PdfReader(io.BytesIO(saved.read_bytes()))
        text = re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in reader.pages))
        assert "Antrag auf Eintragung einer Auskunftssperre nach § 51 Abs. 1 BMG" in text
        assert "Erika Mustermann" in text
        assert "Max Mustermann, 01.02.2003" in text
        assert "Mia Mustermann, 03.04.2015" in text
        assert "28.11.2026" in text
        assert DESCRIPTION in text
        assert "Entwurf zum Prüfen, keine Rechtsberatung" in text
        no_axe_violations(browser, context, f"{live_server.url}/fall", 360)
    finally:
        context.close()
