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
sets it as text (service/pdf/document.py). Evidence files are named as in the dossier and the evidence ZIP
(``01-Drohbrief.pdf``, service/dossier/names.py), each with its SHA-256.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from service.display import plain_isolated
from service.dossier.criminal_letters import strafantrag_dienst, strafanzeige
from service.dossier.letter_parts import (
    NOT_ADVICE,
    SEPARATOR,
    SOURCES,
    TITLES,
    LetterKind,
    Typed,
    date_line,
    evidence_annex,
    incident_lines,
    joined,
    made,
    reference_lines,
    typed_lines,
    typed_value,
    when,
)
from service.dossier.service import Coded, Dossier, DossierIncident
from service.i18n import format_date

# -- Auskunftssperre (§ 51 BMG) -------------------------------------------------------------------------


def auskunftssperre(dossier: Dossier, typed: Typed, today: date) -> str:
    """The application for an Auskunftssperre for the applicant and the household, with the evidence list."""
    name = typed_value(typed.name, "[Vor- und Nachname]")
    household = typed_lines(typed.household) or [
        "[Vor- und Nachname, Geburtsdatum jeder weiteren Person, die mit Ihnen in der Wohnung gemeldet ist]"
    ]
    lines = [name, "Geburtsdatum: [TT.MM.JJJJ]"]
    lines.append(typed_value(typed.address, "[Anschrift, unter der Sie gemeldet sind]"))
    lines += [
        "",
        "An die",
        typed_value(typed.recipient, "[Meldebehörde Ihrer Hauptwohnung, z. B. Bürgeramt]"),
        "",
    ]
    lines += date_line(today) + reference_lines(typed.reference, "Aktenzeichen meiner Strafanzeige")
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
        lines += incident_lines(number, incident, files=False, statutes=False)
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
        *evidence_annex(dossier),
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
        made(dossier, "Name, Anschrift, Mitbewohnende, Empfänger und Aktenzeichen"),
    ]
    return joined(lines)


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
    name = typed_value(typed.name, "[Vor- und Nachname]")
    email = typed_value(typed.email, "[E-Mail-Adresse]")
    online = _online_incidents(dossier)
    locations = []
    for number, incident in online:
        where = f" (Plattform: {plain_isolated(incident.platform)})" if incident.platform else ""
        if incident.url:
            locations.append(
                f"- {plain_isolated(incident.url)} – Vorfall {number} vom {when(incident)}{where}"
            )
        else:
            locations.append(f"- [genaue URL einfügen] – Vorfall {number} vom {when(incident)}{where}")
    locations += [f"- {line}" for line in typed_lines(typed.urls)]
    if not locations:
        locations.append("- [genaue URL jedes gemeldeten Inhalts einfügen]")
    if typed.explanation.strip():
        reason_lines = typed_lines(typed.explanation)
    else:
        chosen = [incident for _, incident in online] or dossier.incidents
        reason_lines = explanation(item for incident in chosen for item in incident.types).splitlines()
    lines = [name, f"E-Mail: {email}"]
    lines += [
        "",
        "An",
        typed_value(typed.recipient, "[Anbieter der Plattform – Meldeweg für rechtswidrige Inhalte]"),
        "",
    ]
    lines += date_line(today) + reference_lines(typed.reference, "Bezug")
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
        made(dossier, "Name, E-Mail-Adresse, Empfänger, URLs und Begründung"),
    ]
    return joined(lines)


# -- Hausverbot (public-law house right) ------------------------------------------------------------------


def hausverbot(dossier: Dossier, typed: Typed, today: date) -> str:
    """A Hausverbot for the town hall as a draft decision of the administration, with the reasons from the
    case (the evidence itself stays in the file: the decision goes to the person it bans)."""
    premises = typed_value(
        typed.premises, "[Gebäude und Räume, z. B. das Rathaus, Marktplatz 1, mit allen Dienststellen]"
    )
    until = format_date(typed.until, "de") if typed.until else "[Datum]"
    lines = [
        typed_value(
            typed.address, "[Gemeinde oder Stadt – die Bürgermeisterin oder der Bürgermeister – Anschrift]"
        )
    ]
    lines += ["", "Gegen Zustellungsurkunde [oder: Einschreiben mit Rückschein]", ""]
    lines += [
        "An",
        typed_value(typed.recipient, "[Vor- und Nachname und Anschrift der Person, der das Hausverbot gilt]"),
        "",
    ]
    lines += date_line(today) + reference_lines(typed.reference)
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
        lines += incident_lines(number, incident, files=False, statutes=False)
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
        typed_value(typed.name, "[Vor- und Nachname]"),
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
        made(dossier, "Namen, Anschriften, Räume, Frist und Aktenzeichen"),
    ]
    return joined(lines)


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
