"""What the service promises about an answer (issue 15, '"We will answer within 24 hours"').

Only the acknowledgement is measured (a counsellor confirms that someone has the report), so the receipt
names it as a target, not as an answer, with the measured share of the last weeks only when enough reports
were judged; /fall shows every reporter, with or without a notification address, whether and when the report
was acknowledged and first answered (days only). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.cases.models import Case
from service.cases.response_times import acknowledgement_share
from service.db import utcnow
from service.i18n import format_date
from service.identity.models import MembershipRole
from service.runtime import Runtime
from tests.support.forms import csrf_token, report_body, report_form_tokens
from tests.support.staff import MakeStaff

REPORT = report_body(type_codes=["A9"], description="Drohbrief.", channel="letter")


def file_form(client: TestClient) -> Any:
    data = {**report_form_tokens(client.get("/melden").text), **REPORT, "consent_counselling": "1"}
    answer = client.post("/melden", data=data)
    assert answer.status_code == 201
    return answer


def text_of(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def overview(page: str) -> str:
    found = re.search(r'<dl class="summary-list">(.*?)</dl>', page, re.S)
    assert found
    return text_of(found.group(1))


def test_the_receipt_promises_the_acknowledgement_target_and_no_answer_without_a_figure(
    client: TestClient,
) -> None:
    receipt = text_of(file_form(client).text)
    assert "Ziel: Eine Beraterin oder ein Berater bestätigt den Eingang innerhalb von 24 Stunden." in receipt
    assert "eine Antwort ist sie noch nicht" in receipt
    assert "auch ohne E-Mail-Adresse" in receipt
    assert "In den letzten" not in receipt, "no figure without enough reports"


def test_the_receipt_shows_the_measured_share_when_enough_reports_were_judged(runtime: Runtime) -> None:
    """Six reports of the last weeks whose target has passed: four acknowledged in time, one late, one
    never. The receipt says 66 % of 6 (rounded down: never more than was kept); a report still within its
    target is not judged."""
    settings = runtime.settings.model_copy(update={"ack_figure_min_cases": 5})
    app = create_app(runtime=dataclasses.replace(runtime, settings=settings))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for _ in range(7):
            assert client.post("/api/v1/reports", json=REPORT).status_code == 201
        now = utcnow()
        with runtime.sessions() as db:
            cases = db.scalars(select(Case).order_by(Case.id)).all()
            for index, case in enumerate(cases[:6]):
                case.created_at = now - timedelta(days=10)
                case.ack_deadline_at = now - timedelta(days=9)
                if index < 4:
                    case.acknowledged_at = now - timedelta(days=9, hours=2)
                elif index == 4:
                    case.acknowledged_at = now - timedelta(days=8)
            db.commit()
            share = acknowledgement_share(db, now, weeks=12, min_cases=5)
        assert share is not None
        assert (share.cases, share.percent) == (6, 66)
        receipt = text_of(file_form(client).text)
        assert (
            "In den letzten 12 Wochen wurde der Eingang bei 66 % von 6 Berichten innerhalb dieses Ziels "
            "bestätigt." in receipt
        )
        with runtime.sessions() as db:
            assert acknowledgement_share(db, now, weeks=12, min_cases=7) is None


def test_the_case_page_shows_acknowledgement_and_first_answer_by_day(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, login: Any
) -> None:
    """An anonymous reporter without an address sees on /fall whether and when the report was
    acknowledged and first answered: the day, never the time."""
    receipt = client.post("/api/v1/reports", json=REPORT).json()["receipt"]
    client.post(
        "/fall/anmelden", data={"csrf_token": csrf_token(client.get("/fall").text), "receipt": receipt}
    )
    before = overview(client.get("/fall").text)
    assert "Eingang bestätigt noch nicht" in before
    assert "Erste Antwort noch keine" in before

    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    case_id = counsellor.get("/api/v1/cases").json()[0]["id"]
    assert counsellor.patch(f"/api/v1/cases/{case_id}", json={"acknowledge": True}).status_code == 204
    acknowledged = overview(client.get("/fall").text)
    today = format_date(utcnow(), "de")
    assert f"Eingang bestätigt am {today}" in acknowledged
    assert "Erste Antwort noch keine" in acknowledged

    assert counsellor.post(f"/api/v1/cases/{case_id}/messages", json={"body": "Hallo"}).status_code == 201
    answered = overview(client.get("/fall").text)
    assert f"Erste Antwort am {today}" in answered
    assert not re.search(r"\d{1,2}:\d{2}", answered.split("Eingang bestätigt", 1)[1]), "days only, no time"
    lookup = client.post("/api/v1/reports/lookup", json={"receipt": receipt}).json()
    assert lookup["acknowledged_on"] == lookup["first_reply_on"] == format_date(utcnow(), "en")
