"""The PDF document of the service (fpdf2, DejaVu Sans embedded as a subset): rendered in memory, never
written to disk. The dossier, the letters and the knowledge feature's printable plans and articles are set
with it (service/dossier/render.py, service/knowledge/plan_render.py).

Text a person typed is set as text, never interpreted: fpdf2's ``multi_cell`` with markdown off draws the
characters it is given, and nothing here builds markup from them. Two kinds of characters are not drawn as
they are (service/display.py explains the danger): invisible format characters (bidi embeddings,
overrides, isolates, zero-width characters; Unicode category Cf) are left out of the display copy and named
below the text instead, so what a reader sees is all there is; a character the font has no glyph for (an
emoji) is shown as its code point, ``[U+1F52A]``, rather than silently dropped. The stored text is never
changed. fpdf2 applies no bidi algorithm here (no text shaping), so nothing can reorder the text around.

fpdf2 imports numpy when it is installed (for images): import this module on first use only
(service/pdf/output.py).
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.prefs import ViewerPreferences

from service.display import invisible_marks
from service.i18n import Translator

FONT_DIR = Path(__file__).parent / "fonts"
FONT = "DejaVu"
_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
LINE_MM = 5.0


@cache
def _covered() -> frozenset[int]:
    """The code points the regular font draws (the bold one covers the same for the text we set in it)."""
    font = TTFont(str(FONT_DIR / _FONT_FILES[""]), lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def printable(value: str) -> str:
    """A display copy of typed text that the PDF draws exactly: format characters left out (they are named
    separately), other control characters and characters without a glyph as ``[U+XXXX]``."""
    covered = _covered()
    out = []
    for char in value:
        if char == "\n":
            out.append(char)
        elif char == "\t":
            out.append("    ")
        elif unicodedata.category(char) == "Cf":
            continue
        elif unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn") or ord(char) not in covered:
            out.append(f"[U+{ord(char):04X}]")
        else:
            out.append(char)
    return "".join(out)


# The document language as the PDF catalogue's /Lang carries it (BCP 47): what a screen reader speaks in.
PDF_LANG = {"de": "de-DE", "en": "en"}


class Document(FPDF):
    """A4 with the embedded fonts and the metadata a reader and assistive technology use: the title (shown
    in the window instead of the file name, /DisplayDocTitle), the language (/Lang) and the creator.

    Not a tagged PDF: fpdf2 has no public API for a structure tree of headings and paragraphs (it tags only
    images with alternative text, links and outline entries, through a private method; py-pdf/fpdf2 issue
    355). Headings become outline entries (bookmarks) instead, so a reader can jump to them; the text is
    drawn in reading order in one column, which is the order a screen reader follows without tags.
    docs/pdf-accessibility.md says what is missing."""

    def __init__(self, footer_text: str, title: str, lang: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._footer_text = footer_text
        for style, name in _FONT_FILES.items():
            self.add_font(FONT, style, str(FONT_DIR / name))
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(18, 18, 18)
        self.set_title(title)
        self.set_lang(PDF_LANG.get(lang, lang))
        self.set_creator("Rückhalt")
        self.viewer_preferences = ViewerPreferences(display_doc_title=True)

    def bookmark(self, text: str, level: int) -> None:
        """An outline entry for a heading about to be drawn (fpdf2's public outline; it draws nothing)."""
        self.start_section(text, level=level, strict=False)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.cell(0, 4, f"{self._footer_text} · {self.page_no()}/{{nb}}", align="C")


class Writer:
    def __init__(self, pdf: Document) -> None:
        self.pdf = pdf

    def heading(self, text: str, size: float = 13, level: int = 1) -> None:
        self.pdf.ln(2)
        self.pdf.bookmark(text, level)
        self.pdf.set_font(FONT, "B", size)
        self.pdf.multi_cell(0, size * 0.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.ln(1)

    def para(self, text: str, size: float = 10) -> None:
        self.pdf.set_font(FONT, "", size)
        self.pdf.multi_cell(0, LINE_MM, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def row(self, label: str, value: str) -> None:
        """A label in bold and its value; the value may be typed text (pass it through ``printable``)."""
        pdf = self.pdf
        pdf.set_font(FONT, "B", 10)
        pdf.multi_cell(0, LINE_MM, label, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FONT, "", 10)
        pdf.set_x(pdf.l_margin + 4)
        pdf.multi_cell(0, LINE_MM, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def typed(self, label: str, value: str, t: Translator) -> None:
        """Text the reporter typed: drawn as text, its invisible characters named below it."""
        self.row(label, printable(value) or "–")
        marks = invisible_marks(value)
        if marks:
            self.pdf.set_x(self.pdf.l_margin + 4)
            self.para(t("dossier.invisible", marks=", ".join(marks)), size=8)


def render_letter(text: str, title: str, footer: str, headings: frozenset[str] = frozenset()) -> bytes:
    """Plain text set as PDF, line by line: the title and the ``headings`` in bold, each an outline entry.
    A letter (service/dossier/letters.py) or an article to print (service/knowledge/print_pages.py)."""
    pdf = Document(footer, title, "de")
    pdf.add_page()
    for line in text.rstrip("\n").split("\n"):
        shown = printable(line)
        if shown == title or shown in headings:
            pdf.bookmark(shown, 0 if shown == title else 1)
            pdf.set_font(FONT, "B", 12 if shown == title else 10.5)
        else:
            pdf.set_font(FONT, "", 10.5)
        if shown:
            pdf.multi_cell(0, LINE_MM, shown, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        else:
            pdf.ln(LINE_MM * 0.7)
    return bytes(pdf.output())
