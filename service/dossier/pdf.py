"""The PDF of the dossier, as the pages use it: rendered on first use, streamed.

fpdf2 imports numpy when it is installed (for images), and the api process keeps the statistics engine's
libraries out of its memory (tests/core/test_imports.py): so ``service.dossier.render`` is imported when a
PDF is first asked for, not when the pages are loaded. The letters use ``service.pdf.output``.
"""

from __future__ import annotations

from starlette.responses import StreamingResponse

from service.db import utcnow
from service.dossier.service import Dossier
from service.i18n import LOCAL_ZONE
from service.pdf.output import chunks
from service.web import download


def render(dossier: Dossier, lang: str) -> bytes:
    """The dossier as a PDF (``service.dossier.render.render``)."""
    from service.dossier import render as renderer

    return renderer.render(dossier, lang)


def dossier_download(document: bytes) -> StreamingResponse:
    """The rendered dossier as a download, streamed in pieces (it exists in memory only, never as a file)."""
    name = f"Dossier-{utcnow().astimezone(LOCAL_ZONE).date().isoformat()}.pdf"
    return download(name, "application/pdf", len(document), chunks(document))
