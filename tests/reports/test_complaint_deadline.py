"""Issue 15, "Deadlines the reporter cannot see": the Strafantrag deadline on the receipt and on /fall.

§ 77b Abs. 1 StGB: three months; Abs. 2: from the end of the day on which the entitled person learns of the
act and of the perpetrator. The form takes an optional "Tatperson bekannt seit" (sealed in the incident, no
clear column); without a known perpetrator the period has not begun and nothing is ever called expired. A
deadline 14 days away or closer is said first on the receipt and makes the case urgent for counsellors.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import LargeBinary, inspect, select

from service.cases.deadlines import (
    ComplaintDeadline,
    DeadlineBasis,
    add_months,
    complaint_deadline_of,
    reminder_week,
)
from service.cases.models import Case, Incident
from service.i18n import LOCAL_ZONE
from service.outbox.models import OutboxMessage
from service.reports.deadline_view import DeadlineState, deadline_view
from service.runtime import Runtime
from tests.support.forms import csrf_token, submission_token

RECEIPT = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}")


def today() -> date:
    return datetime.now(LOCAL_ZONE).date()


def report(client: TestClient, **fields: Any) -> Any:
    page = client.get("/melden").text
    data = {
        "csrf_token": csrf_token(page),
        "submission_token": submission_token(page),
        "land": "09",
        "district_ags": "09162",
        # A1, insult: a complaint-only offence in the taxonomy (§ 194 StGB).
        "type_codes": ["A1"],
        "description": "Beleidigung im Gemeinderat.",
        "channel": "in_person.town_hall",
        "urgency": "normal",
        **fields,
    }
    return client.post("/melden", data=data)


def case_of(runtime: Runtime) -> Case:
    with runtime.sessions() as db:
        case = db.scalars(select(Case)).one()
        db.expunge(case)
        return case


# -- the rule ------------------------------------------------------------------------------------------------


def test_the_period_runs_from_the_later_of_incident_and_knowing_the_perpetrator() -> None:
    known = complaint_deadline_of(
        complaint_only=True,
        occurred_on=date(2026, 3, 1),
        perpetrator_known_on=date(2026, 5, 10),
        perpetrator_familiarity="unknown",
    )
    assert known == ComplaintDeadline(DeadlineBasis.perpetrator_known, date(2026, 8, 10))
    # Known "since" before the act: the period still starts with the act.
    earlier = complaint_deadline_of(
        complaint_only=True,
        occurred_on=date(2026, 3, 1),
        perpetrator_known_on=date(2020, 1, 1),
        perpetrator_familiarity="known",
    )
    assert earlier.ends_on == date(2026, 6, 1)
    # § 188 Abs. 3 BGB: no 30 February, the month's last day.
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


def test_an_unknown_perpetrator_never_makes_the_deadline_expire() -> None:
    for familiarity in ("unknown", "anonymous"):
        deadline = complaint_deadline_of(
            complaint_only=True,
            occurred_on=date(2020, 1, 1),
            perpetrator_known_on=None,
            perpetrator_familiarity=familiarity,
        )
        assert deadline == ComplaintDeadline(DeadlineBasis.perpetrator_unknown)
        view = deadline_view(deadline, date(2026, 1, 1), "de")
        assert view is not None
        assert view.state is DeadlineState.not_started
        assert reminder_week(deadline.ends_on, date(2026, 1, 1)) is None
    # Counted from the incident only, a passed day is "possibly" passed; from a known perpetrator, passed.
    from_incident = complaint_deadline_of(
        complaint_only=True,
        occurred_on=date(2020, 1, 1),
        perpetrator_known_on=None,
        perpetrator_familiarity=None,
    )
    passed = deadline_view(from_incident, date(2026, 1, 1), "de")
    assert passed is not None
    assert passed.state is DeadlineState.possibly_passed
    none = complaint_deadline_of(
        complaint_only=False,
        occurred_on=date(2026, 1, 1),
        perpetrator_known_on=None,
        perpetrator_familiarity=None,
    )
    assert deadline_view(none, date(2026, 1, 2), "de") is None


# -- the receipt ---------------------------------------------------------------------------------------------


def test_a_deadline_days_away_is_said_first_on_the_receipt_and_marks_the_case_urgent(
    client: TestClient, runtime: Runtime
) -> None:
    occurred = today() - timedelta(days=85)
    ends = add_months(occurred, 3)
    assert 0 < (ends - today()).days <= 14

    filed = report(client, occurred_on=occurred.isoformat(), perpetrator_familiarity="known")

    assert filed.status_code == 201, filed.text
    text = filed.text
    urgent = text.index("Wichtig: Die Frist für einen Strafantrag endet bald")
    assert urgent < text.index('id="receipt-heading"'), "said before the code, first thing on the page"
    assert ends.strftime("%d.%m.%Y") in text
    assert "§ 77b Abs. 1 und 2 StGB" in text
    assert "keine Rechtsberatung" in text
    case = case_of(runtime)
    assert case.urgency == "high"
    with runtime.sessions() as db:
        told = [
            row.payload for row in db.scalars(select(OutboxMessage)) if row.topic == "notifications.new_case"
        ]
        incident = db.scalars(select(Incident)).one()
    assert told
    assert {payload["urgency"] for payload in told} == {"high"}
    # The inbox warns from the clear reminder week (no key needed): its first reminder is already due.
    assert incident.complaint_reminder_on is not None
    assert incident.complaint_reminder_on <= today()


def test_an_unknown_perpetrator_is_told_when_the_three_months_start(
    client: TestClient, runtime: Runtime
) -> None:
    filed = report(
        client, occurred_on=(today() - timedelta(days=200)).isoformat(), perpetrator_familiarity="unknown"
    )
    assert filed.status_code == 201, filed.text
    assert "beginnen erst, wenn Sie wissen, wer die Tatperson ist" in filed.text
    assert "gegen Unbekannt" in filed.text
    assert "endete" not in filed.text
    assert "abgelaufen" not in filed.text
    assert case_of(runtime).urgency == "normal"
    with runtime.sessions() as db:
        assert db.scalars(select(Incident.complaint_reminder_on)).one() is None


def test_a_report_without_a_complaint_offence_shows_no_deadline(client: TestClient) -> None:
    filed = report(client, type_codes=["A3a"], occurred_on=today().isoformat())
    assert filed.status_code == 201, filed.text
    assert "Frist für einen Strafantrag" not in filed.text


def test_the_known_since_date_is_sealed_never_a_clear_column(client: TestClient, runtime: Runtime) -> None:
    known = today() - timedelta(days=3)
    filed = report(client, perpetrator_known_on=known.isoformat(), perpetrator_familiarity="known")
    assert filed.status_code == 201, filed.text
    # Counted from the known-since day, three months ahead: the ordinary (not urgent) box.
    assert add_months(known, 3).strftime("%d.%m.%Y") in filed.text
    assert "Gerechnet ab dem Tag, seit dem Sie wissen, wer die Tatperson ist" in filed.text
    with runtime.sessions() as db:
        columns = {
            column["name"]
            for table in ("incident", "case_file")
            for column in inspect(db.get_bind()).get_columns(table)
            # Ciphertext columns may name what they seal (case_file.perpetrator_ciphertext, the matching).
            if not isinstance(column["type"], LargeBinary)
        }
        rows = [tuple(row) for row in db.execute(select(Incident.__table__)).all()]
    assert not [name for name in columns if "known" in name or "perpetrator" in name]
    assert known.isoformat().encode() not in b"".join(
        value if isinstance(value, bytes) else str(value).encode() for row in rows for value in row
    )


def test_a_future_known_since_date_is_refused_and_the_text_kept(client: TestClient, runtime: Runtime) -> None:
    refused = report(client, perpetrator_known_on=(today() + timedelta(days=2)).isoformat())
    assert refused.status_code == 422
    assert 'href="#field-perpetrator_known_on"' in refused.text
    assert "Beleidigung im Gemeinderat." in refused.text


# -- /fall ---------------------------------------------------------------------------------------------------


def test_fall_shows_the_deadline_and_takes_the_known_since_date(client: TestClient, runtime: Runtime) -> None:
    filed = report(
        client, occurred_on=(today() - timedelta(days=200)).isoformat(), perpetrator_familiarity="anonymous"
    )
    receipt = RECEIPT.search(re.sub(r"<[^>]+>", "", filed.text))
    assert receipt
    login = client.get("/fall")
    page = client.post(
        "/fall/anmelden", data={"csrf_token": csrf_token(login.text), "receipt": receipt.group(0)}
    )
    assert page.status_code == 200
    assert "beginnen erst, wenn Sie wissen, wer die Tatperson ist" in page.text
    assert 'action="/fall/tatperson"' in page.text

    known = today() - timedelta(days=80)
    saved = client.post(
        "/fall/tatperson",
        data={"csrf_token": csrf_token(page.text), "seq": "1", "perpetrator_known_on": known.isoformat()},
        follow_redirects=False,
    )

    assert saved.status_code == 303
    after = client.get(saved.headers["location"]).text
    ends = add_months(known, 3)
    assert "Das Datum wurde verschlüsselt gespeichert" in after
    assert ends.strftime("%d.%m.%Y") in after
    assert "Wichtig: Die Frist für einen Strafantrag endet bald" in after
    assert f'value="{known.isoformat()}"' in after
    case = case_of(runtime)
    assert case.urgency == "high"
    with runtime.sessions() as db:
        assert db.scalars(select(Incident.complaint_reminder_on)).one() == reminder_week(ends, today())
    english = client.get("/fall?lang=en").text
    assert "Perpetrator known since" in english
    assert "§ 77b (1) and (2) StGB" in english


def test_a_known_since_date_in_the_future_is_refused_on_fall(client: TestClient, runtime: Runtime) -> None:
    filed = report(client, perpetrator_familiarity="unknown")
    receipt = RECEIPT.search(re.sub(r"<[^>]+>", "", filed.text))
    assert receipt
    login = client.get("/fall")
    page = client.post(
        "/fall/anmelden", data={"csrf_token": csrf_token(login.text), "receipt": receipt.group(0)}
    )
    refused = client.post(
        "/fall/tatperson",
        data={
            "csrf_token": csrf_token(page.text),
            "seq": "1",
            "perpetrator_known_on": (today() + timedelta(days=5)).isoformat(),
        },
    )
    assert refused.status_code == 422
    assert 'href="#field-perpetrator_known_on-1"' in refused.text
    with runtime.sessions() as db:
        assert db.scalars(select(Incident.complaint_reminder_on)).one() is None
