"""The case dossier (service/dossier): a valid PDF with the chronology, each evidence file's SHA-256, the
times of receipt and the holders, for the reporter on /fall and for a counsellor holding the case; nothing of
it stored (in the database or the data folder), its generation audited without content. Both databases.
Who may not generate it: test_download_access.py."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.cases.models import Case
from service.crypto import Context, seal
from service.evidence.models import Attachment
from service.runtime import Runtime
from tests.support.evidence import (
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
)
from tests.support.forms import csrf_token
from tests.support.staff import MakeStaff, Staff

# A threat pasted with a right-to-left override (it would reorder what follows on a screen) and markup.
TYPED = "Kommentar: \u202eTOD\u202c <b>Wir wissen, wo du wohnst.</b> 🔪 Dossier-Kanarienvogel-7"
HOLDER = "Beratungsstelle Rückhalt Bayern (Demo)"


def pdf_text(document: bytes) -> str:
    assert document.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(document))
    assert len(reader.pages) >= 1
    return "\n".join(page.extract_text() for page in reader.pages)


def dossier_events(runtime: Runtime) -> list[AuditEvent]:
    with runtime.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == "dossier.generated")).all())


@pytest.fixture
def open_browser(runtime: Runtime) -> Iterator[Browsers]:
    with browsers(runtime) as made:
        yield made


def filed_reporter(open_browser: Browsers) -> tuple[TestClient, str]:
    reporter = open_browser.new()
    sent = [
        ("attachments", ("Screenshot Kommentar.pdf", PDF, "application/pdf")),
        ("attachments", ("Chatverlauf.txt", TEXT, "text/plain")),
    ]
    receipt = file_report(reporter, sent, description=TYPED, occurred_on="2026-11-28")
    sign_in(reporter, receipt)
    return reporter, receipt


def reporter_dossier(reporter: TestClient) -> bytes:
    token = csrf_token(reporter.get("/fall").text)
    response = reporter.post("/fall/dossier", data={"csrf_token": token})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "no-store" in response.headers["cache-control"]
    return response.content


def test_the_reporter_gets_the_dossier_with_chronology_hashes_times_and_holders(
    runtime: Runtime, open_browser: Browsers
) -> None:
    reporter, _ = filed_reporter(open_browser)
    page = reporter.get("/fall").text
    assert 'action="/fall/dossier"' in page
    before = data_files(runtime)

    text = pdf_text(reporter_dossier(reporter))
    flat_text = flat(text)
    assert "Dossier zum Fall" in text
    assert "Vorfall 1" in text
    assert "28.11.2026" in text
    # The codes with their labels, the channel, the typed text as text (markup shown, not applied).
    label = runtime.taxonomy.label("incident_types", "A3a", "de")
    assert f"A3a – {label}" in flat_text
    assert "A9 – " in flat_text
    assert "<b>Wir wissen, wo du wohnst.</b>" in flat_text
    assert "Dossier-Kanarienvogel-7" in flat_text
    # The override is not drawn (and cannot reorder anything); it is named instead. The emoji has no glyph.
    assert "\u202e" not in text
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in flat_text
    assert "[U+1F52A]" in flat_text
    # Every file with the SHA-256 of what was sent, sealed at upload (no "computed now" note).
    assert "Screenshot Kommentar.pdf" in text
    assert "Chatverlauf.txt" in text
    assert f"SHA-256: {SHA_PDF}" in flat_text
    assert f"SHA-256: {SHA_TEXT}" in flat_text
    assert "beim Erstellen dieses Dossiers berechnet" not in flat_text
    # The service's receipt time of the incident and of each file, and the holders.
    with runtime.sessions() as db:
        received = db.scalars(select(Case.created_at)).one()
    assert len(re.findall(r"\d\d\.\d\d\.\d{4}, \d\d:\d\d", text)) >= 4
    assert received.strftime("%Y") in text
    assert HOLDER in flat_text

    # Audited without content; nothing new on disk; nothing of it in clear in the database.
    (event,) = dossier_events(runtime)
    assert event.actor_kind == "reporter"
    assert event.actor_id is None
    assert event.details == {"files": 2, "hashed_now": 0}
    assert data_files(runtime) == before
    assert_nothing_in_clear(runtime, [SHA_PDF, SHA_TEXT, "Dossier-Kanarienvogel-7", "Chatverlauf"])

    # English, too.
    english = reporter.get("/fall?lang=en")
    assert english.status_code == 200
    assert "Chronology of incidents" in pdf_text(reporter_dossier(reporter))


def test_a_file_stored_before_hashing_is_hashed_while_the_dossier_is_made(
    runtime: Runtime, open_browser: Browsers
) -> None:
    reporter, receipt = filed_reporter(open_browser)
    # As uploads were sealed before: name and type only, no hash.
    with runtime.sessions() as db:
        key = runtime.intake.open_case(db, receipt).data_key
        for attachment in db.scalars(select(Attachment)).all():
            context = Context("attachment_meta", case_id=attachment.case_id, record_id=attachment.id)
            meta = {"filename": "alt.bin", "content_type": attachment.content_type}
            attachment.meta_ciphertext = seal(key, json.dumps(meta).encode(), context)
        db.commit()

    flat_text = flat(pdf_text(reporter_dossier(reporter)))
    assert f"SHA-256: {SHA_PDF}" in flat_text
    assert f"SHA-256: {SHA_TEXT}" in flat_text
    assert flat_text.count("beim Erstellen dieses Dossiers berechnet") == 2
    (event,) = dossier_events(runtime)
    assert event.details == {"files": 2, "hashed_now": 2}
    # Computed, shown, and not kept anywhere.
    assert_nothing_in_clear(runtime, [SHA_PDF, SHA_TEXT])


def test_a_holding_counsellor_gets_the_dossier(
    runtime: Runtime, open_browser: Browsers, make_staff: MakeStaff, code: Callable[[Staff], str]
) -> None:
    filed_reporter(open_browser)
    holder, counsellor, url, page = holder_on_case_page(runtime, open_browser, make_staff, code)
    assert f'action="{url}/dossier"' in page

    response = counsellor.post(f"{url}/dossier", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 200
    flat_text = flat(pdf_text(response.content))
    assert f"SHA-256: {SHA_PDF}" in flat_text
    assert f"SHA-256: {SHA_TEXT}" in flat_text
    assert HOLDER in flat_text
    assert "Dossier-Kanarienvogel-7" in flat_text
    (event,) = dossier_events(runtime)
    assert (event.actor_kind, event.actor_id) == ("staff", holder.user_id)
    assert event.details == {"files": 2, "hashed_now": 0}
    # The case history shows it, without content.
    assert "Dossier erstellt" in counsellor.get(url).text

    assert_nothing_in_clear(runtime, [SHA_PDF, SHA_TEXT, "Dossier-Kanarienvogel-7"])
