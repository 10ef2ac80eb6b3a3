"""Letters filled from the decrypted case: today the Strafanzeige with Strafantrag (issue 19, first letter).

The wording follows the knowledge base's article "Strafanzeige und Strafantrag stellen" and the sources it
cites: § 158 StPO (where and how; identity and will to prosecute must be recognisable), § 77b StGB (three
months from knowing the deed and the perpetrator), § 406d StPO (the request to be informed), § 68 StPO (an
official or other summonable address instead of the private one). The letter is German whatever the page's
language: it goes to German authorities. It says it is a draft to check, not legal advice.

What the case does not hold (name, address, an Aktenzeichen) is typed on the page for this one letter and
never stored: it exists in the request and the answer only. Text the reporter typed is isolated line by
line for plain text (service/display.py); the PDF sets it as text (render.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from service.display import plain_isolated
from service.dossier.service import Dossier
from service.i18n import format_date, format_datetime, format_size

# Limits of the typed fields (a name, a postal address of a few lines, a reference).
MAX_NAME_CHARS = 200
MAX_ADDRESS_CHARS = 500
MAX_REFERENCE_CHARS = 100
SEPARATOR = "—" * 40


class LetterKind(StrEnum):
    strafanzeige = "strafanzeige"


@dataclass(frozen=True)
class Typed:
    """Typed on the page for one letter; empty fields become placeholders to fill in by hand."""

    name: str = ""
    address: str = ""
    reference: str = ""


def _typed(value: str, placeholder: str) -> str:
    return plain_isolated(value.strip()) if value.strip() else placeholder


def strafanzeige(dossier: Dossier, typed: Typed, today: date) -> str:
    """The Strafanzeige with Strafantrag as plain text (the PDF sets the same text)."""
    name = _typed(typed.name, "[Vor- und Nachname]")
    lines = [name, _typed(typed.address, "[Anschrift: Dienstanschrift oder andere ladungsfähige Anschrift]")]
    lines += [
        "",
        "An die",
        "[Polizeidienststelle oder Staatsanwaltschaft]",
        "",
        f"[Ort], {format_date(today, 'de')}",
        "",
    ]
    if typed.reference.strip():
        lines += [f"Aktenzeichen: {plain_isolated(typed.reference.strip())}", ""]
    lines += [
        "Strafanzeige und Strafantrag",
        "",
        "Sehr geehrte Damen und Herren,",
        "",
        "hiermit erstatte ich Strafanzeige und stelle Strafantrag (§ 158 StPO) aus allen in Betracht "
        "kommenden rechtlichen Gesichtspunkten wegen der folgenden Vorfälle, gegen die mir bekannte Person "
        "oder, soweit sie mir nicht bekannt ist, gegen Unbekannt.",
        "",
    ]
    for number, incident in enumerate(dossier.incidents, start=1):
        when = format_date(incident.occurred_on, "de") if incident.occurred_on else "Datum nicht angegeben"
        lines.append(f"{number}. Vorfall vom {when}")
        lines.append("Art: " + "; ".join(f"{item.label} ({item.code})" for item in incident.types))
        lines.append(f"Weg: {incident.channel.label}")
        for label, value in (
            ("Ort", incident.place),
            ("Plattform", incident.platform),
            ("Link", incident.url),
        ):
            if value:
                lines.append(f"{label}: {plain_isolated(value)}")
        lines.append("Schilderung:")
        lines.append(plain_isolated(incident.description))
        if incident.files:
            lines.append("Beweismittel (als Dateien beigefügt, mit SHA-256-Prüfsumme):")
            for item in incident.files:
                size = format_size(item.size_bytes, "de")
                lines.append(f"- {plain_isolated(item.name)} ({item.content_type}, {size})")
                lines.append(f"  SHA-256: {item.sha256}")
        lines.append("")
    if dossier.message_files:
        lines.append("Weitere Beweismittel (als Dateien beigefügt, mit SHA-256-Prüfsumme):")
        for item in dossier.message_files:
            lines.append(f"- {plain_isolated(item.name)} ({item.content_type}), SHA-256: {item.sha256}")
        lines.append("")
    lines += [
        "Ich beantrage, über den Stand und den Ausgang des Verfahrens unterrichtet zu werden (§ 406d StPO).",
        "",
        "Weil ich wegen meines Amtes oder Mandats angefeindet werde, ist zu befürchten, dass mich die "
        "Angabe meiner Wohnanschrift gefährdet. Ich bitte deshalb, in die Akte statt meiner Wohnanschrift "
        "die oben angegebene Anschrift aufzunehmen (§ 68 StPO).",
        "",
        "Bitte bestätigen Sie mir den Eingang dieser Anzeige unter Angabe Ihres Aktenzeichens.",
        "",
        "Mit freundlichen Grüßen",
        "",
        name,
        "",
        SEPARATOR,
        "Hinweise zu diesem Entwurf (nicht Teil des Schreibens)",
        "- Dies ist ein Entwurf zum Prüfen, keine Rechtsberatung. Prüfen Sie jede Angabe, ergänzen Sie, "
        "was fehlt, und lassen Sie sich im Zweifel beraten.",
        "- Frist: Der Strafantrag muss innerhalb von drei Monaten gestellt werden; die Frist beginnt mit "
        "Ablauf des Tages, an dem Sie von der Tat und der Person, die sie begangen hat, erfahren haben "
        "(§ 77b StGB). Stellen Sie ihn im Zweifel früher.",
    ]
    for number, incident in enumerate(dossier.incidents, start=1):
        if incident.complaint_ends_on is not None:
            lines.append(
                f"- Nach den Angaben im Fall endet die Frist für Vorfall {number} am "
                f"{format_date(incident.complaint_ends_on, 'de')}."
            )
    lines += [
        "- Form: Ihre Identität und Ihr Wille zur Strafverfolgung müssen erkennbar sein (§ 158 Abs. 2 "
        "StPO). Am sichersten ist ein unterschriebenes Schreiben oder die Erklärung zu Protokoll bei der "
        "Polizei.",
        "- Anschrift: Geben Sie eine Dienstanschrift oder eine andere ladungsfähige Anschrift an, nicht "
        "Ihre Wohnanschrift, wenn Sie sonst gefährdet wären (§ 68 StPO).",
        f"- Erstellt am {format_datetime(dossier.generated_at, 'de')} aus Ihrem Fall bei Rückhalt; "
        "Name, Anschrift und Aktenzeichen wurden nicht gespeichert.",
    ]
    return "\n".join(lines) + "\n"
