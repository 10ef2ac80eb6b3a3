"""axe-core at WCAG 2.1 AA on every page of tests/support/page_catalogue.py, reached as people reach them.

Each flow runs with JavaScript off: reporters and visitors on a 360 px phone, staff at a 1280 px desk.
Every form is sent by the browser itself and its answer (errors, receipt, notice) is checked where it
lands; tests.support.browser.PageChecker replays each state for axe in both colour schemes and at both
widths. The last test fails if a page of the catalogue, an error page, or a reporter page in English was
not checked here.

The module files its own case (Bayern, damage to a home, normal urgency) and works only that one: the
demo case belongs to test_counsellor_flow.py, which expects to acknowledge it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, FilePayload, Page, expect

from tests.support.browser import (
    BACKGROUND_OF,
    Authenticator,
    PageChecker,
    Scheme,
    context_for,
    contrast_ratio,
    create_account,
    phone_for,
    rueckhalt,
)
from tests.support.page_catalogue import (
    ERROR_PAGES,
    FORM_ANSWER_PAGES,
    GERMAN_ONLY_PAGES,
    PAGES,
    REPORTER_PAGES,
)
from tests.support.stack import LiveServer

pytestmark = pytest.mark.browser

RECEIPT = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}")
CASE_TYPE = "C2"  # damage to a home: no demo case and no other browser test files it
DESCRIPTION = "Nachts wurde die Hauswand beschmiert, mit meinem Namen und einer Drohung."
EVIDENCE = FilePayload(name="foto-notiz.txt", mimeType="text/plain", buffer=b"Foto folgt, Notiz vom Abend.")
ANSWER_FILE = FilePayload(name="merkblatt.txt", mimeType="text/plain", buffer=b"Merkblatt: Strafantrag.")


@dataclass(frozen=True)
class Filed:
    receipt: str


@pytest.fixture(scope="module")
def checker(browser: Browser) -> Iterator[PageChecker]:
    checker = PageChecker(browser)
    yield checker
    checker.close()


@pytest.fixture(scope="module")
def filed(browser: Browser, live_server: LiveServer, checker: PageChecker) -> Iterator[Filed]:
    """The module's case, filed as a reporter files it (form, its errors, the receipt: all checked)."""
    context = context_for(browser, 360)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/melden")
        checker.check(page, "GET /melden")

        # Required fields the browser checks itself are filled; the type is left out for the server to refuse.
        page.fill("#field-description", DESCRIPTION)
        page.select_option("#field-channel", "in_person.home")
        page.select_option("#field-land", "09")
        page.set_input_files("#field-attachments", files=[EVIDENCE])
        page.locator("form[action='/melden'] button[type=submit]").click()
        expect(page.locator(".error-summary a[href='#field-type_codes']")).to_have_count(1)
        checker.check(page, "POST /melden")

        page.locator(f"input[name=type_codes][value={CASE_TYPE}]").check()
        page.set_input_files("#field-attachments", files=[EVIDENCE])
        page.locator("form[action='/melden'] button[type=submit]").click()
        shown = re.sub(r"\s", "", page.locator(".receipt__code").inner_text())
        assert RECEIPT.fullmatch(shown), "the receipt page shows the code"
        checker.check(page, "POST /melden")
        yield Filed(receipt=shown)
    finally:
        context.close()


def demo_account(live_server: LiveServer, role: str, organisation: str = "") -> dict[str, Any]:
    accounts = live_server.demo_file("demo-credentials.json")
    return next(
        a for a in accounts if a["role"] == role and (not organisation or organisation in a["organisations"])
    )


def sign_in(page: Page, live_server: LiveServer, email: str, password: str, phone: Authenticator) -> None:
    page.goto(f"{live_server.url}/anmelden")
    page.fill("#field-email", email)
    page.fill("#field-password", password)
    page.fill("#field-code", phone.code())
    page.locator("form[action='/anmelden'] button[type=submit]").click()
    page.wait_for_load_state()


def sign_in_with_receipt(page: Page, live_server: LiveServer, receipt: str) -> None:
    page.goto(f"{live_server.url}/fall")
    page.fill("#field-receipt", receipt)
    page.locator("form[action='/fall/anmelden'] button[type=submit]").click()
    expect(page.locator("h1")).to_have_text(re.compile("Mein Fall|My case"))


def test_reporter_pages(
    browser: Browser, live_server: LiveServer, checker: PageChecker, filed: Filed
) -> None:
    context = context_for(browser, 360)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/")
        checker.check(page, "GET /")

        page.goto(f"{live_server.url}/fall")
        checker.check(page, "GET /fall")
        page.fill("#field-receipt", "AAAA-BBBB-CCCC-DDDD-EEEE")
        page.locator("form[action='/fall/anmelden'] button[type=submit]").click()
        expect(page.locator("#field-receipt-error")).to_be_visible()
        checker.check(page, "POST /fall/anmelden")

        sign_in_with_receipt(page, live_server, filed.receipt)
        expect(page.locator("main")).to_contain_text(DESCRIPTION)
        checker.check(page, "GET /fall")

        # A further incident without its type: refused, the text kept, the summary linking to the field.
        add = page.locator("form[action='/fall/vorfall']")
        add.locator("#field-description").fill("Heute lag ein Zettel im Briefkasten.")
        add.locator("#field-channel").select_option("letter")
        add.locator("button[type=submit]").click()
        expect(page.locator(".error-summary a[href='#field-type_codes']")).to_have_count(1)
        expect(page.locator("#field-description")).to_have_value("Heute lag ein Zettel im Briefkasten.")
        checker.check(page, "POST /fall/vorfall")
        page.locator("form[action='/fall/vorfall'] input[name=type_codes][value=A3a]").check()
        page.locator("form[action='/fall/vorfall'] button[type=submit]").click()
        expect(page.locator("main [role=status]").first).to_be_visible()
        expect(page.locator("main")).to_contain_text("Heute lag ein Zettel im Briefkasten.")
        checker.check(page, "POST /fall/vorfall")

        page.fill("#field-notify_email", "buergermeisterin@rathaus")
        page.locator("form[action='/fall/benachrichtigung'] button[value=save]").click()
        expect(page.locator("#field-notify_email-error")).to_be_visible()
        checker.check(page, "POST /fall/benachrichtigung")
        page.fill("#field-notify_email", "buergermeisterin@example.org")
        page.locator("form[action='/fall/benachrichtigung'] button[value=save]").click()
        expect(page.locator("#notify [role=status]")).to_be_visible()

        page.locator("form[action='/fall/abmelden'] button[type=submit]").click()
        expect(page.locator("#field-receipt")).to_be_visible()
        checker.check(page, "POST /fall/abmelden")
    finally:
        context.close()


def test_reporter_pages_in_english(
    browser: Browser, live_server: LiveServer, checker: PageChecker, filed: Filed
) -> None:
    context = context_for(browser, 360)
    page = context.new_page()
    try:
        # ?lang=en once: the choice is kept in a cookie for the pages after it.
        page.goto(f"{live_server.url}/?lang=en")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        checker.check(page, "GET /")

        page.goto(f"{live_server.url}/melden")
        checker.check(page, "GET /melden")
        page.fill("#field-description", "Insults below the municipality's post, for days now.")
        page.select_option("#field-channel", "email")
        page.select_option("#field-land", "05")
        page.locator("form[action='/melden'] button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        checker.check(page, "POST /melden")
        page.locator("input[name=type_codes][value=A1]").check()
        page.locator("form[action='/melden'] button[type=submit]").click()
        expect(page.locator(".receipt__code")).to_be_visible()
        checker.check(page, "POST /melden")

        # Reload the receipt: the browser sends the same form again, its token too. Nothing is filed twice,
        # and within its quarter of an hour the same receipt comes back, saying so.
        page.reload()
        expect(page.locator("[role=status]")).to_contain_text("You sent this form more than once")
        expect(page.locator(".receipt__code")).to_be_visible()
        checker.check(page, "POST /melden")
        # "Code noted" erases the copy kept for that and leads to the sign-in.
        used = page.locator("form[action='/melden/code-notiert'] input[name=submission_token]").input_value()
        page.get_by_role("button", name="Code noted – go to “My case”").click()
        expect(page.locator("main")).to_contain_text("The code is no longer shown.")
        checker.check(page, "GET /fall")
        # The same form sent once more after that (its used token in a view of the form, as a resend from
        # the history sends it): the page says the report arrived and what to do without the receipt.
        page.goto(f"{live_server.url}/melden")
        token_field = page.locator("input[name=submission_token]")
        token_field.evaluate("(input, token) => { input.value = token; }", used)
        page.fill("#field-description", "Insults below the municipality's post, for days now.")
        page.select_option("#field-channel", "email")
        page.select_option("#field-land", "05")
        page.locator("input[name=type_codes][value=A1]").check()
        page.locator("form[action='/melden'] button[type=submit]").click()
        expect(page.locator(".success-panel__title")).to_be_visible()
        expect(page.locator(".receipt__code")).to_have_count(0)
        checker.check(page, "POST /melden")

        page.goto(f"{live_server.url}/fall")
        checker.check(page, "GET /fall")
        sign_in_with_receipt(page, live_server, filed.receipt)
        checker.check(page, "GET /fall")

        for route, address in (
            ("/wissen", "/wissen"),
            ("/wissen/{slug}", "/wissen/strafanzeige"),
            ("/wissen/selbstcheck/fragen", "/wissen/selbstcheck/fragen"),
            ("/wissen/unterstuetzung", "/wissen/unterstuetzung?land=11"),
            ("/wissen/{slug}", "/wissen/buergerdialog-checkliste"),
            ("/glossar", "/glossar"),
            ("/leichte-sprache", "/leichte-sprache"),
            ("/statistik", "/statistik"),
        ):
            page.goto(f"{live_server.url}{address}")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            checker.check(page, f"GET {route}")

        response = page.goto(f"{live_server.url}/no-such-page")
        assert response is not None
        assert response.status == 404
        checker.check(page, "error 404")
    finally:
        context.close()


def test_visitor_pages(browser: Browser, live_server: LiveServer, checker: PageChecker) -> None:
    context = context_for(browser, 360)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/wissen")
        checker.check(page, "GET /wissen")
        page.fill("#field-q", "Strafantrag")
        page.get_by_role("button", name="Suchen").click()
        expect(page.get_by_role("link", name="Strafanzeige").first).to_be_visible()
        checker.check(page, "GET /wissen")
        page.get_by_role("link", name="Strafanzeige").first.click()
        checker.check(page, "GET /wissen/{slug}")
        page.goto(f"{live_server.url}/wissen?q=Zeppelinlandeplatz")
        checker.check(page, "GET /wissen")

        # The support directory, filtered by a Land with the form (no JavaScript), and a Land it refuses.
        page.goto(f"{live_server.url}/wissen")
        page.get_by_role("link", name=re.compile("Unterstützung in Ihrem Land")).click()
        checker.check(page, "GET /wissen/unterstuetzung")
        page.select_option("#field-land", "09")
        page.get_by_role("button", name="Anzeigen").click()
        expect(page.locator(".support-entry")).not_to_have_count(0)
        checker.check(page, "GET /wissen/unterstuetzung")
        page.goto(f"{live_server.url}/wissen/unterstuetzung?land=99")
        expect(page.locator(".error-summary")).to_be_visible()
        checker.check(page, "GET /wissen/unterstuetzung")
        # A citizen-dialogue guide with its sources and the links to the others.
        page.goto(f"{live_server.url}/wissen/buergerdialog-sicherheit")
        expect(page.locator("nav.related a")).not_to_have_count(0)
        checker.check(page, "GET /wissen/{slug}")

        page.goto(f"{live_server.url}/glossar")
        expect(page.locator("#antragsdelikt")).to_be_visible()
        checker.check(page, "GET /glossar")
        page.get_by_role("link", name="Leichte Sprache").click()
        checker.check(page, "GET /leichte-sprache")
        page.get_by_role("link", name=re.compile("Straf·anzeige")).click()
        expect(page.locator("article[class~=article--easy]")).to_be_visible()
        checker.check(page, "GET /leichte-sprache/{page}")
        # The demo's placeholder Impressum and privacy notice, from the footer of every page.
        page.get_by_role("link", name="Impressum").click()
        expect(page.get_by_text("Platzhalter der Demo – keine echte Angabe")).to_be_visible()
        checker.check(page, "GET /impressum")
        page.get_by_role("link", name="Datenschutzerklärung").click()
        expect(page.get_by_text("Platzhalter der Demo – keine echte Angabe")).to_be_visible()
        checker.check(page, "GET /datenschutz")

        page.goto(f"{live_server.url}/wissen/selbstcheck/fragen")
        checker.check(page, "GET /wissen/selbstcheck/fragen")
        for answer in page.locator("input[type=radio][value=no]").all()[:3]:
            answer.check()
        page.locator("form[action^='/wissen/selbstcheck/auswertung'] button[type=submit]").click()
        expect(page.locator("#plan")).to_be_visible()
        checker.check(page, "POST /wissen/selbstcheck/auswertung")

        # The latest release with its chart and tables (earlier years: the same page with ?jahr=).
        page.goto(f"{live_server.url}/statistik")
        expect(page.locator(".chart__bar")).to_have_count(12)
        checker.check(page, "GET /statistik")

        response = page.goto(f"{live_server.url}/intern/faelle/00000000-0000-0000-0000-000000000000/nichts")
        assert response is not None
        assert response.status == 404
        checker.check(page, "error 404")
    finally:
        context.close()

    # Too many reports from one address: the browser's own address must stay usable for the other tests,
    # so a second loopback address (Linux routes all of 127/8 to lo) runs into the limit, and what it was
    # answered is checked like any other state.
    with httpx.Client(
        base_url=live_server.url, transport=httpx.HTTPTransport(local_address="127.0.0.2")
    ) as other_client:
        for _ in range(200):
            refused = other_client.post("/melden")
            if refused.status_code == 429:
                break
        assert refused.status_code == 429
    checker.check_html(f"{live_server.url}/melden", refused.text, "error 429", 360)


def test_counsellor_pages(
    browser: Browser, live_server: LiveServer, checker: PageChecker, filed: Filed
) -> None:
    account = demo_account(live_server, "counsellor", "Beratungsstelle Rückhalt Bayern (Demo)")
    staff = context_for(browser, 1280)
    page = staff.new_page()
    try:
        page.goto(f"{live_server.url}/anmelden")
        checker.check(page, "GET /anmelden")
        page.fill("#field-email", account["email"])
        page.fill("#field-password", "nicht-das-passwort")
        page.fill("#field-code", "000000")
        page.locator("form[action='/anmelden'] button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        checker.check(page, "POST /anmelden")

        sign_in(page, live_server, account["email"], account["password"], phone_for(account))
        expect(page).to_have_url(f"{live_server.url}/intern")
        checker.check(page, "GET /intern")

        page.goto(f"{live_server.url}/intern/faelle")
        checker.check(page, "GET /intern/faelle")
        page.select_option("#filter-land", "09")
        page.select_option("#filter-type", CASE_TYPE)
        page.get_by_role("button", name="Filter anwenden").click()
        rows = page.locator(".cases__link")
        expect(rows).to_have_count(1)
        case_link = rows.first.get_attribute("href")
        page.select_option("#filter-type", "X1")
        page.get_by_role("button", name="Filter anwenden").click()
        expect(rows).to_have_count(0)
        checker.check(page, "GET /intern/faelle")
        page.goto(f"{live_server.url}{case_link}")
        expect(page.locator("main")).to_contain_text(DESCRIPTION)
        expect(page.get_by_role("link", name=EVIDENCE["name"])).to_have_count(1)
        case_page = page.url
        checker.check(page, "GET /intern/faelle/{case_id}")

        page.get_by_role("button", name="Eingang bestätigen").click()
        expect(page.locator("[role=status]").first).to_contain_text("Der Eingang ist bestätigt.")
        page.locator("form[action$='/zuweisen'] button[value=me]").click()
        expect(page.locator(".case-head")).to_contain_text("mir zugewiesen")

        page.fill("#field-message", "Guten Tag, wir melden uns morgen. Anbei ein Merkblatt.")
        page.set_input_files("#field-message_files", files=[ANSWER_FILE])
        page.get_by_role("button", name="Nachricht senden").click()
        expect(page.locator("#conversation [role=status]")).to_be_visible()
        page.fill("#field-note", "Rückruf vereinbaren; Strafantragsfrist im Blick behalten.")
        page.locator("form[action$='/notiz'] button[type=submit]").click()
        expect(page.locator("#notes")).to_contain_text("Rückruf vereinbaren")
        checker.check(page, "GET /intern/faelle/{case_id}")

        # Handing the case on without the reporter's consent is refused and says why.
        page.locator("#field-organisation option").nth(1).wait_for(state="attached")
        page.select_option("#field-organisation", index=1)
        page.locator("form[action$='/weitergeben'] button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        checker.check(page, "POST /intern/faelle/{case_id}/weitergeben")

        # The reporter reads the answer and its file, and replies.
        reporter = context_for(browser, 360)
        mayor = reporter.new_page()
        try:
            sign_in_with_receipt(mayor, live_server, filed.receipt)
            link = mayor.locator("#messages").get_by_role("link", name=ANSWER_FILE["name"])
            expect(link).to_have_count(1)
            checker.check(mayor, "GET /fall")
            href = link.get_attribute("href")
            assert href is not None
            # The attachment route is a download, not a page (tests/support/page_catalogue.py NOT_PAGES).
            download = mayor.request.get(f"{live_server.url}{href}")
            assert download.headers["content-disposition"].startswith("attachment;")
            assert download.body() == ANSWER_FILE["buffer"]

            mayor.fill("#field-message", "Danke, morgen ab 9 Uhr.")
            mayor.get_by_role("button", name="Nachricht verschlüsselt senden").click()
            expect(mayor.locator("#messages [role=status]")).to_be_visible()
        finally:
            reporter.close()

        page.goto(case_page)
        expect(page.locator("#conversation")).to_contain_text("Danke, morgen ab 9 Uhr.")

        page.goto(f"{live_server.url}/konto/passwort")
        checker.check(page, "GET /konto/passwort")
        page.fill("#field-current_password", account["password"])
        page.fill("#field-new_password", "Lange-genug-aber-ungleich-1")
        page.fill("#field-new_password_repeat", "Lange-genug-aber-ungleich-2")
        page.locator("form[action='/konto/passwort'] button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        checker.check(page, "POST /konto/passwort")

        page.goto(f"{live_server.url}/konto/zwei-faktor")
        checker.check(page, "GET /konto/zwei-faktor")
        page.locator("form:has(input[name=action][value=start]) button").click()
        expect(page.locator("img.qr")).to_be_visible()
        checker.check(page, "POST /konto/zwei-faktor")
        # A wrong code of the new app (the password and the old app's code right): the old app stays in
        # force, the set-up is shown again with the error.
        confirm = page.locator("form:has(input[name=action][value=confirm])")
        confirm.locator("#field-code").fill("000000")
        confirm.locator("#field-password").fill(account["password"])
        confirm.locator("#field-current_code").fill(phone_for(account).code())
        confirm.locator("button").click()
        expect(page.locator("#field-code-error")).to_be_visible()
        checker.check(page, "POST /konto/zwei-faktor")

        # A form whose token no longer fits (a stale tab) is refused with the 403 page.
        page.goto(f"{live_server.url}/intern")
        page.locator("form.signout input[name=csrf_token]").evaluate("input => { input.value = 'alt' }")
        with page.expect_response(f"{live_server.url}/abmelden") as answer:
            page.locator("form.signout button[type=submit]").click()
        assert answer.value.status == 403
        checker.check(page, "error 403")

        page.goto(f"{live_server.url}/intern")
        page.locator("form.signout button[type=submit]").click()
        expect(page.locator("#field-email")).to_be_visible()
        checker.check(page, "POST /abmelden")
    finally:
        staff.close()


def test_coordinator_pages(browser: Browser, live_server: LiveServer, checker: PageChecker) -> None:
    account = demo_account(live_server, "coordinator")
    context = context_for(browser, 1280)
    page = context.new_page()
    try:
        sign_in(page, live_server, account["email"], account["password"], phone_for(account))
        expect(page).to_have_url(f"{live_server.url}/intern")
        checker.check(page, "GET /intern")

        # The worker builds last month's snapshot when it starts (a while on a busy machine): the dashboard
        # is checked with its tables and charts, not only with the note that there is none yet.
        page.goto(f"{live_server.url}/intern/statistik")
        deadline = time.monotonic() + 240
        while page.locator("#trend").count() == 0:
            assert time.monotonic() < deadline, "the worker built no snapshot"
            time.sleep(2)
            page.reload()
        expect(page.locator("main")).to_contain_text("Reaktionszeiten je Organisation")
        checker.check(page, "GET /intern/statistik")

        page.goto(f"{live_server.url}/wissen/neu")
        checker.check(page, "GET /wissen/neu")
        page.locator("form[action^='/wissen/neu'] button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        checker.check(page, "POST /wissen/neu")
        page.fill("#field-slug", "barrierefrei-melden")
        page.fill("#field-title", "Barrierefrei melden")
        page.fill("#field-summary", "Das Formular funktioniert ohne JavaScript und auf kleinen Bildschirmen.")
        page.fill("#field-body", "## Ohne JavaScript\n\nAlle Formulare senden auch ohne Skripte.")
        page.locator("form[action^='/wissen/neu'] button[type=submit]").click()
        expect(page).to_have_url(f"{live_server.url}/wissen/barrierefrei-melden?created=1")
        expect(page.locator("main")).to_contain_text("wartet auf die Prüfung")
        checker.check(page, "GET /wissen/{slug}")

        page.get_by_role("link", name=re.compile("Bearbeiten")).click()
        checker.check(page, "GET /wissen/{slug}/bearbeiten")
        page.fill("#field-title", "")
        page.locator("form[action*='/bearbeiten'] button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        checker.check(page, "POST /wissen/{slug}/bearbeiten")
        page.fill("#field-title", "Barrierefrei melden, auch am Telefon")
        page.locator("form[action*='/bearbeiten'] button[type=submit]").click()
        expect(page.locator("h1")).to_have_text("Barrierefrei melden, auch am Telefon")

        # The support directory: the list, a new entry refused and then saved, the entry's page.
        page.goto(f"{live_server.url}/intern")
        page.get_by_role("link", name=re.compile("Unterstützung in den Ländern")).click()
        expect(page.locator(".support-table tbody tr")).not_to_have_count(0)
        checker.check(page, "GET /intern/unterstuetzung")
        page.get_by_role("link", name="Neuer Eintrag").click()
        checker.check(page, "GET /intern/unterstuetzung/neu")
        page.fill("#field-url", "http://nicht-sicher.example")
        page.locator("form[action^='/intern/unterstuetzung/neu'] button[type=submit]").click()
        expect(page.locator(".error-summary a[href='#field-url']")).to_have_count(1)
        checker.check(page, "POST /intern/unterstuetzung/neu")
        page.select_option("#field-land", "16")
        page.select_option("#field-kind", "training")
        page.fill("#field-name", "Werkstatt Barrierefreiheit (Demo)")
        page.fill("#field-description_de", "Workshops zu barrierefreien Bürgerversammlungen.")
        page.fill("#field-description_en", "Workshops on accessible citizens' assemblies.")
        page.fill("#field-url", "https://example.org/werkstatt")
        page.fill("#field-source", "Beispielverband: Programm 2026")
        page.locator("form[action^='/intern/unterstuetzung/neu'] button[type=submit]").click()
        expect(page.locator("main [role=status]").first).to_contain_text("Der Eintrag ist gespeichert.")
        checker.check(page, "GET /intern/unterstuetzung/{entry_id}")
        page.fill("#field-name", "")
        page.locator("form.form:not(.form--compact) button[type=submit]").click()
        expect(page.locator(".error-summary a[href='#field-name']")).to_have_count(1)
        checker.check(page, "POST /intern/unterstuetzung/{entry_id}")
    finally:
        context.close()


def test_lead_admin_and_new_staff_pages(
    browser: Browser, live_server: LiveServer, checker: PageChecker
) -> None:
    for role in ("lead", "admin"):
        account = demo_account(live_server, role)
        context = context_for(browser, 1280)
        page = context.new_page()
        try:
            sign_in(page, live_server, account["email"], account["password"], phone_for(account))
            expect(page).to_have_url(f"{live_server.url}/intern")
            checker.check(page, "GET /intern")
        finally:
            context.close()

    # A new account, as an administrator creates it: the initial password must be changed first.
    newcomer = create_account(live_server, "neu.a11y@demo.rueckhalt.example", "Nora Neumann (Demo)")
    phone = newcomer.phone

    context = context_for(browser, 1280)
    page = context.new_page()
    try:
        sign_in(page, live_server, newcomer.email, newcomer.initial_password, phone)
        expect(page).to_have_url(f"{live_server.url}/konto/passwort")
        checker.check(page, "GET /konto/passwort")
        page.fill("#field-current_password", newcomer.initial_password)
        page.fill("#field-new_password", "kurz")
        page.fill("#field-new_password_repeat", "kurz")
        page.locator("form[action='/konto/passwort'] button[type=submit]").click()
        expect(page.locator("#field-new_password-error")).to_be_visible()
        checker.check(page, "POST /konto/passwort")
        page.fill("#field-current_password", newcomer.initial_password)
        page.fill("#field-new_password", "Zwölf-Zeichen-Mindestens-7")
        page.fill("#field-new_password_repeat", "Zwölf-Zeichen-Mindestens-7")
        page.locator("form[action='/konto/passwort'] button[type=submit]").click()
        expect(page).to_have_url(f"{live_server.url}/intern")
        checker.check(page, "GET /intern")
        page.goto(f"{live_server.url}/intern/faelle")
        checker.check(page, "GET /intern/faelle")

        # A new authenticator app, confirmed: the recovery codes are shown once.
        page.goto(f"{live_server.url}/konto/zwei-faktor")
        page.locator("form:has(input[name=action][value=start]) button").click()
        new_app = Authenticator(page.locator("code.code-text").first.inner_text())
        # A change of the second factor asks for the password and a code of the old app as well.
        confirm = page.locator("form:has(input[name=action][value=confirm])")
        confirm.locator("#field-password").fill("Zwölf-Zeichen-Mindestens-7")
        confirm.locator("#field-current_code").fill(phone.code())
        new_app.last_step = phone.last_step  # the server refuses any step at or before the last one used
        confirm.locator("#field-code").fill(new_app.code())
        confirm.locator("button").click()
        expect(page.locator(".recovery-codes li")).not_to_have_count(0)
        checker.check(page, "POST /konto/zwei-faktor")
    finally:
        context.close()


def test_first_lead_pages(browser: Browser, live_server: LiveServer, checker: PageChecker) -> None:
    """A new organisation (not in the routing policy, so no report reaches it) and its first lead: the key
    set-up, the shares shown once, the members with a grant, a refusal and a revocation, renewed shares;
    the organisation's pages in English too. The demo counsellor is granted and revoked again."""
    account = create_account(live_server, "leitung.a11y@demo.rueckhalt.example", "Ida Vogt (Demo)")
    name = "Beratungsstelle Barrierefrei (Demo)"
    rueckhalt(live_server, "org", "create", name, "--slug", "barrierefrei-a11y")
    rueckhalt(live_server, "org", "add-member", "barrierefrei-a11y", account.email, "--role", "lead")
    colleague = demo_account(live_server, "counsellor", "Beratungsstelle Rückhalt Bayern (Demo)")
    custodians = "Ida Vogt (Leitung)\nTom Berg (Stellvertretung)\nEva Roth (Vorstand)"

    context = context_for(browser, 1280)
    page = context.new_page()
    try:
        sign_in(page, live_server, account.email, account.initial_password, account.phone)
        page.fill("#field-current_password", account.initial_password)
        page.fill("#field-new_password", "Eigenes-Passwort-Ida-Vogt-5")
        page.fill("#field-new_password_repeat", "Eigenes-Passwort-Ida-Vogt-5")
        page.locator("form[action='/konto/passwort'] button[type=submit]").click()
        expect(page).to_have_url(f"{live_server.url}/intern")

        page.goto(f"{live_server.url}/intern/organisationen")
        checker.check(page, "GET /intern/organisationen")
        page.get_by_role("link", name=re.compile(re.escape(name))).click()
        expect(page.locator("#field-custodians")).to_be_visible()
        organisation_page = page.url
        checker.check(page, "GET /intern/organisationen/{organisation_id}")

        page.fill("#field-custodians", "Ida Vogt (Leitung)")
        page.locator("form[action$='/schluessel'] button[type=submit]").click()
        expect(page.locator(".error-summary a[href='#field-custodians']")).to_have_count(1)
        checker.check(page, "POST /intern/organisationen/{organisation_id}/schluessel")
        page.fill("#field-custodians", custodians)
        page.locator("form[action$='/schluessel'] button[type=submit]").click()
        expect(page.locator(".share-sheet")).to_have_count(3)
        checker.check(page, "POST /intern/organisationen/{organisation_id}/schluessel")

        page.get_by_role("link", name="Zurück zur Organisation").click()
        expect(page.locator(".members tbody tr")).to_have_count(1)
        checker.check(page, "GET /intern/organisationen/{organisation_id}")

        page.fill("#field-email", demo_account(live_server, "admin")["email"])
        page.locator("form[action$='/mitglieder'] button[type=submit]").click()
        expect(page.locator("#field-email-error")).to_be_visible()
        checker.check(page, "POST /intern/organisationen/{organisation_id}/mitglieder")
        page.fill("#field-email", colleague["email"])
        page.locator("form[action$='/mitglieder'] button[type=submit]").click()
        expect(page.locator(".members tbody tr")).to_have_count(2)
        checker.check(page, "GET /intern/organisationen/{organisation_id}")
        page.locator(".members tbody tr", has_text=colleague["email"]).get_by_role("button").click()
        expect(page.locator(".members tbody tr")).to_have_count(1)
        checker.check(page, "GET /intern/organisationen/{organisation_id}")

        page.fill("#field-custodians", custodians)
        page.fill("#field-threshold", "3")
        page.locator("form[action$='/anteile'] button[type=submit]").click()
        expect(page.locator(".share-sheet")).to_have_count(3)
        checker.check(page, "POST /intern/organisationen/{organisation_id}/anteile")

        page.goto(f"{live_server.url}/intern/organisationen?lang=en")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        checker.check(page, "GET /intern/organisationen")
        page.goto(organisation_page)
        checker.check(page, "GET /intern/organisationen/{organisation_id}")
        page.fill("#field-custodians", custodians)
        page.locator("form[action$='/anteile'] button[type=submit]").click()
        expect(page.locator(".share-sheet")).to_have_count(3)
        checker.check(page, "POST /intern/organisationen/{organisation_id}/anteile")
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_chart_bars_and_intervals_stand_out(
    browser: Browser, live_server: LiveServer, scheme: Scheme
) -> None:
    """axe does not measure graphics: WCAG 1.4.11 asks 3:1 for the bars against the page and for the 90 %
    interval whisker against the bar it crosses and the page above it, in both colour schemes."""
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 360, "height": 900}, color_scheme=scheme
    )
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/statistik")
        bar = page.locator(".chart__bar").first
        fill = bar.evaluate("rect => getComputedStyle(rect).fill")
        whisker = page.locator(".chart__whisker").first.evaluate("line => getComputedStyle(line).stroke")
        background = bar.evaluate(BACKGROUND_OF)
        assert contrast_ratio(fill, background) >= 3, (fill, background)
        assert contrast_ratio(whisker, fill) >= 3, (whisker, fill)
        assert contrast_ratio(whisker, background) >= 3, (whisker, background)
    finally:
        context.close()


def test_selfcheck_code_and_plans(browser: Browser, live_server: LiveServer, checker: PageChecker) -> None:
    """The self-check kept under a code and opened again (German and English), its printable plan, the
    personal safety plan, and a wrong code: each state at 360 px without JavaScript."""
    context = context_for(browser, 360)
    page = context.new_page()
    try:
        for lang in ("", "?lang=en"):
            page.goto(f"{live_server.url}/wissen/selbstcheck/fragen{lang}")
            checker.check(page, "GET /wissen/selbstcheck/fragen")
            for answer in page.locator("input[type=radio][value=partly]").all()[:4]:
                answer.check()
            page.locator("form[action^='/wissen/selbstcheck/auswertung'] button[type=submit]").click()
            checker.check(page, "POST /wissen/selbstcheck/auswertung")
            page.fill("#field-step1", "Integrationskonzept entwerfen")
            page.fill("#field-owner1", "Hauptamt")
            with context.expect_page() as printed_info:
                page.locator("#plan button[value=html]").click()
            printed = printed_info.value
            expect(printed.locator(".plan")).to_be_visible()
            checker.check(printed, "POST /wissen/selbstcheck/plan")
            printed.close()
            page.locator("#keep button[type=submit]").click()
            shown = re.sub(r"\s", "", page.locator(".receipt__code").inner_text())
            assert RECEIPT.fullmatch(shown), "the code is shown once"
            checker.check(page, "POST /wissen/selbstcheck/speichern")

            page.goto(f"{live_server.url}/wissen/selbstcheck/code{lang}")
            checker.check(page, "GET /wissen/selbstcheck/code")
            page.fill("#field-code", shown)
            page.locator("button[value=open]").click()
            expect(page.locator("input[type=radio][value=partly]:checked")).to_have_count(4)
            checker.check(page, "POST /wissen/selbstcheck/code")
            page.goto(f"{live_server.url}/wissen/selbstcheck/code{lang}")
            page.fill("#field-code", shown[:-1] + ("0" if shown[-1] != "0" else "1"))
            page.locator("button[value=open]").click()
            expect(page.locator(".error-summary")).to_be_visible()
            checker.check(page, "POST /wissen/selbstcheck/code")
            page.fill("#field-code", shown)
            page.locator("button[value=delete]").click()
            checker.check(page, "POST /wissen/selbstcheck/code")
            page.locator("form[action^='/wissen/selbstcheck/loeschen'] button[type=submit]").click()
            expect(page.locator(".notice")).to_be_visible()
            checker.check(page, "POST /wissen/selbstcheck/loeschen")

            page.goto(f"{live_server.url}/wissen/sicherheitsplan{lang}")
            checker.check(page, "GET /wissen/sicherheitsplan")
            page.locator("input[name='a.adresse-oeffentlich'][value=yes]").check()
            page.fill("#field-f-vertrauensperson", "Anna, 0170 000000")
            page.locator("form[action^='/wissen/sicherheitsplan'] button[value=html]").click()
            expect(page.locator(".plan")).to_be_visible()
            checker.check(page, "POST /wissen/sicherheitsplan")
    finally:
        context.close()


def test_every_page_was_checked(checker: PageChecker) -> None:
    """Runs after the flows above (pytest keeps the order of a module); alone it has nothing to look at."""
    missing = {route for route in PAGES if f"GET {route}" not in checker.checked}
    assert not missing, f"pages of tests/support/page_catalogue.py that no flow checked: {missing}"
    errors = {status for status in ERROR_PAGES if f"error {status}" not in checker.checked}
    assert not errors, f"error pages not checked: {errors}"
    answers = {route for route in FORM_ANSWER_PAGES if f"POST {route}" not in checker.checked}
    assert not answers, f"form answers of tests/support/page_catalogue.py that no flow checked: {answers}"
    not_both = {
        route
        for route in REPORTER_PAGES - GERMAN_ONLY_PAGES
        if checker.checked[f"GET {route}"] != {"de", "en"}
    }
    assert not not_both, f"reporter pages not checked in German and English: {not_both}"
    print(f"\naxe-core checked {checker.states} page states, each in two schemes at two widths:")
    for key in sorted(checker.checked):
        print(f"  {key} ({', '.join(sorted(checker.checked[key]))})")
