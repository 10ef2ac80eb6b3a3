"""The stylesheet goes over the wire minified, with the same rules (service/assets.py)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from service.assets import minify_css

STYLESHEET = Path(__file__).resolve().parents[2] / "service" / "static" / "app.css"


def _rules(css: str) -> list[tuple[str, list[str]]]:
    """Selector and declarations of every rule, white space normalised, comments dropped."""
    css = re.sub(r"/\*.*?\*/", " ", css, flags=re.S)
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = [" ".join(item.split()) for item in body.split(";") if item.strip()]
        rules.append((" ".join(selector.split()), declarations))
    return rules


def test_minifying_drops_comments_and_space_but_keeps_every_rule() -> None:
    css = STYLESHEET.read_text(encoding="utf-8")
    small = minify_css(css)
    assert "/*" not in small
    assert len(small.encode()) < 0.85 * len(css.encode())
    assert _rules(small) == _rules(css)


def test_strings_and_descendant_combinators_are_kept() -> None:
    css = '.a  .b :focus { content: "  {x}; /* y */ " ; }\n/* gone */\n.c>.d{ margin : 0 }'
    small = minify_css(css)
    assert small == '.a .b :focus{content: "  {x}; /* y */ ";}.c>.d{margin : 0}'


def test_the_served_stylesheet_is_minified_and_revalidates(client: TestClient) -> None:
    first = client.get("/static/app.css")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/css")
    assert first.text == minify_css(STYLESHEET.read_text(encoding="utf-8"))
    again = client.get("/static/app.css", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/static/favicon.svg").status_code == 200
