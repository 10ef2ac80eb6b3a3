"""The letters (service/dossier/letters.py) from a filed case, for the reporter on /fall and a counsellor
holding the case: every kind as PDF and as plain text, each with the incident, its date, the Strafantrag
deadline where one applies, every evidence file under the ZIP's name with its hash where the letter lists
evidence, the legal references it rests on and the draft notice; what was typed for it in the letter and
nowhere else (no database cell, no file in the data folder); audited with the kind only. Both databases.
Who may not ask for a letter is tested with the dossier and the ZIP (test_download_access.py)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.cases.models import Case
from service.dossier import letter_parts, letters
from service.dossier.letter_parts import HEADINGS, LetterKind
from service.dossier.service import Coded
from service.identity.models import MembershipRole
from service.runtime import Runtime
from tests.support.evidence import (
    DESCRIPTION,
    PDF,
    SHA_PDF,
    SHA_TEXT,
    TEXT,
    Browsers,
    assert_nothing_in_clear,
    browsers,
    data_files,
    file_report,
    flat,
    holder_on_case_page,
    sign_in,
    staff_browser,
)
from tests.support.forms import csrf_token
from tests.support.staff import MakeStaff, Staff

INCIDENT_URL = "https://example.social/post/4711"
# Typed on the page: each a marker that must reach the letter and nothing else.
TYPED = {
    "letter_name": "Brief-Kanarienvogel Erika Mustermann",
    "letter_address": "Rathausplatz 1\n99999 Brief-Kanarienhausen",
    "letter_reference": "AZ-KANARIE-4711",
    "letter_recipient": "Empfaenger-Kanarie Stelle",
    "letter_household": "Mitbewohner-Kanarie Max, 01.02.2003\nMitbewohnerin-Kanarie Mia",
    "letter_email": "kanarie-brief@example.org",
    "letter_urls": "https://example.social/post/kanarie-url-99",
    "letter_explanation": "Begruendung-Kanarie: eine Todesdrohung gegen mich",
    "letter_official": "Amtstraeger-Kanarie, Sachbearbeiterin",
    "letter_premises": "Rathaus-Kanarie, Marktplatz 1",
    "letter_until": "2027-06-30",
}
MARKERS = [
    "Brief-Kanarienvogel",
    "Brief-Kanarienhausen",
    "AZ-KANARIE-4711",
    "Empfaenger-Kanarie",
    "Mitbewohner-Kanarie",
    "Mitbewohnerin-Kanarie",
    "kanarie-brief@example.org",
    "kanarie-url-99",
    "Begruendung-Kanarie",
    "Amtstraeger-Kanarie",
    "Rathaus-Kanarie",
]
FILES = {"01-Screenshot.pdf": SHA_PDF, "02-Chat.txt": SHA_TEXT}
# A1 is a complaint-only offence: filed on 28.11.2026, the Strafantrag period ends on 28.02.2027.
DEADLINE = "28.02.2027"


@dataclass(frozen=True)
class Expected:
    # In the text of the letter (flattened), as plain text and in the PDF.
    texts: tuple[str, ...]
    # Typed markers the letter shows (the others belong to other letters).
    typed: tuple[str, ...]
    evidence: bool
    deadline: bool
    description: bool = True


COMMON_TYPED = ("Brief-Kanarienvogel", "AZ-KANARIE-4711", "Empfaenger-Kanarie")
EXPECTED = {
    LetterKind.strafanzeige: Expected(
        ("Strafanzeige und Strafantrag", "§ 158 StPO", "§ 77b StGB", "§ 406d StPO", "§ 68 StPO"),
        (*COMMON_TYPED, "Brief-Kanarienhausen"),
        evidence=True,
        deadline=True,
    ),
    LetterKind.auskunftssperre: Expected(
        (
            "Auskunftssperre nach § 51 Abs. 1 BMG",
            "Gefahr für Leben, Gesundheit, persönliche Freiheit oder ähnliche schutzwürdige Interessen",
            "§ 51 Abs. 1 Satz 2 BMG",
            "Bedrohungen, Beleidigungen sowie unbefugten Nachstellungen",
            "beruflichen oder ehrenamtlich ausgeübten Tätigkeit",
            "BGBl. I S. 441",
            "zwei Jahre",
            "§ 51 Abs. 4 BMG",
            "https://www.gesetze-im-internet.de/bmg/__51.html",
            "Anlage: Vorfälle und Beweisdateien",
        ),
        (
            *COMMON_TYPED,
            "Brief-Kanarienhausen",
            "Mitbewohner-Kanarie Max, 01.02.2003",
            "Mitbewohnerin-Kanarie",
        ),
        evidence=True,
        deadline=False,
    ),
    LetterKind.plattform: Expected(
        (
            "Art. 16 DSA",
            "Verordnung (EU) 2022/2065",
            "Art. 16 Abs. 2 Buchst. a DSA",
            "Art. 16 Abs. 2 Buchst. b DSA",
            "Art. 16 Abs. 2 Buchst. c DSA",
            "Art. 16 Abs. 2 Buchst. d DSA",
            "in gutem Glauben davon überzeugt, dass die in dieser Meldung enthaltenen Angaben und "
            "Anführungen richtig und vollständig sind",
            "Richtlinie 2011/93/EU",
            "Art. 17 Abs. 3 Buchst. b DSA",
            INCIDENT_URL,
        ),
        (*COMMON_TYPED, "kanarie-brief@example.org", "kanarie-url-99", "Begruendung-Kanarie"),
        evidence=False,
        deadline=False,
        description=False,
    ),
    LetterKind.strafantrag_dienst: Expected(
        (
            "§ 194 Abs. 3 Satz 1",
            "§ 77a Abs. 1 StGB",
            "§ 77b Abs. 3 StGB",
            "während der Ausübung ihres Dienstes oder in Beziehung auf ihren Dienst",
            "5 StR 453/05",
            "in Betracht kommt §§ 185, 188 StGB",
            "in Betracht kommt § 241 StGB",
        ),
        (*COMMON_TYPED, "Brief-Kanarienhausen", "Amtstraeger-Kanarie"),
        evidence=True,
        deadline=True,
    ),
    LetterKind.hausverbot: Expected(
        (
            "Hausverbot",
            "öffentlich-rechtlichen Hausrecht",
            "Annex zur Sachkompetenz",
            "Verwaltungsakt",
            "Rechtsbehelfsbelehrung",
            "4 CS 20.2116",
            "bis einschließlich 30.06.2027",
        ),
        (*COMMON_TYPED, "Brief-Kanarienhausen", "Rathaus-Kanarie, Marktplatz 1"),
        evidence=False,
        deadline=False,
    ),
}


@pytest.fixture
def open_browser(runtime: Runtime) -> Iterator[Browsers]:
    with browsers(runtime) as made:
        yield made


def filed_reporter(open_browser: Browsers) -> TestClient:
    client = open_browser.new()
    sent = [
        ("attachments", ("Screenshot.pdf", PDF, "application/pdf")),
        ("attachments", ("Chat.txt", TEXT, "text/plain")),
    ]
    receipt = file_report(
        client,
        sent,
        type_codes=("A1", "A3a"),
        occurred_on="2026-11-28",
        channel="social_media.public_post",
        extra={"platform": "Kanariengram", "url": INCIDENT_URL},
    )
    sign_in(client, receipt)
    return client


def letter(client: TestClient, page_url: str, action: str, kind: str, fmt: str) -> bytes:
    token = csrf_token(client.get(page_url).text)
    response = client.post(action, data={"csrf_token": token, "kind": kind, "format": fmt, **TYPED})
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "no-store" in response.headers["cache-control"]
    if fmt == "pdf":
        assert response.headers["content-type"] == "application/pdf"
    else:
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
    return response.content


def pdf_text(document: bytes) -> str:
    assert document.startswith(b"%PDF-")
    return flat("\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages))


def events(runtime: Runtime) -> list[AuditEvent]:
    with runtime.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == "letter.generated")).all())


def assert_letter(kind: LetterKind, shown: str) -> None:
    """What every letter of ``kind`` holds (``shown``: the flattened text of the PDF or the plain text)."""
    expected = EXPECTED[kind]
    assert "Entwurf zum Prüfen, keine Rechtsberatung" in shown
    assert "28.11.2026" in shown
    assert "Vorfall vom 28.11.2026" in shown or "Vorfall 1 vom 28.11.2026" in shown
    if expected.description:
        assert DESCRIPTION in shown
    for text in expected.texts:
        assert text in shown, (kind, text)
    for marker in expected.typed:
        assert marker in shown, (kind, marker)
    assert (DEADLINE in shown) is expected.deadline, kind
    # Plain text isolates each name (service/display.py); the PDF leaves the invisible isolates out.
    unisolated = shown.replace("\u2068", "").replace("\u2069", "")
    for name, digest in FILES.items():
        listed = re.search(re.escape(name) + r" (?:(?!SHA-256:).)*SHA-256: " + digest, unisolated)
        assert (listed is not None) is expected.evidence, (kind, name)
    assert ("SHA-256" in shown) is expected.evidence, kind
    # Never under the name the reporter's system gave it: the ZIP's name is the one the letter cites.
    assert "Chat.txt (" not in unisolated.replace("02-Chat.txt (", "")


@pytest.mark.parametrize("kind", list(LetterKind))
def test_the_reporter_gets_every_letter_filled_from_the_case(
    runtime: Runtime, open_browser: Browsers, kind: LetterKind
) -> None:
    reporter = filed_reporter(open_browser)
    page = reporter.get("/fall").text
    assert 'action="/fall/brief"' in page
    assert f'name="kind" value="{kind.value}"' in page
    before = data_files(runtime)

    text = letter(reporter, "/fall", "/fall/brief", kind.value, "txt").decode()
    document = letter(reporter, "/fall", "/fall/brief", kind.value, "pdf")
    assert_letter(kind, flat(text))
    assert_letter(kind, pdf_text(document))
    # Typed text is isolated line by line in plain text (service/display.py).
    assert "\u2068Brief-Kanarienvogel Erika Mustermann\u2069" in text

    # The PDF says what it is and in which language; its headings are bookmarks.
    reader = PdfReader(io.BytesIO(document))
    assert reader.metadata is not None
    assert reader.metadata.title == letter_parts.TITLES[kind]
    root: Any = reader.trailer["/Root"]
    assert root["/Lang"] == "de-DE"
    assert bool(root["/ViewerPreferences"]["/DisplayDocTitle"])
    first_bookmark: Any = reader.outline[0]
    assert first_bookmark.title == letter_parts.TITLES[kind]

    # Audited with the kind only; nothing typed stored anywhere, no file left behind.
    recorded = events(runtime)
    assert [event.details for event in recorded] == [{"kind": kind.value}] * 2
    assert all(event.actor_kind == "reporter" and event.actor_id is None for event in recorded)
    assert data_files(runtime) == before
    assert_nothing_in_clear(runtime, MARKERS)


def test_a_holding_counsellor_gets_every_letter_and_the_history_names_none_of_it(
    runtime: Runtime, open_browser: Browsers, make_staff: MakeStaff, code: Callable[[Staff], str]
) -> None:
    filed_reporter(open_browser)
    holder, counsellor, url, page = holder_on_case_page(runtime, open_browser, make_staff, code)
    assert f'action="{url}/brief"' in page
    before = data_files(runtime)

    for kind in LetterKind:
        assert_letter(kind, flat(letter(counsellor, url, f"{url}/brief", kind.value, "txt").decode()))
        assert_letter(kind, pdf_text(letter(counsellor, url, f"{url}/brief", kind.value, "pdf")))

    recorded = events(runtime)
    assert [event.details["kind"] for event in recorded] == [kind.value for kind in LetterKind for _ in "ab"]
    assert all((event.actor_kind, event.actor_id) == ("staff", holder.user_id) for event in recorded)
    history = counsellor.get(url).text
    assert "Schreiben erstellt" in history
    assert not any(marker in history for marker in MARKERS)
    assert data_files(runtime) == before
    assert_nothing_in_clear(runtime, MARKERS)


def test_the_letters_name_each_file_as_the_evidence_zip_does(
    runtime: Runtime, open_browser: Browsers
) -> None:
    """The ZIP's entries and SHA256SUMS are what the letters cite: the same numbered name, the same hash."""
    reporter = filed_reporter(open_browser)
    token = csrf_token(reporter.get("/fall").text)
    archive = zipfile.ZipFile(io.BytesIO(reporter.post("/fall/beweise", data={"csrf_token": token}).content))
    sums: dict[str, str] = {}
    for line in archive.read("SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    assert sums == FILES
    assert archive.namelist()[1:] == list(FILES)
    for kind in (LetterKind.strafanzeige, LetterKind.auskunftssperre, LetterKind.strafantrag_dienst):
        lines = letter(reporter, "/fall", "/fall/brief", kind.value, "txt").decode().splitlines()
        cited = {
            line.split("\u2068", 1)[1].split("\u2069", 1)[0]: after.removeprefix("  SHA-256: ")
            for line, after in pairwise(lines)
            if after.startswith("  SHA-256: ")
        }
        assert cited == sums, kind


def test_the_page_prefills_the_platform_explanation_from_the_incident_types(
    runtime: Runtime, open_browser: Browsers
) -> None:
    page = filed_reporter(open_browser).get("/fall").text
    field = re.search(r'<textarea[^>]*name="letter_explanation"[^>]*>([^<]*)</textarea>', page)
    assert field is not None
    prefilled = field.group(1)
    assert "§§ 185, 188 StGB" in prefilled
    assert "§ 241 StGB" in prefilled
    # Left empty, the letter builds the same explanation itself.
    reporter = filed_reporter(open_browser)
    token = csrf_token(reporter.get("/fall").text)
    sent = {"csrf_token": token, "kind": "plattform", "format": "txt", "letter_explanation": ""}
    text = reporter.post("/fall/brief", data=sent).text
    assert "Todesdrohung: § 241 StGB" in text
    assert "[Vor- und Nachname]" in text
    assert "[E-Mail-Adresse]" in text


def test_without_typed_fields_the_letters_keep_placeholders(runtime: Runtime, open_browser: Browsers) -> None:
    reporter = filed_reporter(open_browser)
    token = csrf_token(reporter.get("/fall").text)
    texts = {
        kind: reporter.post(
            "/fall/brief", data={"csrf_token": token, "kind": kind.value, "format": "txt"}
        ).text
        for kind in LetterKind
    }
    assert (
        "[Anschrift: Dienstanschrift oder andere ladungsfähige Anschrift]" in texts[LetterKind.strafanzeige]
    )
    assert "Aktenzeichen:" not in texts[LetterKind.strafanzeige]
    assert "[Vor- und Nachname, Geburtsdatum jeder weiteren Person" in texts[LetterKind.auskunftssperre]
    assert "[Vor- und Nachname, Amts- oder Dienstbezeichnung" in texts[LetterKind.strafantrag_dienst]
    assert "bis einschließlich [Datum]" in texts[LetterKind.hausverbot]
    assert len(events(runtime)) == len(LetterKind)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("letter_name", "x" * 201),
        ("letter_household", "x" * 2001),
        ("letter_explanation", "x" * 5001),
        ("letter_name", "a\x1bb"),
        ("letter_official", "a\u202eb"),
        ("letter_email", "keine-adresse"),
        ("letter_until", "30.06.2027"),
        ("kind", "kuendigung"),
        ("format", "docx"),
    ],
)
def test_a_refused_letter_form_generates_nothing_and_keeps_what_was_typed(
    runtime: Runtime,
    open_browser: Browsers,
    make_staff: MakeStaff,
    code: Callable[[Staff], str],
    field: str,
    value: str,
) -> None:
    reporter = filed_reporter(open_browser)
    with runtime.sessions() as db:
        case_id = db.scalars(select(Case.id)).one()
    counsellor = staff_browser(
        open_browser, make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]), code
    )
    url = f"/intern/faelle/{case_id}"
    for client, page_url, action in ((reporter, "/fall", "/fall/brief"), (counsellor, url, f"{url}/brief")):
        data = {"kind": "auskunftssperre", "format": "pdf", "letter_recipient": "Erika Kanarie", field: value}
        data["csrf_token"] = csrf_token(client.get(page_url).text)
        refused = client.post(action, data=data)
        assert refused.status_code == 422, (action, refused.text[:200])
        assert "text/html" in refused.headers["content-type"]
        # The page comes back with the summary and what was typed.
        assert "Erika Kanarie" in refused.text
        wanted = "field-letter_kind" if field in ("kind", "format") else f"field-{field}"
        assert f'href="#{wanted}"' in refused.text
    assert events(runtime) == []


def test_every_pdf_heading_is_a_line_some_letter_writes() -> None:
    """The headings the PDF sets in bold are matched by their exact text: one a letter no longer writes
    would silently lose its bold and its bookmark."""
    from datetime import UTC, date, datetime

    from service.dossier.service import Dossier, DossierIncident

    incident = DossierIncident(
        seq=1,
        received_at=datetime(2026, 11, 28, 20, 0, tzinfo=UTC),
        occurred_on=date(2026, 11, 28),
        types=[Coded("A3a", "Todesdrohung", "§ 241 StGB")],
        channel=Coded("email", "E-Mail"),
        description="Drohung",
        place="",
        platform="",
        url="",
        files=[],
    )
    dossier = Dossier(
        datetime(2026, 11, 28, tzinfo=UTC), datetime(2026, 12, 6, tzinfo=UTC), [incident], [], []
    )
    written = {
        line
        for kind in LetterKind
        for line in letters.write(kind, dossier, letter_parts.Typed(), date(2026, 12, 6)).splitlines()
    }
    assert written >= HEADINGS
    assert written >= set(letter_parts.TITLES.values())


def test_the_explanation_names_each_provision_once_and_asks_for_the_content() -> None:
    text = letters.explanation(
        [
            Coded("A1", "Beleidigung", "§§ 185, 188 StGB"),
            Coded("A1", "Beleidigung", "§§ 185, 188 StGB"),
            Coded("A10", "Kampagne"),
        ]
    )
    assert text.count("§§ 185, 188 StGB") == 1
    assert "Kampagne" not in text
    assert "[Beschreiben Sie kurz" in text
    assert "§ 241 StGB" in letters.explanation([Coded("X1", "Sonstiges")])


def test_the_form_limits_each_field_as_the_server_does() -> None:
    """The page's maxlength and the server's limit agree, so a browser never cuts what the server accepts."""
    from pathlib import Path

    template = (Path(__file__).resolve().parents[2] / "templates/pages/_letters.html").read_text()
    shown = {
        name: int(limit) for name, limit in re.findall(r'field\("(letter_\w+)".*?maxlength=(\d+)', template)
    }
    assert shown == letter_parts.FIELD_LIMITS
