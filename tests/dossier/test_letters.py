"""The Strafanzeige with Strafantrag (service/dossier/letters.py) from the reporter's /fall session: PDF and
plain text with the incident, its date, the Strafantrag deadline, every file's hash and the legal requests;
the typed name, address and Aktenzeichen in the letter and nowhere else; audited with the kind only."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from evidence_helpers import (
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
    sign_in,
)
from fastapi.testclient import TestClient
from helpers import csrf_token
from pypdf import PdfReader
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.runtime import Runtime

NAME = "Brief-Kanarienvogel Erika Mustermann"
ADDRESS = "Rathausplatz 1\n99999 Brief-Kanarienhausen"
REFERENCE = "AZ-KANARIE-4711"


@pytest.fixture
def reporter(runtime: Runtime) -> Iterator[TestClient]:
    with browsers(runtime) as made:
        yield _filed(made)


def _filed(made: Browsers) -> TestClient:
    client = made.new()
    sent = [
        ("attachments", ("Screenshot.pdf", PDF, "application/pdf")),
        ("attachments", ("Chat.txt", TEXT, "text/plain")),
    ]
    receipt = file_report(client, sent, type_codes=("A3a",), occurred_on="2026-11-28")
    sign_in(client, receipt)
    return client


def letter(client: TestClient, fmt: str, **typed: str) -> bytes:
    token = csrf_token(client.get("/fall").text)
    data = {"csrf_token": token, "kind": "strafanzeige", "format": fmt, **typed}
    response = client.post("/fall/brief", data=data)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment;")
    return response.content


def events(runtime: Runtime) -> list[AuditEvent]:
    with runtime.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == "letter.generated")).all())


def test_the_letter_as_text_and_pdf_holds_the_case_and_the_legal_requests(
    runtime: Runtime, reporter: TestClient
) -> None:
    assert 'action="/fall/brief"' in reporter.get("/fall").text
    before = data_files(runtime)
    typed = {"letter_name": NAME, "letter_address": ADDRESS, "letter_reference": REFERENCE}
    text = letter(reporter, "txt", **typed).decode()
    document = letter(reporter, "pdf", **typed)
    assert document.startswith(b"%PDF-")
    pdf = flat("\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages))
    for shown in (flat(text), pdf):
        assert "Strafanzeige und Strafantrag" in shown
        assert "§ 158 StPO" in shown
        assert "§ 77b StGB" in shown
        assert "§ 406d StPO" in shown
        assert "§ 68 StPO" in shown
        assert "Entwurf zum Prüfen, keine Rechtsberatung" in shown
        assert "28.11.2026" in shown
        assert "Drohbrief im Briefkasten des Rathauses" in shown
        assert f"SHA-256: {SHA_PDF}" in shown
        assert f"SHA-256: {SHA_TEXT}" in shown
        assert NAME in shown
        assert "Brief-Kanarienhausen" in shown
        assert REFERENCE in shown
    # Typed text is isolated line by line in plain text (service/display.py).
    assert "\u2068Rathausplatz 1\u2069" in text

    # Audited with the kind only; nothing typed stored anywhere, no file left behind.
    recorded = events(runtime)
    assert len(recorded) == 2
    assert all(event.details == {"kind": "strafanzeige"} for event in recorded)
    assert all(event.actor_kind == "reporter" and event.actor_id is None for event in recorded)
    assert data_files(runtime) == before
    assert_nothing_in_clear(runtime, ["Brief-Kanarienvogel", "Brief-Kanarienhausen", REFERENCE])


def test_without_typed_fields_the_letter_keeps_placeholders(runtime: Runtime, reporter: TestClient) -> None:
    text = letter(reporter, "txt").decode()
    assert "[Vor- und Nachname]" in text
    assert "[Anschrift: Dienstanschrift oder andere ladungsfähige Anschrift]" in text
    assert "Aktenzeichen:" not in text
    assert len(events(runtime)) == 1


def test_a_refused_letter_form_generates_nothing(runtime: Runtime, reporter: TestClient) -> None:
    token = csrf_token(reporter.get("/fall").text)
    base = {"kind": "strafanzeige", "format": "pdf", "letter_name": NAME}
    assert reporter.post("/fall/brief", data={**base, "csrf_token": "0" * 64}).status_code == 403
    too_long = reporter.post("/fall/brief", data={**base, "csrf_token": token, "letter_name": "x" * 201})
    assert too_long.status_code == 422
    control = reporter.post("/fall/brief", data={**base, "csrf_token": token, "letter_name": "a\x1bb"})
    assert control.status_code == 422
    unknown = reporter.post("/fall/brief", data={**base, "csrf_token": token, "kind": "hausverbot"})
    assert unknown.status_code == 422
    assert events(runtime) == []
    with browsers(runtime) as made:
        stranger = made.new()
        token = csrf_token(stranger.get("/fall").text)
        signed_out = stranger.post("/fall/brief", data={**base, "csrf_token": token}, follow_redirects=False)
        assert signed_out.status_code == 303
    assert events(runtime) == []
