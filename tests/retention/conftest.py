"""Cases for the retention tests, made the way users make them: filed through the intake, worked by a
counsellor through the case service, answered by the reporter on /fall with a file. Only the closing date
is set directly in the database (set-up: a real closure would have to wait a year).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth.subject import Subject
from service.db import utcnow
from service.identity.models import MembershipRole
from service.runtime import Runtime
from tests.support.forms import csrf_token
from tests.support.retention import PDF, REPORT, Filed, FileReport, WorkCase
from tests.support.staff import MakeStaff, Staff


@pytest.fixture
def now() -> datetime:
    return utcnow()


@pytest.fixture
def file_report(client: TestClient, runtime: Runtime) -> FileReport:
    """File a report through the JSON intake; returns its receipt and the case id the receipt opens."""

    def file(**changes: Any) -> Filed:
        response = client.post("/api/v1/reports", json={**REPORT, **changes})
        assert response.status_code == 201, response.text
        receipt = str(response.json()["receipt"])
        with runtime.sessions() as db:
            case_id = runtime.intake.open_case(db, receipt).case.id
        return Filed(receipt=receipt, case_id=case_id)

    return file


@pytest.fixture
def counsellor_staff(make_staff: MakeStaff) -> Staff:
    # beratung-by receives the Bavarian reports of REPORT (policies/routing.yaml).
    return make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])


@pytest.fixture
def counsellor(counsellor_staff: Staff, subject_of: Callable[[Staff], Subject]) -> Subject:
    return subject_of(counsellor_staff)


@pytest.fixture
def work_case(client: TestClient, runtime: Runtime, counsellor: Subject) -> Iterator[WorkCase]:
    """Give a case what a worked case has: a second incident, a message and a note of the counsellor, and
    a reporter signed in on /fall who answered with a file. Returns the reporter's signed-in client."""
    with ExitStack() as stack:

        def work(filed: Filed) -> TestClient:
            further = {k: REPORT[k] for k in ("type_codes", "description", "channel")}
            added = client.post("/api/v1/reports/incidents", json={**further, "receipt": filed.receipt})
            assert added.status_code == 201, added.text
            with runtime.sessions() as db:
                runtime.cases.post_message(db, counsellor, filed.case_id, "Wir sind für Sie da.")
                db.commit()  # the transaction the endpoint would have run
            with runtime.sessions() as db:
                runtime.cases.add_note(db, counsellor, filed.case_id, "Rückruf am Dienstag vereinbart.")
                db.commit()  # the transaction the endpoint would have run

            reporter = stack.enter_context(
                TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1")
            )
            form = {"csrf_token": csrf_token(reporter.get("/fall").text), "receipt": filed.receipt}
            assert reporter.post("/fall/anmelden", data=form).status_code == 200
            sent = reporter.post(
                "/fall/nachricht",
                data={
                    "csrf_token": csrf_token(reporter.get("/fall").text),
                    "message": "Danke, anbei das Foto.",
                },
                files=[("message_files", ("Drohung.pdf", PDF, "application/pdf"))],
                follow_redirects=False,
            )
            assert sent.status_code == 303, sent.text
            return reporter

        yield work
