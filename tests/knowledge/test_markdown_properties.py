"""Knowledge articles are Markdown from a coordinator's browser, treated as untrusted: whatever is written,
the HTML has only the allowed tags and attributes, no script, no event handler, and no link that is not
http(s) or the service's own; and rendering never fails."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from service.knowledge.render import plain_text, render_markdown

ALLOWED = {
    "p", "h2", "h3", "h4", "ul", "ol", "li", "strong", "em", "blockquote", "a", "code", "pre", "br", "hr",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "rel"}, "th": {"align"}, "td": {"align"}}
HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<iframe src=//example.org></iframe>",
    "<style>body{display:none}</style>",
    '<a href="javascript:alert(1)" onclick="x()">a</a>',
    "[a](javascript:alert(1))",
    "[a](JaVaScRiPt:alert(1))",
    "[a](&#106;avascript:alert(1))",
    "[a](java\tscript:alert(1))",
    "[a](data:text/html,<script>alert(1)</script>)",
    "[a](vbscript:msgbox)",
    "![bild](http://example.org/x.png)",
    "[ok](https://example.org) [own](/wissen/strafantrag)",
    "<http://example.org>",
    "```\n<script>\n```",
    "| a | b |\n|:--|--:|\n| <b>x</b> | [c](javascript:c) |",
    "> zitat\n\n**fett** _kursiv_ `code`",
    '"><img src=x onerror=alert(2)>',
    "\n\n",
    "# Titel\n## Abschnitt",
]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


markdown = st.lists(st.sampled_from(HOSTILE) | st.text(max_size=40), max_size=8).map("\n".join)


@settings(database=None, deadline=None, max_examples=300)
@given(markdown)
def test_whatever_is_written_only_safe_html_comes_out(text: str) -> None:
    html = render_markdown(text)
    parser = Tags()
    parser.feed(html)
    for tag, attrs in parser.seen:
        assert tag in ALLOWED, tag
        for name, value in attrs:
            assert name in ATTRIBUTES.get(tag, set()), (tag, name)
            if name == "href":
                target = "".join((value or "").split()).lower()
                assert target.startswith(("http://", "https://", "/", "#")) or ":" not in target, target
    assert "<script" not in html.lower()
    plain = plain_text(text)
    assert "<script" not in plain.lower()
    assert "<img" not in plain.lower()
