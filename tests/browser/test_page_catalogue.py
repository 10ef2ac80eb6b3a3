"""The page catalogue (tests/page_catalogue.py) names every GET route of the application.

No browser needed: the routes come from the application itself. A new GET route fails here until it is
either a page (and so gets axe-core in tests/browser/test_accessibility.py) or a named exception with its
reason.
"""

from __future__ import annotations

from pathlib import Path

from page_catalogue import ERROR_PAGES, NOT_PAGES, PAGES, REPORTER_PAGES, get_routes

from service.app import create_app
from service.config import Settings
from service.runtime import build_runtime


def test_every_get_route_is_a_checked_page_or_a_named_exception(tmp_path: Path) -> None:
    # Routes need no database: the runtime is built but never asked for a session.
    runtime = build_runtime(Settings(data_dir=tmp_path / "data"))
    try:
        routes = get_routes(create_app(runtime=runtime))
    finally:
        runtime.dispose()

    unlisted = routes - PAGES.keys() - NOT_PAGES.keys()
    assert not unlisted, f"GET routes in neither PAGES nor NOT_PAGES of tests/page_catalogue.py: {unlisted}"
    stale = (PAGES.keys() | NOT_PAGES.keys()) - routes
    assert not stale, f"catalogue entries without a route: {stale}"
    assert not PAGES.keys() & NOT_PAGES.keys()
    assert PAGES.keys() >= REPORTER_PAGES
    assert set(ERROR_PAGES) == {403, 404, 429}
