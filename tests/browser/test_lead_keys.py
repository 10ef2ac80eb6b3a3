"""Key custody in the browser: the first lead makes the key, grants and revokes access. JavaScript off.

On a new installation (fixture ``new_installation``: migrated, no demo): the operator creates the Bremen
organisation of the demo policy WITHOUT a key and names its first lead; every other step is the lead's in
Chromium with scripts disabled, as the issue asks: "A lead grants and revokes in the browser (Chromium, no
JavaScript); an account with its initial password cannot be granted to." The lead works at a 1280 px desk,
the counsellor and the reporter on 360 px phones.

The database is read beside the pages (nothing stored after the refusal; the key epoch after the
revocation): the SQLite file of the server's data folder, read only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.config import Settings
from service.crypto import parse_share
from service.db import make_engine, make_sessionmaker
from service.identity.models import MemberKeyGrant, Membership, Organisation, StaffUser
from tests.support.browser import (
    NewAccount,
    context_for,
    create_account,
    no_horizontal_scroll,
    rueckhalt,
    untranslated,
)
from tests.support.stack import LiveServer

pytestmark = pytest.mark.browser

# An organisation of the demo policy (policies/routing.yaml, rule land-hb: Land "04" goes to beratung-hb).
SLUG = "beratung-hb"
ORGANISATION = "Beratungsstelle Rückhalt Bremen (Demo)"
BREMEN = "04"
DESCRIPTION = (
    "Vor dem Rathaus hat mich ein Mann abgepasst und gedroht, er wisse, wo meine Kinder zur Schule gehen."
)
CUSTODIANS = ["Hanna Lohmann (Leitung)", "Deniz Aydın (Stellvertretung)", "Marta Nowak (Vorstand)"]
LEAD_PASSWORD = "Eigenes-Passwort-der-Leitung-7"
COUNSELLOR_PASSWORD = "Eigenes-Passwort-des-Beraters-3"
NO_OWN_PASSWORD = (
    "Dieses Konto hat noch kein eigenes Passwort gesetzt und daher keinen Schlüssel. Bitten Sie die Person, "
    "sich einmal anzumelden; danach können Sie den Zugang erteilen."
)


@contextmanager
def database(server: LiveServer) -> Iterator[Session]:
    engine = make_engine(Settings(data_dir=server.data_dir).resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def organisation_row(server: LiveServer) -> tuple[int, bool]:
    """(current key epoch, has a key) of the organisation, as stored."""
    with database(server) as session:
        organisation = session.scalars(select(Organisation).where(Organisation.slug == SLUG)).one()
        return organisation.current_epoch, organisation.public_key is not None


def stored_access(server: LiveServer, email: str) -> tuple[int, int]:
    """(memberships, key grants) of the account, as stored."""
    with database(server) as session:
        user_id = session.scalars(select(StaffUser.id).where(StaffUser.email == email)).one()
        memberships = session.scalar(
            select(func.count()).select_from(Membership).where(Membership.user_id == user_id)
        )
        grants = session.scalar(
            select(func.count()).select_from(MemberKeyGrant).where(MemberKeyGrant.user_id == user_id)
        )
        return memberships or 0, grants or 0


def sign_in(page: Page, server: LiveServer, account: NewAccount, password: str) -> None:
    page.goto(f"{server.url}/anmelden")
    page.fill("#field-email", account.email)
    page.fill("#field-password", password)
    page.fill("#field-code", account.phone.code())
    page.locator("form[action='/anmelden'] button[type=submit]").click()
    page.wait_for_load_state()


def first_sign_in(page: Page, server: LiveServer, account: NewAccount, own_password: str) -> None:
    """The initial password opens only the password page; the own password makes the account's key pair."""
    sign_in(page, server, account, account.initial_password)
    expect(page).to_have_url(f"{server.url}/konto/passwort")
    page.fill("#field-current_password", account.initial_password)
    page.fill("#field-new_password", own_password)
    page.fill("#field-new_password_repeat", own_password)
    page.locator("form[action='/konto/passwort'] button[type=submit]").click()
    expect(page).to_have_url(f"{server.url}/intern")


def file_bremen_report(page: Page, server: LiveServer) -> int:
    """The report form as a reporter sends it; the status of the answer."""
    page.goto(f"{server.url}/melden")
    page.fill("#field-description", DESCRIPTION)
    page.select_option("#field-channel", "in_person.town_hall")
    page.select_option("#field-land", BREMEN)
    page.locator("input[name=type_codes][value=A3a]").check()
    with page.expect_response(f"{server.url}/melden") as answer:
        page.locator("form[action='/melden'] button[type=submit]").click()
    return answer.value.status


def test_first_lead_makes_the_key_grants_and_revokes(browser: Browser, new_installation: LiveServer) -> None:
    server = new_installation
    # The operator: an organisation without a key, its first lead, and a future counsellor.
    created = rueckhalt(server, "org", "create", ORGANISATION, "--slug", SLUG)
    assert "cannot receive cases until it has a key" in created
    lead = create_account(server, "leitung@bremen.rueckhalt.example", "Hanna Lohmann")
    counsellor = create_account(server, "berater@bremen.rueckhalt.example", "Jonas Petersen")
    rueckhalt(server, "org", "add-member", SLUG, lead.email, "--role", "lead")
    assert re.search(rf"{SLUG}\s+key: NO", rueckhalt(server, "org", "list"))

    desk = context_for(browser, 1280)
    phone = context_for(browser, 360)
    reporter = context_for(browser, 360)
    try:
        # Without a key the organisation receives nothing: the report is refused, nothing stored.
        mayor = reporter.new_page()
        assert file_bremen_report(mayor, server) == 503
        expect(mayor.locator("main")).to_contain_text("Es wurde nichts gespeichert")

        # The first lead: initial password, forced to choose an own one, then the organisation's page.
        page = desk.new_page()
        first_sign_in(page, server, lead, LEAD_PASSWORD)
        page.locator(".site-nav").get_by_role("link", name="Organisationen").click()
        expect(page.locator("h1")).to_have_text("Organisationen")
        page.get_by_role("link", name=re.compile(re.escape(ORGANISATION))).click()
        expect(page.locator("h1")).to_have_text(ORGANISATION)
        expect(page.get_by_role("heading", name="Schlüssel der Organisation einrichten")).to_be_visible()
        organisation_page = page.url
        assert organisation_row(server) == (0, False)

        # A threshold above the number of custodians is refused, the names kept.
        page.fill("#field-custodians", "\n".join(CUSTODIANS))
        page.fill("#field-threshold", "4")
        page.get_by_role("button", name="Schlüssel erzeugen und Anteile anzeigen").click()
        expect(page.locator("#field-threshold-error")).to_contain_text("mindestens 2 und höchstens")
        expect(page.locator("#field-custodians")).to_have_value("\n".join(CUSTODIANS))
        assert organisation_row(server) == (0, False)

        page.fill("#field-threshold", "2")
        page.get_by_role("button", name="Schlüssel erzeugen und Anteile anzeigen").click()
        expect(page.locator("h1")).to_have_text("Wiederherstellungsanteile")
        expect(page.locator("main [role=status]")).to_contain_text("2 von 3 Anteilen öffnen gemeinsam")
        sheets = page.locator(".share-sheet")
        expect(sheets).to_have_count(3)
        shares = []
        for sheet, custodian in zip(sheets.all(), CUSTODIANS, strict=True):
            expect(sheet).to_contain_text(custodian)
            expect(sheet).to_contain_text(ORGANISATION)
            shares.append(sheet.locator(".share-code").inner_text())
        assert len(set(shares)) == 3
        for share in shares:
            parse_share(share)  # a well-formed share with its check digits, as a custodian will type it
        no_horizontal_scroll(page, 1280)
        assert organisation_row(server) == (1, True)
        assert re.search(rf"{SLUG}\s+key: yes", rueckhalt(server, "org", "list"))

        # Now a Bremen report reaches the organisation, and its lead opens it from the inbox.
        assert file_bremen_report(mayor, server) == 201
        expect(mayor.locator(".receipt__code")).to_be_visible()
        page.goto(f"{server.url}/intern/faelle")
        rows = page.locator(".cases__link")
        expect(rows).to_have_count(1)
        rows.first.click()
        expect(page.locator("main")).to_contain_text(DESCRIPTION)
        case_page = page.url

        # Granting an account still on its initial password is refused, and nothing is stored.
        page.goto(organisation_page)
        expect(page.locator(".members tbody tr")).to_have_count(1)
        page.fill("#field-email", counsellor.email)
        page.get_by_role("button", name="Zugang erteilen").click()
        expect(page.locator(".error-summary")).to_contain_text(NO_OWN_PASSWORD)
        expect(page.locator("#field-email-error")).to_contain_text(NO_OWN_PASSWORD)
        expect(page.locator("#field-email")).to_have_value(counsellor.email)
        expect(page.locator(".members tbody tr")).to_have_count(1)
        # The language link of the refusal leads back to the organisation's page, not to the start page.
        expect(page.locator("a.lang-switch")).to_have_attribute(
            "href", f"{urlsplit(organisation_page).path}?lang=en"
        )
        assert untranslated(page), "the check below sees German where there is German"
        assert stored_access(server, counsellor.email) == (0, 0)
        assert organisation_row(server) == (1, True)

        # The counsellor signs in once and sets an own password; the case is still closed to them.
        colleague = phone.new_page()
        first_sign_in(colleague, server, counsellor, COUNSELLOR_PASSWORD)
        expect(colleague.locator("main")).to_contain_text("Sie gehören noch keiner Organisation an")
        closed = colleague.goto(case_page)
        assert closed is not None
        assert closed.status == 404

        # Now the lead grants them access in the browser.
        page.goto(organisation_page)
        page.fill("#field-email", counsellor.email)
        expect(page.locator("#role-counsellor")).to_be_checked()
        page.get_by_role("button", name="Zugang erteilen").click()
        expect(page).to_have_url(f"{organisation_page}?notice=granted")
        expect(page.locator("main [role=status]")).to_contain_text("Der Zugang ist erteilt")
        member = page.locator(".members tbody tr", has_text=counsellor.email)
        expect(member).to_contain_text("ja")
        assert stored_access(server, counsellor.email) == (1, 1)

        # The counsellor opens the case in their own browser, from their inbox.
        colleague.goto(f"{server.url}/intern/faelle")
        colleague_rows = colleague.locator(".cases__link")
        expect(colleague_rows).to_have_count(1)
        colleague_rows.first.click()
        expect(colleague).to_have_url(case_page)
        expect(colleague.locator("main")).to_contain_text(DESCRIPTION)
        no_horizontal_scroll(colleague, 360)

        # The lead revokes the access in the browser: a new key epoch begins.
        expect(page.locator("main")).to_contain_text("Schlüsselgeneration 1")
        member.get_by_role("button", name="Zugang entziehen").click()
        expect(page).to_have_url(f"{organisation_page}?notice=revoked")
        expect(page.locator("main [role=status]")).to_contain_text("Der Zugang ist entzogen")
        expect(page.locator(".members tbody tr")).to_have_count(1)
        expect(page.locator(".members")).not_to_contain_text(counsellor.email)
        expect(page.locator("main")).to_contain_text("Schlüsselgeneration 2")
        assert organisation_row(server) == (2, True)
        assert stored_access(server, counsellor.email) == (0, 0)

        # The counsellor's very next request cannot open the case, and the inbox no longer lists it.
        gone = colleague.reload()
        assert gone is not None
        assert gone.status == 404
        colleague.goto(f"{server.url}/intern/faelle")
        expect(colleague.locator(".cases__link")).to_have_count(0)

        # The lead still opens it (the old epoch stays for the cases wrapped to it).
        page.goto(case_page)
        expect(page.locator("main")).to_contain_text(DESCRIPTION)

        # The same pages in English, through the language link; nothing untranslated on them.
        page.goto(f"{server.url}/intern/organisationen")
        page.locator("a.lang-switch").click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("h1")).to_have_text("Organisations")
        assert untranslated(page) == []
        page.get_by_role("link", name=re.compile(re.escape(ORGANISATION))).click()
        expect(page.get_by_role("heading", name="Members")).to_be_visible()
        expect(page.locator("main")).to_contain_text("Key generation 2")
        assert untranslated(page) == []
        page.fill("#field-email", counsellor.email)
        page.locator("#role-lead").check()
        page.get_by_role("button", name="Grant access").click()
        expect(page).to_have_url(f"{organisation_page}?notice=granted")
        expect(page.locator("main [role=status]")).to_contain_text("Access granted")
        expect(page.locator(".members tbody tr", has_text=counsellor.email)).to_contain_text("Lead")
        assert untranslated(page) == []
        page.fill("#field-email", "niemand@bremen.rueckhalt.example")
        page.get_by_role("button", name="Grant access").click()
        expect(page.locator("#field-email-error")).to_contain_text(
            "There is no account with this e-mail address."
        )
        assert untranslated(page) == []
        page.fill("#field-custodians", "\n".join(CUSTODIANS))
        page.fill("#field-threshold", "3")
        page.get_by_role("button", name="Make new shares").click()
        expect(page.locator("h1")).to_have_text("Recovery shares")
        expect(page.locator(".share-sheet")).to_have_count(3)
        expect(page.locator("main [role=status]")).to_contain_text("3 of 3 shares open together")
        assert untranslated(page) == []
        assert organisation_row(server) == (3, True)
    finally:
        desk.close()
        phone.close()
        reporter.close()
