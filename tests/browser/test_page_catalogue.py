"""The page catalogue (tests/support/page_catalogue.py) names every GET route of the application.

No browser needed: the routes come from the application itself. A new GET route fails here until it is
either a page (and so gets axe-core in tests/browser/test_accessibility.py) or a named exception with its
reason.
"""

from __future__ import annotations

from pathlib import Path

from service.app import create_app
from service.config import Settings
from service.runtime import build_runtime
from tests.support.page_catalogue import (
    ERROR_PAGES,
    FORM_ANSWER_PAGES,
    NOT_PAGES,
    PAGES,
    REPORTER_PAGES,
    get_routes,
    routes_answering,
)


def test_every_get_route_is_a_checked_page_or_a_named_exception(tmp_path: Path) -> None:
    # Routes need no database: the runtime is built but never asked for a session.
    runtime = build_runtime(Settings(data_dir=tmp_path / "data"))
    try:
        app = create_app(runtime=runtime)
        routes = get_routes(app)
        posted = routes_answering(app, "POST")
    finally:
        runtime.dispose()

    unlisted = routes - PAGES.keys() - NOT_PAGES.keys()
    where = "tests/support/page_catalogue.py"
    assert not unlisted, f"GET routes in neither PAGES nor NOT_PAGES of {where}: {unlisted}"
    stale = (PAGES.keys() | NOT_PAGES.keys()) - routes
    assert not stale, f"catalogue entries without a route: {stale}"
    assert not PAGES.keys() & NOT_PAGES.keys()
    assert PAGES.keys() >= REPORTER_PAGES
    assert set(ERROR_PAGES) == {403, 404, 429}
    stale_answers = FORM_ANSWER_PAGES.keys() - posted
    assert not stale_answers, f"FORM_ANSWER_PAGES entries without a POST route: {stale_answers}"
