"""Helpers of the browser tests (tests/browser): contexts with JavaScript off, axe-core, the TOTP phone,
the operator's command line against the live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, Route

from service.crypto import totp_code, totp_secret_from_base32
from service.crypto.totp import TOTP_STEP_SECONDS, totp_step
from service.hardening import CSP
from service.i18n import catalogue
from tests.support.stack import LiveServer

ROOT = Path(__file__).resolve().parents[2]

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
        # The server accepts one step of drift, no more: a third sign-in within one step waits for the next.
        while step > totp_step(time.time()) + 1:
            time.sleep(0.5)
        self.last_step = step
        return totp_code(self.secret, step * TOTP_STEP_SECONDS)


_PHONES: dict[str, Authenticator] = {}


def phone_for(account: dict[str, Any]) -> Authenticator:
    """One phone per account for the whole session: every module signs in to the same live server, whose
    replay refusal remembers the last step of each account across modules."""
    return _PHONES.setdefault(account["email"], Authenticator(account["totp_secret"]))


def rueckhalt(server: LiveServer, *args: str) -> str:
    """One of the operator's commands (``rueckhalt ...``) on the live server's data folder; its output."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**os.environ, "RUECKHALT_DATA_DIR": str(server.data_dir)},
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@dataclass(frozen=True)
class NewAccount:
    """A staff account as ``rueckhalt user create`` made it: what the operator hands over."""

    email: str
    initial_password: str
    phone: Authenticator


def create_account(server: LiveServer, email: str, name: str) -> NewAccount:
    """A staff account made by the operator, with the initial password and the secret it printed once."""
    printed = rueckhalt(server, "user", "create", email, "--name", name)
    password = re.search(r"INITIAL PASSWORD.*\n\s+(\S+)", printed)
    secret = re.search(r"secret: (\S+)", printed)
    assert password, "the command prints the initial password"
    assert secret, "the command prints the two-factor secret"
    return NewAccount(email, password.group(1), phone_for({"email": email, "totp_secret": secret.group(1)}))


def untranslated(page: Page) -> list[str]:
    """What of the page's visible text is not English: a key of the catalogues shown as itself, or a German
    text of them (the English catalogue lacks it, so the German one stood in)."""
    text = page.locator("body").inner_text()
    german, english = catalogue("de"), catalogue("en")
    keys = [key for key in german if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", text)]
    fallbacks = [
        german[key]
        for key in german
        # Long enough to be a sentence or a label of its own, and with no placeholder to fill.
        if german[key] != english.get(key)
        # A German name the English text quotes on purpose ("Easy-to-read German (Leichte Sprache)").
        and german[key] not in english.get(key, "")
        and len(german[key]) >= 12
        and "{" not in german[key]
        and german[key] in text
    ]
    return keys + fallbacks


_WIDER_THAN_THE_VIEWPORT = """width => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > width + 0.5)
    .slice(0, 8)
    .map(e => [e.tagName.toLowerCase(), e.className, Math.round(e.getBoundingClientRect().right)])"""


def no_horizontal_scroll(page: Page, width: int) -> None:
    """The page, once loaded, fits the viewport's width. A click's navigation returns when the new page
    commits and an ``expect`` as soon as its text is there: the layout is measured after the load event, as
    the reader sees it, not while the stylesheet may still be on its way."""
    page.wait_for_load_state("load")
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    if scroll_width > width:
        wider = page.evaluate(_WIDER_THAN_THE_VIEWPORT, width)
        raise AssertionError(f"{page.url} scrolls sideways at {width} px ({scroll_width} px wide): {wider}")


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


def contrast_ratio(first: str, second: str) -> float:
    """WCAG contrast of two computed colours ("rgb(r, g, b)")."""

    def luminance(colour: str) -> float:
        channels = [int(value) / 255 for value in re.findall(r"\d+", colour)[:3]]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


# The background behind an element: the first ancestor that paints one.
BACKGROUND_OF = """element => {
  for (let node = element; node; node = node.parentElement) {
    const colour = getComputedStyle(node).backgroundColor;
    if (colour !== "rgba(0, 0, 0, 0)" && colour !== "transparent") return colour;
  }
  return "rgb(255, 255, 255)";
}"""


Scheme = Literal["light", "dark"]
OTHER_WIDTH = {360: 1280, 1280: 360}
REFLOW_WIDTH = 320


def route_pattern(template: str) -> re.Pattern[str]:
    """A route as declared (``/wissen/{slug}``) as a pattern for the path of an address."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts))


class PageChecker:
    """axe-core at WCAG 2.1 AA on every state a flow reaches with JavaScript off, and a record of them.

    A state is the page as the browser holds it (``page.content()``; with scripts off that is the HTML the
    server sent, a form's errors or a receipt included). axe needs JavaScript, so the state is replayed in
    contexts of its own with scripts on: at the same address, under the server's Content-Security-Policy,
    its stylesheet and icon fetched from the live server. Each state is checked twice: in the light scheme
    at the width the flow reached it, in the dark scheme at the other width (360 and 1280 px), both without
    horizontal scrolling (and at 320 px too). So every page is seen in both schemes and at both widths, with
    axe run twice.
    """

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        # One page per width and scheme, navigated from state to state: a new page per state costs more
        # than axe itself. ``_replaying`` is the state its route answers with.
        self._pages: dict[tuple[int, Scheme], Page] = {}
        self._replaying = ""
        # "GET /fall", "POST /melden", "error 404" -> the languages it was checked in.
        self.checked: dict[str, set[str]] = {}
        self.states = 0

    def check(self, page: Page, key: str) -> None:
        """The state ``page`` shows, as ``key``: "GET <route>" or "POST <route>" (the route as declared; the
        address must match it), or "error <status>"."""
        viewport = page.viewport_size
        assert viewport is not None
        page.wait_for_load_state()
        no_horizontal_scroll(page, viewport["width"])
        self.check_html(page.url, page.content(), key, viewport["width"])

    def check_html(self, url: str, html: str, key: str, width: int) -> None:
        method, _, route = key.partition(" ")
        if method in ("GET", "POST"):
            path = urlsplit(url).path
            assert route_pattern(route).fullmatch(path), f"{url} is not a page of {key}"
        else:
            assert method == "error", key
        plan: tuple[tuple[int, Scheme], ...] = ((width, "light"), (OTHER_WIDTH[width], "dark"))
        for replay_width, scheme in plan:
            self._axe(url, html, key, replay_width, scheme)
        lang = re.search(r'<html lang="([a-z]+)"', html)
        assert lang, f"{key}: the page names no language"
        self.checked.setdefault(key, set()).add(lang.group(1))
        self.states += 1

    def _replay_page(self, width: int, scheme: Scheme) -> Page:
        page = self._pages.get((width, scheme))
        if page is None:
            context = self._browser.new_context(
                viewport={"width": width, "height": 900}, color_scheme=scheme, locale="de-DE"
            )

            def replay(route: Route) -> None:
                if route.request.resource_type != "document":
                    route.continue_()
                    return
                route.fulfill(
                    status=200,
                    headers={"content-type": "text/html; charset=utf-8", "content-security-policy": CSP},
                    body=self._replaying,
                )

            context.route("**/*", replay)
            page = self._pages[(width, scheme)] = context.new_page()
        return page

    def _axe(self, url: str, html: str, key: str, width: int, scheme: Scheme) -> None:
        page = self._replay_page(width, scheme)
        self._replaying = html
        page.goto(url.split("#")[0])
        no_horizontal_scroll(page, width)
        if width == 360:
            # WCAG 1.4.10 (reflow) is measured at 320 CSS px: a little narrower than the phone we design for.
            page.set_viewport_size({"width": REFLOW_WIDTH, "height": 900})
            no_horizontal_scroll(page, REFLOW_WIDTH)
            page.set_viewport_size({"width": width, "height": 900})
        results = Axe().run(
            page, options={"runOnly": {"type": "tag", "values": WCAG_21_AA}, "resultTypes": ["violations"]}
        )
        assert results.violations_count == 0, f"{key} ({url}) at {width} px, {scheme}:\n" + (
            results.generate_report()
        )

    def close(self) -> None:
        for page in self._pages.values():
            page.context.close()
