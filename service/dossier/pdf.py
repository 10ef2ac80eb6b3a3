"""The PDFs of the dossier and the letters, as the pages use them: rendered on first use, streamed.

fpdf2 imports numpy when it is installed (for images), and the api process keeps the statistics engine's
libraries out of its memory (tests/core/test_imports.py): so ``service.dossier.render`` is imported when a
PDF is first asked for, not when the pages are loaded.
"""

from __future__ import annotations

from collections.abc import Iterator

from starlette.responses import StreamingResponse

from service.db import utcnow
from service.dossier.service import Dossier
from service.i18n import LOCAL_ZONE
from service.web import download

STREAM_CHUNK_BYTES = 64 * 1024


def render(dossier: Dossier, lang: str) -> bytes:
    """The dossier as a PDF (``service.dossier.render.render``)."""
    from service.dossier import render as renderer

    return renderer.render(dossier, lang)


def render_letter(text: str, title: str, footer: str, headings: frozenset[str] = frozenset()) -> bytes:
    """A letter's plain text as a PDF (``service.dossier.render.render_letter``)."""
    from service.dossier import render as renderer

    return renderer.render_letter(text, title, footer, headings)


def dossier_download(document: bytes) -> StreamingResponse:
    """The rendered dossier as a download, streamed in pieces (it exists in memory only, never as a file)."""
    name = f"Dossier-{utcnow().astimezone(LOCAL_ZONE).date().isoformat()}.pdf"
    return download(name, "application/pdf", len(document), chunks(document))


def chunks(document: bytes) -> Iterator[bytes]:
    """The PDF in pieces for a streamed response (it exists in memory only, never as a file)."""
    view = memoryview(document)
    for start in range(0, len(view), STREAM_CHUNK_BYTES):
        yield bytes(view[start : start + STREAM_CHUNK_BYTES])
