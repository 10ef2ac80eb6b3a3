"""Markdown to safe HTML: markdown-it-py (CommonMark, raw HTML off) and nh3 (ammonia) as a second lock.

Articles are written by coordinators in the browser; a coordinator's account can be taken over, so what
they write is treated as untrusted: no raw HTML, no scripts, no images, no inline styles, links only to
http(s) and the service's own pages, and every outside link opens without passing on where it came from.
"""

from __future__ import annotations

import functools

import nh3
from markdown_it import MarkdownIt

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

_TAGS = {
    "p", "h2", "h3", "h4", "ul", "ol", "li", "strong", "em", "blockquote", "a", "code", "pre", "br", "hr",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


# Both are pure functions of the text, and /wissen is public: a search rendered every article's Markdown
# anew for each query (and an article page its own for each view). Cached by text, so an edited article
# (a new version, a new text) is rendered once more; bounded, so no sequence of edits can grow it.
@functools.lru_cache(maxsize=512)
def render_markdown(text: str) -> str:
    html = _MD.render(text)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes={"a": {"href"}, "th": {"align"}, "td": {"align"}},
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow",
    )


@functools.lru_cache(maxsize=512)
def plain_text(text: str) -> str:
    """The article's words without markup, for search."""
    return nh3.clean(_MD.render(text), tags=set())
