"""What every letter (service/dossier/letters.py) is made of: the kinds, their titles and file names, the
lines set as headings, the typed fields and their limits, the sources, and the pieces of text the letters
share (typed values isolated, the incidents, the evidence files with their hashes, the deadline notes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from service.display import plain_isolated
from service.dossier.service import Coded, Dossier, DossierIncident, EvidenceFile
from service.i18n import format_date, format_datetime, format_size

SEPARATOR = "—" * 40
DRAFT_FOOTER = "Entwurf zum Prüfen – keine Rechtsberatung"
NOT_ADVICE = (
    "- Dies ist ein Entwurf zum Prüfen, keine Rechtsberatung. Prüfen Sie jede Angabe, ergänzen Sie, was "
    "fehlt, streichen Sie, was nicht passt, und lassen Sie sich im Zweifel beraten."
)


class LetterKind(StrEnum):
    strafanzeige = "strafanzeige"
    auskunftssperre = "auskunftssperre"
    plattform = "plattform"
    strafantrag_dienst = "strafantrag_dienst"
    hausverbot = "hausverbot"


# The heading of each letter (bold in the PDF, its document title) and the start of its file name.
TITLES = {
    LetterKind.strafanzeige: "Strafanzeige und Strafantrag",
    LetterKind.auskunftssperre: "Antrag auf Eintragung einer Auskunftssperre nach § 51 Abs. 1 BMG",
    LetterKind.plattform: "Meldung rechtswidriger Inhalte nach Art. 16 DSA",
    LetterKind.strafantrag_dienst: "Strafantrag der oder des Dienstvorgesetzten (§ 194 Abs. 3, § 77a StGB)",
    LetterKind.hausverbot: "Hausverbot",
}
FILE_STEMS = {
    LetterKind.strafanzeige: "Strafanzeige-Entwurf",
    LetterKind.auskunftssperre: "Auskunftssperre-Entwurf",
    LetterKind.plattform: "Plattform-Meldung-Entwurf",
    LetterKind.strafantrag_dienst: "Strafantrag-Dienstvorgesetzte-Entwurf",
    LetterKind.hausverbot: "Hausverbot-Entwurf",
}

# Lines set as headings (bold, an outline entry) in the PDF, besides each letter's title.
HEADINGS = frozenset(
    {
        "Hinweise zu diesem Entwurf (nicht Teil des Schreibens)",
        "Begründung",
        "Anlage: Vorfälle und Beweisdateien",
        "1. Genauer elektronischer Speicherort (Art. 16 Abs. 2 Buchst. b DSA)",
        "2. Begründung, warum die Inhalte rechtswidrig sind (Art. 16 Abs. 2 Buchst. a DSA)",
        "3. Name und E-Mail-Adresse der meldenden Person (Art. 16 Abs. 2 Buchst. c DSA)",
        "4. Erklärung (Art. 16 Abs. 2 Buchst. d DSA)",
        "I. Sachverhalt",
        "II. Rechtliche Würdigung",
        "Rechtsbehelfsbelehrung",
    }
)

# The typed fields and their limits (characters). Every one is optional: empty fields become placeholders.
FIELD_LIMITS = {
    "letter_name": 200,
    "letter_address": 500,
    "letter_reference": 100,
    "letter_recipient": 500,
    "letter_household": 2000,
    "letter_email": 254,
    "letter_urls": 4000,
    "letter_explanation": 5000,
    "letter_official": 300,
    "letter_premises": 300,
    "letter_until": 10,
}

SOURCES = {
    "bmg51": "https://www.gesetze-im-internet.de/bmg/__51.html",
    "bmg50": "https://www.gesetze-im-internet.de/bmg/__50.html",
    "dsa": "https://eur-lex.europa.eu/legal-content/DE/TXT/?uri=CELEX:32022R2065",
    "stgb194": "https://www.gesetze-im-internet.de/stgb/__194.html",
    "stgb77a": "https://www.gesetze-im-internet.de/stgb/__77a.html",
    "stgb77b": "https://www.gesetze-im-internet.de/stgb/__77b.html",
    "stgb230": "https://www.gesetze-im-internet.de/stgb/__230.html",
}


@dataclass(frozen=True)
class Typed:
    """Typed on the page for one letter; empty fields become placeholders to fill in by hand."""

    name: str = ""
    address: str = ""
    reference: str = ""
    recipient: str = ""
    household: str = ""
    email: str = ""
    urls: str = ""
    explanation: str = ""
    official: str = ""
    premises: str = ""
    # The last day of a Hausverbot, as the date input sends it (checked by the page).
    until: date | None = None


def typed_value(value: str, placeholder: str) -> str:
    return plain_isolated(value.strip()) if value.strip() else placeholder


def typed_lines(value: str) -> list[str]:
    """The non-empty lines of a typed field, each isolated."""
    return [plain_isolated(line.strip()) for line in value.splitlines() if line.strip()]


def when(incident: DossierIncident) -> str:
    return format_date(incident.occurred_on, "de") if incident.occurred_on else "Datum nicht angegeben"


def type_line(types: Iterable[Coded], *, statutes: bool) -> str:
    parts = []
    for item in types:
        shown = f"{item.label} ({item.code}"
        if statutes and item.statute:
            shown += f"; in Betracht kommt {item.statute}"
        parts.append(shown + ")")
    return "; ".join(parts)


def file_lines(item: EvidenceFile) -> list[str]:
    """A file under the name of the dossier's list and the ZIP's entry, with its hash."""
    size = format_size(item.size_bytes, "de")
    return [
        f"- {plain_isolated(item.listed_name or item.name)} ({item.content_type}, {size})",
        f"  SHA-256: {item.sha256}",
    ]


def incident_lines(number: int, incident: DossierIncident, *, files: bool, statutes: bool) -> list[str]:
    lines = [f"{number}. Vorfall vom {when(incident)}"]
    lines.append("Art: " + type_line(incident.types, statutes=statutes))
    lines.append(f"Weg: {incident.channel.label}")
    for label, value in (("Ort", incident.place), ("Plattform", incident.platform), ("Link", incident.url)):
        if value:
            lines.append(f"{label}: {plain_isolated(value)}")
    lines.append("Schilderung:")
    lines.append(plain_isolated(incident.description))
    if files and incident.files:
        lines.append("Beweismittel (als Dateien beigefügt, mit SHA-256-Prüfsumme):")
        for item in incident.files:
            lines += file_lines(item)
    lines.append("")
    return lines


def message_file_lines(dossier: Dossier) -> list[str]:
    if not dossier.message_files:
        return []
    lines = ["Weitere Beweismittel (als Dateien beigefügt, mit SHA-256-Prüfsumme):"]
    for item in dossier.message_files:
        lines += file_lines(item)
    return [*lines, ""]


def date_line(today: date) -> list[str]:
    return [f"[Ort], {format_date(today, 'de')}", ""]


def reference_lines(reference: str, label: str = "Aktenzeichen") -> list[str]:
    return [f"{label}: {plain_isolated(reference.strip())}", ""] if reference.strip() else []


def deadline_notes(dossier: Dossier, subject: str) -> list[str]:
    """Per incident: the day its Strafantrag was filed where the proceedings record one (then no deadline is
    counted: it would only alarm), else the last day of the period where the case allows counting one."""
    lines = []
    for number, incident in enumerate(dossier.incidents, start=1):
        if incident.application_on is not None:
            whose = f" {subject}" if subject else ""
            lines.append(
                f"- Nach den Angaben im Fall wurde der Strafantrag{whose} für Vorfall {number} am "
                f"{format_date(incident.application_on, 'de')} gestellt; eine Frist ist dafür hier nicht "
                "berechnet."
            )
        elif incident.complaint_ends_on is not None:
            lines.append(
                f"- Nach den Angaben im Fall endet die Frist {subject} für Vorfall {number} am "
                f"{format_date(incident.complaint_ends_on, 'de')}."
            )
    return lines


def applications_filed(dossier: Dossier) -> list[str]:
    """In the Strafanzeige itself: the incidents whose Strafantrag the proceedings record as filed, with the
    day (the authority can find it; the letter repeats the application for the others)."""
    return [
        f"Wegen Vorfall {number} wurde bereits am {format_date(incident.application_on, 'de')} "
        "Strafantrag gestellt."
        for number, incident in enumerate(dossier.incidents, start=1)
        if incident.application_on is not None
    ]


def made(dossier: Dossier, typed_fields: str) -> str:
    return (
        f"- Erstellt am {format_datetime(dossier.generated_at, 'de')} aus dem Fall bei Rückhalt; "
        f"{typed_fields} wurden nicht gespeichert."
    )


def evidence_annex(dossier: Dossier) -> list[str]:
    """The incidents and every evidence file with its hash, as the dossier lists them."""
    lines = ["Anlage: Vorfälle und Beweisdateien", ""]
    for number, incident in enumerate(dossier.incidents, start=1):
        received = format_datetime(incident.received_at, "de")
        lines.append(f"{number}. Vorfall vom {when(incident)} (bei Rückhalt eingegangen am {received})")
        lines.append("Art: " + type_line(incident.types, statutes=False))
        for item in incident.files:
            lines += file_lines(item)
        if not incident.files:
            lines.append("- keine Dateien")
        lines.append("")
    if dossier.message_files:
        lines.append("Mit Nachrichten geschickte Dateien:")
        for item in dossier.message_files:
            lines += file_lines(item)
        lines.append("")
    lines.append(
        "Die Dateien liegen unter diesen Namen bei (ZIP-Archiv „Beweisdateien“ mit der Datei SHA256SUMS). "
        "Die Prüfsumme (SHA-256) zeigt, dass eine Datei unverändert ist."
    )
    return [*lines, ""]


def joined(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"
