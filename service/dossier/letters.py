"""Letters filled from the decrypted case (issue 19): drafts in German, whatever the page's language, because
they go to German authorities and platforms operating in Germany. Each says it is a draft to check, not
legal advice, and names its sources in its notes (the part below the separator, not part of the letter).

- ``strafanzeige``: Strafanzeige with Strafantrag. Follows the knowledge base's article "Strafanzeige und
  Strafantrag stellen": § 158 StPO (where and how; identity and will to prosecute must be recognisable),
  § 77b StGB (three months from knowing the deed and the perpetrator), § 406d StPO (the request to be
  informed), § 68 StPO (an official or other summonable address instead of the private one).
- ``auskunftssperre``: the application for an Auskunftssperre under § 51 Abs. 1 BMG for the applicant and
  the household, with the incidents and the evidence list attached. As the article "Auskunftssperre im
  Melderegister": Sätze 2 and 3 (protection against threats, insults, stalking; persons exposed through
  their profession or voluntary office) since 3 April 2021 (Gesetz zur Bekämpfung des Rechtsextremismus und
  der Hasskriminalität of 30 March 2021, BGBl. I S. 441); free of charge since the amendment of 23 October
  2024; two years under § 51 Abs. 4 in the version checked, renewable (a 2024 bill for four years is not
  confirmed as law). A provisional block is asked for, not claimed: the law does not name it.
- ``plattform``: a notice under Art. 16 DSA (Regulation (EU) 2022/2065) with the four elements of
  Art. 16(2): (a) the explanation why the content is illegal (typed; the page prefills it from the
  incident types and the provisions the taxonomy names), (b) the exact URLs, (c) the notifier's name and
  e-mail (not required only for offences under Art. 3 to 7 of Directive 2011/93/EU), (d) the statement of
  good faith. Art. 17(3)(b) is named in the notes: the notifier's name may reach the poster.
- ``strafantrag_dienst``: the Strafantrag of the superior (§ 194 Abs. 3 Satz 1, § 77a StGB) for insults of
  an official in or in connection with the service; the notes say that council members are as a rule no
  Amtsträger (BGH, 9 May 2006, 5 StR 453/05) and that the period runs for each entitled person separately
  (§ 77b Abs. 3 StGB).
- ``hausverbot``: a Hausverbot for the town hall under the public-law house right of the head of the
  administration (an annex to its competence for the task, not a statute); in the notes: a Verwaltungsakt
  as a rule, with a Rechtsbehelfsbelehrung whose remedy (objection or action) the Land decides, to be
  limited in time when first issued (VGH München, 28 January 2021, 4 CS 20.2116).

What the case does not hold (names, addresses, an Aktenzeichen, the household, a URL or explanation typed
on the page) is typed on the page for this one letter and never stored: it exists in the request and the
answer only. Text the reporter typed is isolated line by line for plain text (service/display.py); the PDF
sets it as text (render.py). Evidence files are named as in the dossier and the evidence ZIP
(``01-Drohbrief.pdf``, service/dossier/names.py), each with its SHA-256.
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


# -- pieces every letter uses ----------------------------------------------------------------------------


def _typed(value: str, placeholder: str) -> str:
    return plain_isolated(value.strip()) if value.strip() else placeholder


def _typed_lines(value: str) -> list[str]:
    """The non-empty lines of a typed field, each isolated."""
    return [plain_isolated(line.strip()) for line in value.splitlines() if line.strip()]


def _when(incident: DossierIncident) -> str:
    return format_date(incident.occurred_on, "de") if incident.occurred_on else "Datum nicht angegeben"


def _type_line(types: Iterable[Coded], *, statutes: bool) -> str:
    parts = []
    for item in types:
        shown = f"{item.label} ({item.code}"
        if statutes and item.statute:
            shown += f"; in Betracht kommt {item.statute}"
        parts.append(shown + ")")
    return "; ".join(parts)


def _file_lines(item: EvidenceFile) -> list[str]:
    """A file under the name of the dossier's list and the ZIP's entry, with its hash."""
    size = format_size(item.size_bytes, "de")
    return [
        f"- {plain_isolated(item.listed_name or item.name)} ({item.content_type}, {size})",
        f"  SHA-256: {item.sha256}",
    ]


def _incident_lines(number: int, incident: DossierIncident, *, files: bool, statutes: bool) -> list[str]:
    lines = [f"{number}. Vorfall vom {_when(incident)}"]
    lines.append("Art: " + _type_line(incident.types, statutes=statutes))
    lines.append(f"Weg: {incident.channel.label}")
    for label, value in (("Ort", incident.place), ("Plattform", incident.platform), ("Link", incident.url)):
        if value:
            lines.append(f"{label}: {plain_isolated(value)}")
    lines.append("Schilderung:")
    lines.append(plain_isolated(incident.description))
    if files and incident.files:
        lines.append("Beweismittel (als Dateien beigefügt, mit SHA-256-Prüfsumme):")
        for item in incident.files:
            lines += _file_lines(item)
    lines.append("")
    return lines


def _message_file_lines(dossier: Dossier) -> list[str]:
    if not dossier.message_files:
        return []
    lines = ["Weitere Beweismittel (als Dateien beigefügt, mit SHA-256-Prüfsumme):"]
    for item in dossier.message_files:
        lines += _file_lines(item)
    return [*lines, ""]


def _date_line(today: date) -> list[str]:
    return [f"[Ort], {format_date(today, 'de')}", ""]


def _reference_lines(reference: str, label: str = "Aktenzeichen") -> list[str]:
    return [f"{label}: {plain_isolated(reference.strip())}", ""] if reference.strip() else []


def _deadline_notes(dossier: Dossier, subject: str) -> list[str]:
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


def _applications_filed(dossier: Dossier) -> list[str]:
    """In the Strafanzeige itself: the incidents whose Strafantrag the proceedings record as filed, with the
    day (the authority can find it; the letter repeats the application for the others)."""
    return [
        f"Wegen Vorfall {number} wurde bereits am {format_date(incident.application_on, 'de')} "
        "Strafantrag gestellt."
        for number, incident in enumerate(dossier.incidents, start=1)
        if incident.application_on is not None
    ]


def _made(dossier: Dossier, typed_fields: str) -> str:
    return (
        f"- Erstellt am {format_datetime(dossier.generated_at, 'de')} aus dem Fall bei Rückhalt; "
        f"{typed_fields} wurden nicht gespeichert."
    )


def _evidence_annex(dossier: Dossier) -> list[str]:
    """The incidents and every evidence file with its hash, as the dossier lists them."""
    lines = ["Anlage: Vorfälle und Beweisdateien", ""]
    for number, incident in enumerate(dossier.incidents, start=1):
        received = format_datetime(incident.received_at, "de")
        lines.append(f"{number}. Vorfall vom {_when(incident)} (bei Rückhalt eingegangen am {received})")
        lines.append("Art: " + _type_line(incident.types, statutes=False))
        for item in incident.files:
            lines += _file_lines(item)
        if not incident.files:
            lines.append("- keine Dateien")
        lines.append("")
    if dossier.message_files:
        lines.append("Mit Nachrichten geschickte Dateien:")
        for item in dossier.message_files:
            lines += _file_lines(item)
        lines.append("")
    lines.append(
        "Die Dateien liegen unter diesen Namen bei (ZIP-Archiv „Beweisdateien“ mit der Datei SHA256SUMS). "
        "Die Prüfsumme (SHA-256) zeigt, dass eine Datei unverändert ist."
    )
    return [*lines, ""]


# -- Strafanzeige and Strafantrag --------------------------------------------------------------------------


def strafanzeige(dossier: Dossier, typed: Typed, today: date) -> str:
    """The Strafanzeige with Strafantrag as plain text (the PDF sets the same text)."""
    name = _typed(typed.name, "[Vor- und Nachname]")
    lines = [name, _typed(typed.address, "[Anschrift: Dienstanschrift oder andere ladungsfähige Anschrift]")]
    lines += ["", "An die", _typed(typed.recipient, "[Polizeidienststelle oder Staatsanwaltschaft]"), ""]
    lines += _date_line(today) + _reference_lines(typed.reference)
    lines += [
        TITLES[LetterKind.strafanzeige],
        "",
        "Sehr geehrte Damen und Herren,",
        "",
        "hiermit erstatte ich Strafanzeige und stelle Strafantrag (§ 158 StPO) aus allen in Betracht "
        "kommenden rechtlichen Gesichtspunkten wegen der folgenden Vorfälle, gegen die mir bekannte Person "
        "oder, soweit sie mir nicht bekannt ist, gegen Unbekannt.",
        "",
    ]
    for number, incident in enumerate(dossier.incidents, start=1):
        lines += _incident_lines(number, incident, files=True, statutes=False)
    filed = _applications_filed(dossier)
    if filed:
        lines += [*filed, ""]
    lines += _message_file_lines(dossier)
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
        NOT_ADVICE,
    ]
    if all(incident.application_on is not None for incident in dossier.incidents):
        lines.append(
            "- Frist: Nach den Angaben im Fall ist der Strafantrag für jeden Vorfall schon gestellt (an den "
            "unten genannten Tagen); die Frist von drei Monaten (§ 77b StGB) ist hier deshalb nicht "
            "berechnet."
        )
    else:
        lines.append(
            "- Frist: Der Strafantrag muss innerhalb von drei Monaten gestellt werden; die Frist beginnt mit "
            "Ablauf des Tages, an dem Sie von der Tat und der Person, die sie begangen hat, erfahren haben "
            "(§ 77b StGB). Stellen Sie ihn im Zweifel früher."
        )
    lines += _deadline_notes(dossier, "")
    lines += [
        "- Form: Ihre Identität und Ihr Wille zur Strafverfolgung müssen erkennbar sein (§ 158 Abs. 2 "
        "StPO). Bei der Polizei muss der Antrag schriftlich gestellt werden (ein unterschriebenes "
        "Schreiben); zu Protokoll geht er nur bei Gericht oder Staatsanwaltschaft (§ 158 Abs. 2 StPO).",
        "- Anschrift: Geben Sie eine Dienstanschrift oder eine andere ladungsfähige Anschrift an, nicht "
        "Ihre Wohnanschrift, wenn Sie sonst gefährdet wären (§ 68 StPO).",
        _made(dossier, "Name, Anschrift, Empfänger und Aktenzeichen"),
    ]
    return _joined(lines)


# -- Auskunftssperre (§ 51 BMG) -------------------------------------------------------------------------


def auskunftssperre(dossier: Dossier, typed: Typed, today: date) -> str:
    """The application for an Auskunftssperre for the applicant and the household, with the evidence list."""
    name = _typed(typed.name, "[Vor- und Nachname]")
    household = _typed_lines(typed.household) or [
        "[Vor- und Nachname, Geburtsdatum jeder weiteren Person, die mit Ihnen in der Wohnung gemeldet ist]"
    ]
    lines = [name, "Geburtsdatum: [TT.MM.JJJJ]"]
    lines.append(_typed(typed.address, "[Anschrift, unter der Sie gemeldet sind]"))
    lines += ["", "An die", _typed(typed.recipient, "[Meldebehörde Ihrer Hauptwohnung, z. B. Bürgeramt]"), ""]
    lines += _date_line(today) + _reference_lines(typed.reference, "Aktenzeichen meiner Strafanzeige")
    first = min(
        (incident.occurred_on or incident.received_at.date() for incident in dossier.incidents), default=None
    )
    since = f"Seit dem {format_date(first, 'de')} ist" if first else "Es ist"
    lines += [
        TITLES[LetterKind.auskunftssperre],
        "",
        "Sehr geehrte Damen und Herren,",
        "",
        "ich beantrage, für mich und für die folgenden Personen, die mit mir in derselben Wohnung gemeldet "
        "sind, eine Auskunftssperre im Melderegister nach § 51 Abs. 1 Bundesmeldegesetz (BMG) einzutragen:",
        "",
        *(f"- {line}" for line in household),
        "",
        "Begründung",
        "",
        "Es liegen Tatsachen vor, die die Annahme rechtfertigen, dass mir und den mit mir wohnenden "
        "Personen durch eine Melderegisterauskunft eine Gefahr für Leben, Gesundheit, persönliche Freiheit "
        "oder ähnliche schutzwürdige Interessen erwachsen kann (§ 51 Abs. 1 Satz 1 BMG). Ich werde wegen "
        f"meines kommunalen Amtes oder Mandats angefeindet. {since} es zu den folgenden Vorfällen gekommen "
        "(Einzelheiten und Beweisdateien in der Anlage):",
        "",
    ]
    for number, incident in enumerate(dossier.incidents, start=1):
        lines += _incident_lines(number, incident, files=False, statutes=False)
    lines += [
        "Ein ähnliches schutzwürdiges Interesse ist nach § 51 Abs. 1 Satz 2 BMG insbesondere der Schutz vor "
        "Bedrohungen, Beleidigungen sowie unbefugten Nachstellungen. Nach § 51 Abs. 1 Satz 3 BMG ist auch "
        "zu berücksichtigen, ob die betroffene oder eine andere Person einem Personenkreis angehört, der "
        "sich auf Grund seiner beruflichen oder ehrenamtlich ausgeübten Tätigkeit allgemein in verstärktem "
        "Maße Anfeindungen oder sonstigen Angriffen ausgesetzt sieht. Ich gehöre als [Ihr Amt oder Mandat, "
        "z. B. Mitglied des Gemeinderats der Gemeinde …] zu einem solchen Personenkreis; die Vorfälle oben "
        "zeigen, dass mich diese Anfeindungen bereits konkret treffen.",
        "",
        "Die Sperre soll auch die mit mir wohnenden Personen umfassen, weil meine Anschrift sonst über eine "
        "Auskunft zu ihnen ermittelt werden könnte.",
        "",
        "Ich bitte um eine zügige Entscheidung und, soweit Ihre Praxis es zulässt, bis dahin um eine "
        "vorläufige Sperre. Bitte teilen Sie mir mit, bis wann die Sperre eingetragen ist.",
        "",
        "Außerdem widerspreche ich der Übermittlung meiner Daten nach § 50 Abs. 1 bis 3 BMG (an Parteien "
        "und Wählergruppen vor Wahlen, zu Alters- und Ehejubiläen, an Adressbuchverlage) (§ 50 Abs. 5 BMG).",
        "",
        "Mit freundlichen Grüßen",
        "",
        name,
        "",
        *_evidence_annex(dossier),
        SEPARATOR,
        "Hinweise zu diesem Entwurf (nicht Teil des Schreibens)",
        NOT_ADVICE,
        "- Rechtsgrundlage: § 51 Abs. 1 BMG. Die Sätze 2 und 3 (Bedrohungen, Beleidigungen, Nachstellungen; "
        "Personen, die wegen ihres Berufs oder Ehrenamts angefeindet werden) gelten seit dem 3. April 2021 "
        "(Gesetz zur Bekämpfung des Rechtsextremismus und der Hasskriminalität vom 30. März 2021, BGBl. I "
        "S. 441). Die Eintragung ist nach § 51 Abs. 1 Satz 1 BMG unentgeltlich (geändert durch Artikel 6 des "
        "Gesetzes vom 23. Oktober 2024, BGBl. 2024 I Nr. 323).",
        "- Ihr Amt allein reicht oft nicht: Nach dem Bundesverwaltungsgericht (Urteil vom 5. November 2025 – "
        "6 C 1.24) muss Ihre konkrete Tätigkeit der des angefeindeten Personenkreises im Wesentlichen "
        "gleichen, und die Anfeindungen müssen mit Tatsachen belegt sein. Schildern Sie Ihr Amt und die "
        "Vorfälle deshalb konkret.",
        "- Dauer: Nach § 51 Abs. 4 BMG in der Fassung, die wir prüfen konnten, ist die Sperre auf zwei Jahre "
        "befristet; sie kann auf Antrag verlängert werden. Ein Gesetzentwurf von 2024 sah vier Jahre vor; ob "
        "er Gesetz geworden ist, ist zu prüfen. Notieren Sie das Enddatum, das die Meldebehörde nennt, und "
        "beantragen Sie die Verlängerung rechtzeitig vorher, mit aktuellen Nachweisen.",
        "- Eine vorläufige Sperre während der Prüfung nennt das Gesetz nicht ausdrücklich; manche "
        "Meldebehörden tragen sie trotzdem ein. Darum ist sie hier erbeten, nicht beansprucht.",
        "- Mitbewohnende: Tragen Sie Namen und Geburtsdaten ein. Ob die Meldebehörde den Antrag für "
        "volljährige Mitbewohnende ohne deren Unterschrift annimmt, ist verschieden; am sichersten "
        "unterschreiben sie mit.",
        "- Zuständig ist die Meldebehörde Ihrer Hauptwohnung. Legen Sie die Beweisdateien (oder Ausdrucke) "
        "und, falls vorhanden, die Bestätigung Ihrer Strafanzeige bei.",
        f"- Quellen: § 51 BMG: {SOURCES['bmg51']}; § 50 BMG: {SOURCES['bmg50']}; BVerwG, Urteil vom "
        "5. November 2025 – 6 C 1.24 (www.bverwg.de; wir kannten nur eine Zusammenfassung: den Volltext "
        "vor Gebrauch prüfen)",
        _made(dossier, "Name, Anschrift, Mitbewohnende, Empfänger und Aktenzeichen"),
    ]
    return _joined(lines)


# -- Notice to a platform (Art. 16 DSA) -----------------------------------------------------------------


def explanation(types: Iterable[Coded]) -> str:
    """A first explanation why the content is illegal (Art. 16(2)(a) DSA), from the incident types and the
    provisions the taxonomy names for them; the page prefills the field with it, to be completed."""
    seen: dict[str, Coded] = {}
    for item in types:
        if item.statute and item.code not in seen:
            seen[item.code] = item
    lines = [
        "Der Inhalt richtet sich gegen mich als [Amt oder Mandat, z. B. Bürgermeisterin der Gemeinde …]. "
        "Nach meiner Einschätzung ist er nach deutschem Strafrecht rechtswidrig. In Betracht kommen:"
    ]
    lines += [f"- {item.label}: {item.statute}" for item in seen.values()]
    if not seen:
        lines.append("- [Straftatbestand, z. B. Bedrohung (§ 241 StGB) oder Beleidigung (§ 185 StGB)]")
    lines.append("[Beschreiben Sie kurz, was der Inhalt sagt oder zeigt und warum er darunter fällt.]")
    return "\n".join(lines)


def _online_incidents(dossier: Dossier) -> list[tuple[int, DossierIncident]]:
    return [
        (number, incident)
        for number, incident in enumerate(dossier.incidents, start=1)
        if incident.url or incident.platform or incident.online
    ]


def plattform(dossier: Dossier, typed: Typed, today: date) -> str:
    """The notice under Art. 16 DSA with the four elements of Art. 16(2)."""
    name = _typed(typed.name, "[Vor- und Nachname]")
    email = _typed(typed.email, "[E-Mail-Adresse]")
    online = _online_incidents(dossier)
    locations = []
    for number, incident in online:
        where = f" (Plattform: {plain_isolated(incident.platform)})" if incident.platform else ""
        if incident.url:
            locations.append(
                f"- {plain_isolated(incident.url)} – Vorfall {number} vom {_when(incident)}{where}"
            )
        else:
            locations.append(f"- [genaue URL einfügen] – Vorfall {number} vom {_when(incident)}{where}")
    locations += [f"- {line}" for line in _typed_lines(typed.urls)]
    if not locations:
        locations.append("- [genaue URL jedes gemeldeten Inhalts einfügen]")
    if typed.explanation.strip():
        reason_lines = _typed_lines(typed.explanation)
    else:
        chosen = [incident for _, incident in online] or dossier.incidents
        reason_lines = explanation(item for incident in chosen for item in incident.types).splitlines()
    lines = [name, f"E-Mail: {email}"]
    lines += [
        "",
        "An",
        _typed(typed.recipient, "[Anbieter der Plattform – Meldeweg für rechtswidrige Inhalte]"),
        "",
    ]
    lines += _date_line(today) + _reference_lines(typed.reference, "Bezug")
    lines += [
        TITLES[LetterKind.plattform],
        "(Verordnung (EU) 2022/2065, Gesetz über digitale Dienste)",
        "",
        "Sehr geehrte Damen und Herren,",
        "",
        "ich melde die folgenden Inhalte auf Ihrem Dienst als rechtswidrig.",
        "",
        "1. Genauer elektronischer Speicherort (Art. 16 Abs. 2 Buchst. b DSA)",
        *locations,
        "",
        "2. Begründung, warum die Inhalte rechtswidrig sind (Art. 16 Abs. 2 Buchst. a DSA)",
        *reason_lines,
        "",
        "3. Name und E-Mail-Adresse der meldenden Person (Art. 16 Abs. 2 Buchst. c DSA)",
        f"{name}, {email}",
        "",
        "4. Erklärung (Art. 16 Abs. 2 Buchst. d DSA)",
        "Ich bin in gutem Glauben davon überzeugt, dass die in dieser Meldung enthaltenen Angaben und "
        "Anführungen richtig und vollständig sind.",
        "",
        "Bitte bestätigen Sie mir den Eingang dieser Meldung und teilen Sie mir Ihre Entscheidung mit "
        "(Art. 16 Abs. 4 und 5 DSA).",
        "",
        "Mit freundlichen Grüßen",
        "",
        name,
        "",
        SEPARATOR,
        "Hinweise zu diesem Entwurf (nicht Teil des Schreibens)",
        NOT_ADVICE,
        "- Nutzen Sie den Meldeweg der Plattform für rechtswidrige Inhalte (nicht nur „Verstoß gegen "
        "Gemeinschaftsstandards“) und übertragen Sie die vier Abschnitte in seine Felder. Melden Sie jeden "
        "Inhalt mit seiner eigenen URL.",
        "- Name und E-Mail-Adresse verlangt Art. 16 Abs. 2 Buchst. c DSA; entbehrlich sind sie nur bei "
        "Inhalten, die eine Straftat nach Art. 3 bis 7 der Richtlinie 2011/93/EU betreffen (sexueller "
        "Missbrauch und sexuelle Ausbeutung von Kindern).",
        "- Achtung, Ihr Name: In der Begründung ihrer Entscheidung darf die Plattform der Person, die den "
        "Inhalt gepostet hat, auch die meldende Person nennen, wenn das unbedingt erforderlich ist (Art. 17 "
        "Abs. 3 Buchst. b DSA). Wenn Sie das nicht wollen, melden Sie über einen vertrauenswürdigen "
        "Hinweisgeber (Art. 22 DSA) oder über ein Dienstkonto Ihrer Gemeinde oder Fraktion.",
        "- Sichern Sie den Inhalt vorher (Screenshot mit Datum und URL). Eine Meldung ersetzt keine "
        "Strafanzeige, und eine Strafanzeige löscht nichts.",
        "- Bleibt der Inhalt online, können Sie sich bei Online-Plattformen mindestens sechs Monate lang "
        "intern beschweren (Art. 20 DSA).",
        f"- Quelle: Verordnung (EU) 2022/2065, Art. 16, 17, 20, 22: {SOURCES['dsa']}",
        _made(dossier, "Name, E-Mail-Adresse, Empfänger, URLs und Begründung"),
    ]
    return _joined(lines)


# -- Strafantrag of the superior (§ 194 Abs. 3, § 77a StGB) ----------------------------------------------


def strafantrag_dienst(dossier: Dossier, typed: Typed, today: date) -> str:
    """The Strafantrag of the superior for insults of an official in or in connection with the service."""
    name = _typed(typed.name, "[Vor- und Nachname der oder des Dienstvorgesetzten]")
    official = _typed(
        typed.official, "[Vor- und Nachname, Amts- oder Dienstbezeichnung der angegriffenen Person]"
    )
    lines = [name, _typed(typed.address, "[Behörde und Dienstanschrift]")]
    lines += ["", "An die", _typed(typed.recipient, "[Staatsanwaltschaft oder Polizeidienststelle]"), ""]
    lines += _date_line(today) + _reference_lines(typed.reference)
    lines += [
        TITLES[LetterKind.strafantrag_dienst],
        "",
        "Sehr geehrte Damen und Herren,",
        "",
        "als Dienstvorgesetzte oder Dienstvorgesetzter von",
        official,
        "stelle ich Strafantrag nach § 194 Abs. 3 Satz 1 und § 77a StGB wegen aller in Betracht kommenden "
        "Delikte, insbesondere wegen Beleidigung, übler Nachrede und Verleumdung (§§ 185 ff. StGB), und "
        "erstatte zugleich Strafanzeige wegen der folgenden Vorfälle, gegen die bekannte Person oder, soweit "
        "sie nicht bekannt ist, gegen Unbekannt.",
        "",
        "Die Taten richteten sich gegen die genannte Person als Amtsträgerin oder Amtsträger und wurden "
        "während der Ausübung ihres Dienstes oder in Beziehung auf ihren Dienst begangen (§ 194 Abs. 3 "
        "Satz 1 StGB). Sie war mir zur Zeit der Taten dienstlich unterstellt (§ 77a Abs. 1 StGB).",
        "",
    ]
    for number, incident in enumerate(dossier.incidents, start=1):
        lines += _incident_lines(number, incident, files=True, statutes=True)
    lines += _message_file_lines(dossier)
    lines += [
        "Ein eigener Strafantrag der betroffenen Person bleibt davon unberührt.",
        "",
        "Bitte bestätigen Sie mir den Eingang unter Angabe Ihres Aktenzeichens und unterrichten Sie mich "
        "über den Ausgang des Verfahrens.",
        "",
        "Mit freundlichen Grüßen",
        "",
        name,
        "[Amtsbezeichnung]",
        "",
        SEPARATOR,
        "Hinweise zu diesem Entwurf (nicht Teil des Schreibens)",
        NOT_ADVICE,
        "- Wann der Antrag der oder des Dienstvorgesetzten möglich ist: bei einer Beleidigung gegen einen "
        "Amtsträger, einen für den öffentlichen Dienst besonders Verpflichteten oder einen Soldaten, "
        "begangen während der Ausübung des Dienstes oder in Beziehung auf den Dienst (§ 194 Abs. 3 Satz 1 "
        "StGB); bei Körperverletzung ebenso (§ 230 Abs. 2 StGB). Streichen Sie Vorfälle, die keinen Bezug "
        "zum Dienst haben.",
        "- Wer den Antrag stellt: die oder der Dienstvorgesetzte, der die Person zur Zeit der Tat "
        "unterstellt war (§ 77a Abs. 1 StGB). Hat die Person keinen Dienstvorgesetzten, kann die "
        "Dienststelle den Antrag stellen; leitet sie diese Dienststelle selbst, ist die staatliche "
        "Aufsichtsbehörde antragsberechtigt (§ 77a Abs. 3 StGB). Wer bei Bürgermeisterinnen und "
        "Bürgermeistern Dienstvorgesetzter ist, regelt das Landesrecht; fragen Sie im Zweifel die "
        "Kommunalaufsicht.",
        "- Ehrenamtliche Rats- und Kreistagsmitglieder sind in der Regel keine Amtsträger (BGH, Urteil vom "
        "9. Mai 2006 – 5 StR 453/05), es sei denn, sie sind mit konkreten Verwaltungsaufgaben betraut. Für "
        "sie passt dieses Schreiben meist nicht: Sie stellen den Strafantrag selbst (§ 77 StGB).",
        "- Frist: drei Monate (§ 77b Abs. 1 StGB). Sie beginnt mit Ablauf des Tages, an dem Sie als "
        "Antragsberechtigte von der Tat und der Person, die sie begangen hat, erfahren haben (§ 77b Abs. 2 "
        "StGB), und läuft für jede antragsberechtigte Person gesondert (§ 77b Abs. 3 StGB). Stellen Sie den "
        "Antrag im Zweifel vor dem folgenden Datum:",
    ]
    lines += _deadline_notes(dossier, "der betroffenen Person")
    lines += [
        f"- Quellen: § 194 StGB: {SOURCES['stgb194']}; § 77a StGB: {SOURCES['stgb77a']}; § 77b StGB: "
        f"{SOURCES['stgb77b']}; § 230 StGB: {SOURCES['stgb230']}",
        _made(dossier, "Namen, Anschrift, Empfänger und Aktenzeichen"),
    ]
    return _joined(lines)


# -- Hausverbot (public-law house right) ------------------------------------------------------------------


def hausverbot(dossier: Dossier, typed: Typed, today: date) -> str:
    """A Hausverbot for the town hall as a draft decision of the administration, with the reasons from the
    case (the evidence itself stays in the file: the decision goes to the person it bans)."""
    premises = _typed(
        typed.premises, "[Gebäude und Räume, z. B. das Rathaus, Marktplatz 1, mit allen Dienststellen]"
    )
    until = format_date(typed.until, "de") if typed.until else "[Datum]"
    lines = [
        _typed(
            typed.address, "[Gemeinde oder Stadt – die Bürgermeisterin oder der Bürgermeister – Anschrift]"
        )
    ]
    lines += ["", "Gegen Zustellungsurkunde [oder: Einschreiben mit Rückschein]", ""]
    lines += [
        "An",
        _typed(typed.recipient, "[Vor- und Nachname und Anschrift der Person, der das Hausverbot gilt]"),
        "",
    ]
    lines += _date_line(today) + _reference_lines(typed.reference)
    lines += [
        TITLES[LetterKind.hausverbot],
        f"für {premises}",
        "",
        "[Anrede],",
        "",
        "ich erlasse folgende Verfügung:",
        "",
        f"1. Ihnen wird untersagt, {premises} bis einschließlich {until} zu betreten.",
        "2. Ausgenommen sind Besuche, die Sie zur Erledigung eigener Angelegenheiten bei der Verwaltung "
        "benötigen, nach vorheriger Terminvereinbarung unter [Telefon oder E-Mail]; Sie werden dann "
        "begleitet.",
        "3. [Nur wenn geboten: Die sofortige Vollziehung von Nummer 1 wird angeordnet (§ 80 Abs. 2 Satz 1 "
        "Nr. 4 VwGO); das besondere Interesse daran ist unten gesondert begründet.]",
        "",
        "Begründung",
        "",
        "I. Sachverhalt",
        "",
    ]
    for number, incident in enumerate(dossier.incidents, start=1):
        lines += _incident_lines(number, incident, files=False, statutes=False)
    lines += [
        "[Anhörung: Sie hatten am [Datum] Gelegenheit, sich zu äußern (§ 28 VwVfG oder das "
        "Verwaltungsverfahrensgesetz des Landes). / Von einer Anhörung wurde abgesehen, weil … ]",
        "",
        "II. Rechtliche Würdigung",
        "",
        "Das Hausverbot beruht auf dem öffentlich-rechtlichen Hausrecht der Leitung der Verwaltung über "
        "ihre Dienstgebäude. Es folgt als Annex aus der Sachkompetenz für die Aufgaben, die dort erfüllt "
        "werden, und dient dazu, den ungestörten Dienstbetrieb zu sichern und die Beschäftigten, die "
        "Mitglieder der Vertretung und die Besucherinnen und Besucher zu schützen.",
        "",
        "Die geschilderten Vorfälle [an den Fall anpassen: haben den Dienstbetrieb gestört und Menschen "
        "im Rathaus gefährdet]; weitere Störungen sind zu befürchten. Das Hausverbot ist geeignet und "
        "erforderlich, um sie abzuwehren; ein milderes Mittel, etwa eine Ermahnung, hat nicht genügt oder"
        " verspricht keinen Erfolg [bitte ausführen]. Es ist angemessen: Es ist befristet, auf die "
        "genannten Räume beschränkt und lässt Besuche zu, die Sie für eigene Angelegenheiten benötigen.",
        "",
        "[Nur bei Nummer 3: Das besondere öffentliche Interesse an der sofortigen Vollziehung besteht, "
        "weil … (§ 80 Abs. 3 VwGO).]",
        "",
        "Rechtsbehelfsbelehrung",
        "",
        "[Nach dem Recht Ihres Landes einsetzen, etwa: Gegen diesen Bescheid kann innerhalb eines Monats "
        "nach Bekanntgabe Widerspruch bei [Behörde, Anschrift] erhoben werden. – oder, wo das Land das "
        "Widerspruchsverfahren nicht vorsieht: Gegen diesen Bescheid kann innerhalb eines Monats nach "
        "Bekanntgabe Klage beim Verwaltungsgericht [Ort, Anschrift] erhoben werden.]",
        "",
        "Mit freundlichen Grüßen",
        "",
        _typed(typed.name, "[Vor- und Nachname]"),
        "[Bürgermeisterin oder Bürgermeister / im Auftrag]",
        "",
        SEPARATOR,
        "Hinweise zu diesem Entwurf (nicht Teil des Schreibens)",
        NOT_ADVICE,
        "- Rechtsgrundlage: Ein Gesetz, das das Hausverbot für Dienstgebäude regelt, gibt es meist nicht. "
        "Rechtsprechung und Lehre stützen es auf das öffentlich-rechtliche Hausrecht der Behördenleitung als "
        "Annex zur Sachkompetenz, wenn es dem Schutz des Dienstbetriebs dient (vgl. BVerwG, Urteil vom "
        "13. März 1970 – VII C 80.67, BVerwGE 35, 103; VGH München, Beschluss vom 28. Januar 2021 – 4 CS "
        "20.2116; Grupp/Stelkens, Saarheim-Fall „Rathausverbot“, Stand 8. Dezember 2023).",
        "- Ein solches Hausverbot ist nach herrschender Auffassung ein Verwaltungsakt: Es braucht eine "
        "Begründung, in der Regel eine Anhörung vorher und eine Rechtsbehelfsbelehrung. Ob zuerst "
        "Widerspruch einzulegen ist oder gleich Klage erhoben wird, regelt das Land; die Frist beträgt in "
        "beiden Fällen einen Monat (§§ 70, 74 VwGO). Eine fehlende oder falsche Belehrung verlängert sie auf "
        "ein Jahr (§ 58 Abs. 2 VwGO).",
        "- Aussprechen kann es die Behördenleitung oder von ihr ermächtigte Bedienstete; ein erstmaliges "
        "Hausverbot ist grundsätzlich zu befristen (VGH München, a. a. O.). Wer das Hausrecht während einer "
        "Sitzung ausübt, regelt die Gemeindeordnung Ihres Landes (oft die Sitzungsleitung).",
        "- Gegenüber gewählten Mitgliedern der Vertretung ist ein Hausverbot rechtlich heikel, weil es ihr "
        "Mandat berührt, ebenso ein Ausschluss von öffentlichen Sitzungen: Lassen Sie sich dazu beraten.",
        "- Der Sachverhalt ist aus dem Fall übernommen und geht an die Person, der das Hausverbot gilt: "
        "Streichen Sie, was sie nicht erfahren soll (etwa Angaben zu Ihrer Familie). Die Beweisdateien "
        "bleiben in Ihrer Akte (Dossier und ZIP-Archiv von der Fallseite).",
        "- Wer trotz Hausverbot bleibt, kann Hausfriedensbruch begehen (§ 123 StGB, nur auf Antrag der "
        "Person mit dem Hausrecht, Frist drei Monate nach § 77b StGB).",
        _made(dossier, "Namen, Anschriften, Räume, Frist und Aktenzeichen"),
    ]
    return _joined(lines)


def _joined(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


WRITERS = {
    LetterKind.strafanzeige: strafanzeige,
    LetterKind.auskunftssperre: auskunftssperre,
    LetterKind.plattform: plattform,
    LetterKind.strafantrag_dienst: strafantrag_dienst,
    LetterKind.hausverbot: hausverbot,
}


def write(kind: LetterKind, dossier: Dossier, typed: Typed, today: date) -> str:
    """The letter of ``kind`` as plain text (the PDF sets the same text)."""
    return WRITERS[kind](dossier, typed, today)
