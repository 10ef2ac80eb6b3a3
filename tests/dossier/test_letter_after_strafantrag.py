"""Once the proceedings of an incident record a Strafantrag (service/cases/proceedings.py), the draft letters
say on which day it was filed and count no Strafantrag deadline for that incident: a counted "last day"
next to a filed application would only alarm. Incidents without a recorded Strafantrag keep their deadline.
The PDF read with pypdf, as tests/dossier/test_letters.py does; both databases."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from service.cases.models import Case
from service.dossier.criminal_letters import strafanzeige
from service.dossier.letter_parts import LetterKind, Typed
from service.dossier.service import Coded, Dossier, DossierIncident
from service.identity.models import MembershipRole
from service.runtime import Runtime
from tests.support.evidence import PDF, Browsers, browsers, file_report, flat, sign_in, staff_browser
from tests.support.forms import csrf_token
from tests.support.staff import MakeStaff, Staff

# A1 is a complaint-only offence: filed on 28.11.2026, the Strafantrag period ends on 28.02.2027.
DEADLINE = "28.02.2027"
FILED_ON = "2026-12-01"
FILED_DE = "01.12.2026"


@pytest.fixture
def open_browser(runtime: Runtime) -> Iterator[Browsers]:
    with browsers(runtime) as made:
        yield made


def pdf_text(document: bytes) -> str:
    assert document.startswith(b"%PDF-")
    return flat("\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages))


def letter(client: TestClient, url: str, kind: LetterKind, fmt: str) -> bytes:
    token = csrf_token(client.get(url).text)
    response = client.post(f"{url}/brief", data={"csrf_token": token, "kind": kind.value, "format": fmt})
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture
def counsellor_case(
    runtime: Runtime, open_browser: Browsers, make_staff: MakeStaff, code: Callable[[Staff], str]
) -> tuple[TestClient, str]:
    reporter = open_browser.new()
    receipt = file_report(
        reporter,
        [("attachments", ("Screenshot.pdf", PDF, "application/pdf"))],
        type_codes=("A1",),
        occurred_on="2026-11-28",
    )
    sign_in(reporter, receipt)
    with runtime.sessions() as db:
        case_id = db.scalars(select(Case.id)).one()
    holder = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    return staff_browser(open_browser, holder, code), f"/intern/faelle/{case_id}"


def test_the_letters_say_the_strafantrag_was_filed_and_count_no_deadline(
    counsellor_case: tuple[TestClient, str],
) -> None:
    counsellor, url = counsellor_case
    # Before: the deadline is counted (as tests/dossier/test_letters.py checks for every letter).
    before = pdf_text(letter(counsellor, url, LetterKind.strafanzeige, "pdf"))
    assert f"endet die Frist für Vorfall 1 am {DEADLINE}" in before
    assert "bereits am" not in before
    # The counsellor records the Strafantrag in the incident's proceedings.
    token = csrf_token(counsellor.get(url).text)
    saved = counsellor.post(
        f"{url}/vorfaelle/1/verfahren",
        data={"csrf_token": token, "application_on": FILED_ON},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    for fmt in ("pdf", "txt"):
        document = letter(counsellor, url, LetterKind.strafanzeige, fmt)
        shown = pdf_text(document) if fmt == "pdf" else flat(document.decode())
        assert DEADLINE not in shown, fmt
        assert f"Wegen Vorfall 1 wurde bereits am {FILED_DE} Strafantrag gestellt." in shown, fmt
        assert f"wurde der Strafantrag für Vorfall 1 am {FILED_DE} gestellt" in shown, fmt
        assert "ist der Strafantrag für jeden Vorfall schon gestellt" in shown, fmt
        assert "Der Strafantrag muss innerhalb von drei Monaten gestellt werden" not in shown, fmt
    # The superior's letter too: the affected person's application, with its day, and no deadline.
    superior = pdf_text(letter(counsellor, url, LetterKind.strafantrag_dienst, "pdf"))
    assert DEADLINE not in superior
    assert f"wurde der Strafantrag der betroffenen Person für Vorfall 1 am {FILED_DE} gestellt" in superior


def test_an_incident_without_a_recorded_strafantrag_keeps_its_deadline() -> None:
    """Two incidents, one with a Strafantrag recorded: the letter says the day for that one and still
    counts the other's deadline, with the general note on the three months (the letter function alone,
    on a dossier as ``build`` makes it)."""
    first = DossierIncident(
        seq=1,
        received_at=datetime(2026, 11, 28, 12, tzinfo=UTC),
        occurred_on=date(2026, 11, 28),
        types=[],
        channel=Coded(code="letter", label="Brief"),
        description="Drohbrief.",
        place="",
        platform="",
        url="",
        files=[],
        complaint_ends_on=date(2027, 2, 28),
        application_on=date(2026, 12, 1),
    )
    second = dataclasses.replace(first, seq=2, application_on=None, complaint_ends_on=date(2027, 3, 5))
    dossier = Dossier(
        case_created_at=first.received_at,
        generated_at=first.received_at,
        incidents=[first, second],
        message_files=[],
        holders=[],
    )
    text = flat(strafanzeige(dossier, Typed(), date(2026, 12, 6)))
    assert f"Wegen Vorfall 1 wurde bereits am {FILED_DE} Strafantrag gestellt." in text
    assert "Wegen Vorfall 2" not in text
    assert f"wurde der Strafantrag für Vorfall 1 am {FILED_DE} gestellt" in text
    assert "endet die Frist für Vorfall 1" not in text
    assert DEADLINE not in text
    assert "endet die Frist für Vorfall 2 am 05.03.2027" in text
    assert "Der Strafantrag muss innerhalb von drei Monaten gestellt werden" in text
    assert "§ 77b StGB" in text
