"""The letters of criminal law (service/dossier/letters.py says what each follows): the Strafanzeige with
Strafantrag, and the Strafantrag of the superior.
"""

from __future__ import annotations

from datetime import date

from service.dossier.letter_parts import (
    NOT_ADVICE,
    SEPARATOR,
    SOURCES,
    TITLES,
    LetterKind,
    Typed,
    applications_filed,
    date_line,
    deadline_notes,
    incident_lines,
    joined,
    made,
    message_file_lines,
    reference_lines,
    typed_value,
)
from service.dossier.service import Dossier

# -- Strafanzeige and Strafantrag --------------------------------------------------------------------------


def strafanzeige(dossier: Dossier, typed: Typed, today: date) -> str:
    """The Strafanzeige with Strafantrag as plain text (the PDF sets the same text)."""
    name = typed_value(typed.name, "[Vor- und Nachname]")
    lines = [
        name,
        typed_value(typed.address, "[Anschrift: Dienstanschrift oder andere ladungsfähige Anschrift]"),
    ]
    lines += ["", "An die", typed_value(typed.recipient, "[Polizeidienststelle oder Staatsanwaltschaft]"), ""]
    lines += date_line(today) + reference_lines(typed.reference)
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
        lines += incident_lines(number, incident, files=True, statutes=False)
    filed = applications_filed(dossier)
    if filed:
        lines += [*filed, ""]
    lines += message_file_lines(dossier)
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
    lines += deadline_notes(dossier, "")
    lines += [
        "- Form: Ihre Identität und Ihr Wille zur Strafverfolgung müssen erkennbar sein (§ 158 Abs. 2 "
        "StPO). Bei der Polizei muss der Antrag schriftlich gestellt werden (ein unterschriebenes "
        "Schreiben); zu Protokoll geht er nur bei Gericht oder Staatsanwaltschaft (§ 158 Abs. 2 StPO).",
        "- Anschrift: Geben Sie eine Dienstanschrift oder eine andere ladungsfähige Anschrift an, nicht "
        "Ihre Wohnanschrift, wenn Sie sonst gefährdet wären (§ 68 StPO).",
        made(dossier, "Name, Anschrift, Empfänger und Aktenzeichen"),
    ]
    return joined(lines)


# -- Strafantrag of the superior (§ 194 Abs. 3, § 77a StGB) ----------------------------------------------


def strafantrag_dienst(dossier: Dossier, typed: Typed, today: date) -> str:
    """The Strafantrag of the superior for insults of an official in or in connection with the service."""
    name = typed_value(typed.name, "[Vor- und Nachname der oder des Dienstvorgesetzten]")
    official = typed_value(
        typed.official, "[Vor- und Nachname, Amts- oder Dienstbezeichnung der angegriffenen Person]"
    )
    lines = [name, typed_value(typed.address, "[Behörde und Dienstanschrift]")]
    lines += ["", "An die", typed_value(typed.recipient, "[Staatsanwaltschaft oder Polizeidienststelle]"), ""]
    lines += date_line(today) + reference_lines(typed.reference)
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
        lines += incident_lines(number, incident, files=True, statutes=True)
    lines += message_file_lines(dossier)
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
    lines += deadline_notes(dossier, "der betroffenen Person")
    lines += [
        f"- Quellen: § 194 StGB: {SOURCES['stgb194']}; § 77a StGB: {SOURCES['stgb77a']}; § 77b StGB: "
        f"{SOURCES['stgb77b']}; § 230 StGB: {SOURCES['stgb230']}",
        made(dossier, "Namen, Anschrift, Empfänger und Aktenzeichen"),
    ]
    return joined(lines)
