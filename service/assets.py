"""The stylesheet as it goes over the wire: comments and runs of white space removed.

``service/static/app.css`` stays readable, with the comments that say why a rule is there; a threatened mayor
on a phone at night should not download them. The report form's page weight (HTML, stylesheet and icon) has a
budget of 100 KB (tests/browser/test_page_weight.py), and the comments alone are about a seventh of the
stylesheet. Compression is no way out for the pages: a compressed response that reflects input beside a
secret (the CSRF and form tokens) leaks the secret to someone who can watch its length (BREACH).

The minifier only drops what CSS ignores: comments, and white space that is not inside a string and sits next
to a brace, a semicolon or another white space character. It never removes the space of a descendant
combinator (``.a .b``, ``.a :focus``) nor touches ``url(...)`` or strings.
"""

from __future__ import annotations

import hashlib
import os
import re

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# A string, a comment, or a run of white space; strings are kept as they are.
_TOKEN = re.compile(r"""("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')|(/\*.*?\*/)|(\s+)""", re.S)
_AROUND = re.compile(r"\s*([{};])\s*")


def minify_css(text: str) -> str:
    parts: list[str] = []
    strings: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        parts.append(text[position : match.start()])
        string = match.group(1)
        if string is not None:
            # Kept aside so that the brace rule below cannot reach into it.
            strings.append(string)
            parts.append(f"\x00{len(strings) - 1}\x00")
        else:
            # A comment or white space: one space, which the rules below remove where CSS allows.
            parts.append(" ")
        position = match.end()
    parts.append(text[position:])
    squeezed = re.sub(r" {2,}", " ", "".join(parts))
    squeezed = _AROUND.sub(r"\1", squeezed).strip()
    return re.sub(r"\x00(\d+)\x00", lambda m: strings[int(m.group(1))], squeezed)


class AssetFiles(StaticFiles):
    """StaticFiles that serves stylesheets minified (computed once per file version, kept in memory)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._css: dict[str, tuple[float, bytes, str]] = {}

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not path.endswith(".css"):
            return await super().get_response(path, scope)
        full_path, stat = self.lookup_path(path)
        if stat is None or not os.path.isfile(full_path):
            return await super().get_response(path, scope)
        cached = self._css.get(full_path)
        if cached is None or cached[0] != stat.st_mtime:
            with open(full_path, encoding="utf-8") as handle:
                body = minify_css(handle.read()).encode()
            cached = (stat.st_mtime, body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
            self._css[full_path] = cached
        _, body, etag = cached
        headers = {"etag": etag}
        for name, value in scope.get("headers", []):
            if name == b"if-none-match" and etag in value.decode("latin-1"):
                return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/css", headers=headers)
