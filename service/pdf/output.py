"""What pages import to make a PDF: plain text rendered on first use, and any PDF streamed in pieces.

fpdf2 imports numpy when it is installed (for images), and the api process keeps the statistics engine's
libraries out of its memory (tests/core/test_imports.py): so ``service.pdf.document`` is imported when a
PDF is first asked for, not when the pages are loaded.
"""

from __future__ import annotations

from collections.abc import Iterator

STREAM_CHUNK_BYTES = 64 * 1024


def render_letter(text: str, title: str, footer: str, headings: frozenset[str] = frozenset()) -> bytes:
    """Plain text as a PDF (``service.pdf.document.render_letter``)."""
    from service.pdf import document

    return document.render_letter(text, title, footer, headings)


def chunks(document: bytes) -> Iterator[bytes]:
    """The PDF in pieces for a streamed response (it exists in memory only, never as a file)."""
    view = memoryview(document)
    for start in range(0, len(view), STREAM_CHUNK_BYTES):
        yield bytes(view[start : start + STREAM_CHUNK_BYTES])
