"""The report form with everything it loads stays under 100 KB: a threatened person on a weak mobile
connection (or a prepaid plan) must get it at once. Measured in the browser, first visit, empty cache."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Response

from tests.support.browser import context_for
from tests.support.stack import LiveServer

pytestmark = pytest.mark.browser

LIMIT_BYTES = 100_000  # 100 KB in decimal units, the stricter reading


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_report_form_weighs_less_than_100_kb(
    browser: Browser, live_server: LiveServer, lang: str, capsys: pytest.CaptureFixture[str]
) -> None:
    context = context_for(browser, 360)
    responses: list[Response] = []

    def note(response: Response) -> None:
        responses.append(response)

    context.on("response", note)
    page = context.new_page()
    try:
        # networkidle: the stylesheet, the icon and anything else the page asks for have arrived.
        page.goto(f"{live_server.url}/melden?lang={lang}", wait_until="networkidle")
        # What went over the wire per resource: headers and the body as transferred (after any compression).
        transferred: dict[str, tuple[int, int]] = {}
        for response in responses:
            sizes = response.request.sizes()
            transferred[response.url] = (sizes["responseHeadersSize"], sizes["responseBodySize"])
    finally:
        context.close()

    bodies = sum(body for _, body in transferred.values())
    total = sum(headers + body for headers, body in transferred.values())
    # The figure is the point of the test: shown in every run, not only when it fails.
    with capsys.disabled():
        print(
            f"\n/melden?lang={lang}: {total:,} bytes, {bodies:,} of them bodies, {len(transferred)} responses"
        )
        for url, (headers, body) in transferred.items():
            print(f"  {url.removeprefix(live_server.url)}: {body:,} + {headers:,} bytes of headers")
    assert any(url.endswith("/static/app.css") for url in transferred), "the stylesheet was counted"
    assert total < LIMIT_BYTES, f"/melden weighs {total:,} bytes with its resources"
