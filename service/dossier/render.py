"""The dossier as a PDF, set with the service's PDF document (service/pdf/document.py: fpdf2, DejaVu Sans
embedded, typed text drawn as text through ``printable``): rendered in memory, never written to disk.
"""

from __future__ import annotations

from fpdf.enums import XPos, YPos

from service.dossier.service import Dossier, EvidenceFile
from service.i18n import Translator, format_date, format_datetime, format_size
from service.pdf.document import FONT, LINE_MM, Document, Writer, printable


def _file_lines(writer: Writer, items: list[EvidenceFile], t: Translator, lang: str) -> None:
    for item in items:
        pdf = writer.pdf
        pdf.set_font(FONT, "B", 10)
        # The name the evidence ZIP gives the file (its number here and a name safe to unpack).
        shown = printable(item.listed_name or item.name)
        pdf.multi_cell(0, LINE_MM, shown, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FONT, "", 9)
        lines = [
            t(
                "dossier.file.meta",
                type=item.content_type,
                size=format_size(item.size_bytes, lang),
                received=format_datetime(item.received_at, lang),
            ),
            f"SHA-256: {item.sha256}",
        ]
        if not item.hash_sealed:
            lines.append(t("dossier.file.hashed_now"))
        for line in lines:
            pdf.set_x(pdf.l_margin + 4)
            pdf.multi_cell(0, 4.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1)


def render(dossier: Dossier, lang: str) -> bytes:
    """The dossier as PDF bytes, in ``lang`` (de or en)."""
    t = Translator(lang)
    pdf = Document(
        t("dossier.footer", at=format_datetime(dossier.generated_at, lang)), t("dossier.title"), t.lang
    )
    pdf.add_page()
    writer = Writer(pdf)
    writer.heading(t("dossier.title"), size=17, level=0)
    writer.para(
        t(
            "dossier.intro",
            created=format_date(dossier.case_created_at, lang),
            at=format_datetime(dossier.generated_at, lang),
        )
    )
    writer.para(t("dossier.times"), size=9)

    writer.heading(t("dossier.holders.heading"))
    if dossier.holders:
        for holder in dossier.holders:
            writer.para(f"• {printable(holder.name)} – {t(f'dossier.holder.{holder.state}')}")
    else:
        writer.para(t("dossier.holders.none"))

    writer.heading(t("dossier.incidents.heading"))
    for incident in dossier.incidents:
        writer.heading(t("dossier.incident.title", n=incident.seq), size=11, level=2)
        writer.row(t("dossier.incident.received"), format_datetime(incident.received_at, lang))
        occurred = format_date(incident.occurred_on, lang) if incident.occurred_on else t("dossier.unknown")
        writer.row(t("dossier.incident.occurred"), occurred)
        writer.row(
            t("dossier.incident.types"), "\n".join(f"{item.code} – {item.label}" for item in incident.types)
        )
        writer.row(t("dossier.incident.channel"), f"{incident.channel.code} – {incident.channel.label}")
        for label, value in (
            ("dossier.incident.place", incident.place),
            ("dossier.incident.platform", incident.platform),
            ("dossier.incident.url", incident.url),
        ):
            if value:
                writer.typed(t(label), value, t)
        writer.typed(t("dossier.incident.description"), incident.description, t)
        writer.pdf.set_font(FONT, "B", 10)
        writer.pdf.multi_cell(0, LINE_MM, t("dossier.incident.files"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if incident.files:
            _file_lines(writer, incident.files, t, lang)
        else:
            writer.para(t("dossier.files.none"))
        writer.pdf.ln(2)

    if dossier.message_files:
        writer.heading(t("dossier.message_files.heading"))
        _file_lines(writer, dossier.message_files, t, lang)

    writer.heading(t("dossier.hashes.heading"))
    writer.para(t("dossier.hashes.explained"), size=9)
    writer.para(t("evidence_zip.in_dossier"), size=9)
    return bytes(pdf.output())
