"""Helpers of the browser tests (tests/browser): contexts with JavaScript off, axe-core, the TOTP phone."""

from __future__ import annotations

import time

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page

from service.crypto import totp_code, totp_secret_from_base32
from service.crypto.totp import TOTP_STEP_SECONDS, totp_step

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def context_for(browser: Browser, width: int) -> BrowserContext:
    return browser.new_context(
        java_script_enabled=False, viewport={"width": width, "height": 900}, locale="de-DE"
    )


class Authenticator:
    """The counsellor's phone: the server refuses a code of a step already used (replay), so a second
    sign-in within the same 30 seconds takes the next step's code, which the server accepts as drift."""

    def __init__(self, secret_base32: str) -> None:
        self.secret = totp_secret_from_base32(secret_base32)
        self.last_step = -1

    def code(self) -> str:
        step = max(totp_step(time.time()), self.last_step + 1)
        self.last_step = step
        return totp_code(self.secret, step * TOTP_STEP_SECONDS)


def no_horizontal_scroll(page: Page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def no_axe_violations(browser: Browser, signed_in: BrowserContext, url: str, width: int) -> None:
    """axe-core on the page at ``url``, as the signed-in user sees it.

    axe runs in a context of its own with JavaScript on (with scripts disabled its promise never settles);
    our pages ship no script, so they render there exactly as in the flow's context.
    """
    context = browser.new_context(
        viewport={"width": width, "height": 900}, storage_state=signed_in.storage_state()
    )
    try:
        page = context.new_page()
        page.goto(url)
        results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_21_AA}})
        assert results.violations_count == 0, results.generate_report()
    finally:
        context.close()
