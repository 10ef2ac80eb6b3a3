"""What stays readable on the server: no clear column holds the exact incident date or the Strafantrag
deadline, case-work times are coarse, and the migration that got there keeps the reminders of existing cases.

docs/clear-columns.md lists every clear column and why it is there.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, LargeBinary, inspect, select

from service.cases.deadlines import add_months, week_start
from service.cases.models import Case, CaseMessage, Incident
from service.db import make_engine, make_sessionmaker
from service.i18n import LOCAL_ZONE
from service.identity.models import MembershipRole
from service.models import Base
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.migration import insert_old_case, insert_row, migrate_to
from tests.support.staff import MakeStaff

REPORT = report_body(description="Beleidigung im Netz")
# Case-work tables keep times to the minute, the two-way channel to the second (docs/clear-columns.md).
_MINUTE_TABLES = ("case_file", "incident", "case_key_grant", "routing_record", "attachment", "case_note")


def _today() -> date:
    return datetime.now(LOCAL_ZONE).date()


def _date_forms(day: date) -> set[str]:
    return {day.isoformat(), day.strftime("%d.%m.%Y"), day.strftime("%Y%m%d")}


def _clear_cells(engine: Engine) -> list[tuple[str, str, Any]]:
    """Every cell of every table that is not ciphertext, read as the database returns it."""
    cells = []
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if not isinstance(c.type, LargeBinary)]
            if not columns:
                continue  # nothing but ciphertext and keyed hashes (a saved self-check)
            for row in connection.execute(select(*columns)).all():
                cells += [
                    (table.name, column.name, value) for column, value in zip(columns, row, strict=True)
                ]
    return cells


def test_after_intake_no_clear_column_holds_the_incident_day_or_the_deadline(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, login: Any
) -> None:
    """Given a complaint-only insult of a known day, filed with a second incident and a message: no clear
    cell of any table holds the day, its month on the incident, the deadline or a number of days left, and
    the clear reminder date is a Monday; the holding counsellor still sees the exact deadline."""
    occurred = _today() - timedelta(days=25)
    deadline = add_months(occurred, 3)
    filed = client.post("/api/v1/reports", json={**REPORT, "occurred_on": occurred.isoformat()})
    assert filed.status_code == 201
    receipt = filed.json()["receipt"]
    assert (
        client.post(
            "/api/v1/reports/incidents",
            json={
                "receipt": receipt,
                **{key: value for key, value in REPORT.items() if key != "land"},
                "occurred_on": (occurred + timedelta(days=1)).isoformat(),
            },
        ).status_code
        == 201
    )
    assert (
        client.post("/api/v1/reports/messages", json={"receipt": receipt, "body": "Hallo"}).status_code == 201
    )
    counsellor = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    (case,) = counsellor.get("/api/v1/cases").json()

    secret_days = _date_forms(occurred) | _date_forms(occurred + timedelta(days=1))
    secret_days |= _date_forms(deadline) | _date_forms(add_months(occurred + timedelta(days=1), 3))
    engine = runtime.engine
    found = []
    for table, column, value in _clear_cells(engine):
        shown = value.isoformat() if isinstance(value, date | datetime) else str(value)
        if any(day in shown for day in secret_days) and not isinstance(value, datetime):
            found.append((table, column, shown))
        if table == "incident" and occurred.strftime("%Y-%m") in shown and not isinstance(value, datetime):
            found.append((table, column, shown))
    assert found == []
    incident_columns = {column["name"] for column in inspect(engine).get_columns("incident")}
    assert incident_columns.isdisjoint({"complaint_deadline_on", "incident_month"})

    with runtime.sessions() as db:
        reminders = list(db.scalars(select(Incident.complaint_reminder_on).order_by(Incident.seq)))
        times = [c.created_at for c in db.scalars(select(Case))]
        times += [i.created_at for i in db.scalars(select(Incident))]
        read_times = [t for t in db.scalars(select(CaseMessage.read_at)) if t is not None]
    later = add_months(occurred + timedelta(days=1), 3)
    assert reminders == [week_start(deadline - timedelta(days=14)), week_start(later - timedelta(days=14))]
    assert all(day is not None and day.weekday() == 0 for day in reminders), "a Monday, never the day"
    assert all(t.second == 0 and t.microsecond == 0 for t in times), "case-work times are kept to the minute"
    # A message's own time keeps its precision (the conversation's order); when it was read, the second.
    assert all(t.microsecond == 0 for t in read_times), "read times to the second"

    # The list shows the week; the case, decrypted by its holder, the exact day.
    assert case["complaint_deadline_week"] == week_start(deadline).isoformat()
    detail = counsellor.get(f"/api/v1/cases/{case['id']}").json()
    assert detail["incidents"][0]["complaint_deadline_on"] == deadline.isoformat()
    assert detail["incidents"][0]["occurred_on"] == occurred.isoformat()


# -- the migration, with data ----------------------------------------------------------------------------


def test_the_migration_keeps_reminders_drops_the_deadline_and_coarsens_times(empty_database: str) -> None:
    """Given a database at revision 0009 with a case whose incident holds a clear deadline and month, a
    second incident whose deadline has passed, and times to the microsecond: after the upgrade the deadline
    and the month are gone, the reminder week is the Monday of the first reminder's week, a passed deadline
    needs no reminder, and the times are truncated (case work to the minute, messages to the second)."""
    engine = make_engine(empty_database)
    try:
        migrate_to(engine, "0009")
        at = datetime(2026, 11, 3, 14, 7, 31, 123456, tzinfo=UTC)
        ahead = _today() + timedelta(days=40)
        case_id = str(uuid.uuid4())
        insert_old_case(
            engine, case_id, at, district_ags="09162", office="mayor", ack_deadline_at=at + timedelta(hours=4)
        )
        for seq, deadline in ((1, ahead), (2, _today() - timedelta(days=3))):
            insert_row(
                engine,
                "incident",
                id=f"00000000-0000-4000-8000-00000000000{seq}",
                case_id=case_id,
                seq=seq,
                type_codes='["A1"]',
                channel="email",
                channel_online=True,
                severity=5,
                urgency="normal",
                incident_month=(deadline - timedelta(days=91)).strftime("%Y-%m"),
                complaint_deadline_on=deadline,
                payload=b"p",
                extract_ref=b"e",
                created_at=at,
            )
        insert_row(
            engine,
            "case_message",
            id=str(uuid.uuid4()),
            case_id=case_id,
            direction="from_reporter",
            ciphertext=b"m",
            created_at=at,
        )

        migrate_to(engine, "head")

        columns = {column["name"] for column in inspect(engine).get_columns("incident")}
        assert "complaint_reminder_on" in columns
        assert columns.isdisjoint({"complaint_deadline_on", "incident_month"})
        with make_sessionmaker(engine)() as db:
            incidents = list(db.scalars(select(Incident).order_by(Incident.seq)))
            case = db.get(Case, case_id)
            message = db.scalars(select(CaseMessage)).one()
        assert [i.complaint_reminder_on for i in incidents] == [week_start(ahead - timedelta(days=14)), None]
        assert case is not None
        assert case.created_at == at.replace(second=0, microsecond=0)
        assert case.ack_deadline_at == (at + timedelta(hours=4)).replace(second=0, microsecond=0)
        assert incidents[0].created_at == at.replace(second=0, microsecond=0)
        assert message.created_at == at, "a message keeps its time: the conversation is shown in that order"
    finally:
        engine.dispose()
