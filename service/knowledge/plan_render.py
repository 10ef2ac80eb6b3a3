"""The printable plans as PDF: the self-check's result with its next steps, and the personal safety plan.

Set with the service's fpdf2 document (service/pdf/document.py: DejaVu Sans embedded, A4, page numbers),
in memory, never written to disk. Text the reader typed (steps, owners, the plan's lines) goes through
``printable`` like every typed text in the dossier: drawn as text, never interpreted. Imported on first use
only (by service/knowledge/selfcheck_pages.py), as the dossier renderer is.
"""

from __future__ import annotations

from datetime import date

from fpdf.enums import XPos, YPos

from service.i18n import Translator, format_date
from service.knowledge.safety_plan import SafetyPlan
from service.knowledge.selfcheck_view import Evaluation
from service.pdf.document import FONT, LINE_MM, Document, Writer, printable


class _LeftWriter(Writer):
    """The shared writer, set flush left: a plan is read line by line, and justified questions with long
    compounds stretch their words apart."""

    def para(self, text: str, size: float = 10) -> None:
        self.pdf.set_font(FONT, "", size)
        self.pdf.multi_cell(0, LINE_MM, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def row(self, label: str, value: str) -> None:
        pdf = self.pdf
        pdf.set_font(FONT, "B", 10)
        pdf.multi_cell(0, LINE_MM, label, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FONT, "", 10)
        pdf.set_x(pdf.l_margin + 4)
        pdf.multi_cell(0, LINE_MM, value, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _document(title: str, footer: str, lang: str) -> tuple[Document, Writer]:
    """A4 with the dossier's title, language and viewer metadata; the title is the first outline entry and
    every heading after it one more (docs/pdf-accessibility.md)."""
    pdf = Document(footer, title, lang)
    pdf.add_page()
    writer = _LeftWriter(pdf)
    writer.heading(title, size=17, level=0)
    return pdf, writer


def render_selfcheck(evaluation: Evaluation, lang: str, today: date) -> bytes:
    t = Translator(lang)
    pdf, writer = _document(t("selfcheck.plan.title"), t("selfcheck.plan.footer"), lang)
    writer.para(t("selfcheck.plan.made", day=format_date(today, lang)))
    writer.para(t("selfcheck.result", answered=evaluation.answered, total=evaluation.total) + ".")
    if evaluation.previous_label:
        writer.para(t("selfcheck.compared", month=evaluation.previous_label))

    writer.heading(t("selfcheck.steps.title"))
    if evaluation.steps:
        for number, (step, owner) in enumerate(evaluation.steps, start=1):
            writer.row(
                f"{number}. {printable(step) or '–'}",
                t("selfcheck.steps.owner_is", owner=printable(owner) or "–"),
            )
    else:
        writer.para(t("selfcheck.steps.none"))

    for area in evaluation.areas:
        writer.heading(area.title)
        writer.para(
            t(
                "selfcheck.area.counts",
                answered=area.answered,
                total=len(area.questions),
                yes=area.counts["yes"],
                partly=area.counts["partly"],
                no=area.counts["no"],
            ),
            size=9,
        )
        for q in area.questions:
            answer = q.answer_label
            if q.changed:
                answer = t("selfcheck.answer.changed", now=q.answer_label, before=q.previous_label)
            writer.row(q.text, answer)
            if q.advice:
                pdf.set_x(pdf.l_margin + 4)
                writer.para(q.advice, size=9.5)
                pdf.set_x(pdf.l_margin + 4)
                writer.para(t("selfcheck.plan.article", title=q.article_title, url=q.article_url), size=8.5)
            pdf.ln(1)
    writer.para(t("selfcheck.plan.note"), size=8.5)
    return bytes(pdf.output())


def render_safety_plan(plan: SafetyPlan, lang: str, today: date) -> bytes:
    t = Translator(lang)
    pdf, writer = _document(t("safety.plan.title"), t("safety.plan.footer"), lang)
    writer.para(t("safety.plan.made", day=format_date(today, lang)))
    writer.para(t("safety.emergency"))
    if plan.fields:
        writer.heading(t("safety.plan.fields"))
        for label, value in plan.fields:
            writer.row(label, printable(value))
    for part in plan.parts:
        writer.heading(part.title)
        for item in part.items:
            refs = [t("safety.plan.article", title=title) for title, _ in item.articles]
            refs += [f"[{n}]" for n in item.sources]
            writer.para(f"• {item.text}")
            if refs:
                pdf.set_x(pdf.l_margin + 4)
                writer.para(" · ".join(refs), size=8.5)
            pdf.ln(1)
    writer.heading(t("safety.sources"))
    writer.para(t("safety.sources.articles"), size=9)
    for number, (title, url) in enumerate(plan.sources, start=1):
        writer.para(f"[{number}] {title}: {url}", size=9)
    writer.para(t("safety.plan.stand", day=format_date(plan.stand, lang)), size=8.5)
    return bytes(pdf.output())
