"""The case page's presenter is pure: a typed case file, the names looked up for it and a translator make the
template context, without a database (issue 17). And the typed case file keeps the API's shape."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import cast

from service.cases.case_presenter import CaseLookups, case_view
from service.cases.events import Member
from service.cases.models import CaseStatus, GrantRole, MessageDirection
from service.cases.payload import ReportPayload
from service.cases.presenter import Labels, inbox_row, inbox_sort_key
from service.cases.schemas import (
    CaseFile,
    CaseMessageView,
    HistoryEntry,
    Holder,
    InboxRow,
    IncidentFile,
    MergeView,
    RoutingView,
)
from service.i18n import Translator
from service.taxonomy import load_districts, load_taxonomy
from service.taxonomy.loader import ANSWER_KINDS

POLICIES = Path(__file__).resolve().parents[2] / "policies"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OTHER = "22222222-2222-4222-8222-222222222222"


def labels(lang: str = "de") -> Labels:
    return Labels(load_taxonomy(POLICIES), load_districts(POLICIES), Translator(lang), lang)


def case_file(status: CaseStatus = CaseStatus.in_progress) -> CaseFile:
    incident = IncidentFile(
        id="i1",
        seq=1,
        created_at="2026-03-01T10:00:00+00:00",
        type_codes=("A3a",),
        channel="in_person.town_hall",
        severity=1,
        urgency="acute",
        complaint_deadline_on="2026-03-10",
        complaint_basis="incident",
        proceedings=None,
        # A key newer than this code's ``ReportPayload`` still reaches the API as filed.
        payload=cast(
            ReportPayload,
            {
                "description": "Drohung im Rathaus.",
                "occurred_on": "2026-02-28",
                "url": "https://example.org/post",
                "perpetrator": {"details": "groß", "known_on": None},
                "something_newer": 1,
            },
        ),
    )
    return CaseFile(
        id="11111111-1111-4111-8111-111111111111",
        status=status,
        urgency="acute",
        severity=1,
        land="05",
        district_ags=None,
        office=None,
        consent_counselling=True,
        consent_police=False,
        assignee_id="u1",
        labels=("legal",),
        outcome=None,
        created_at="2026-03-01T10:00:00+00:00",
        ack_deadline_at="2026-03-02T10:00:00+00:00",
        acknowledged_at=None,
        closed_at=None,
        municipality="Musterstadt",
        targets=(),
        reported_by="self",
        support_needs=(),
        answers=dict.fromkeys(ANSWER_KINDS, ()),
        contact={"name": None, "email": "a@example.org", "phone": None},
        perpetrator_identifiers=(),
        incidents=(incident,),
        attachments=(),
        messages=(
            CaseMessageView(
                id="m1",
                direction=MessageDirection.to_reporter,
                author_id="u1",
                organisation_id="o1",
                created_at="2026-03-01T11:00:00+00:00",
                body="Wir sind da.",
                attachment_ids=(),
            ),
        ),
        notes=(),
        holders=(Holder("o1", "Beratung", GrantRole.target, True, None),),
        events=(Member(incident_seq=1, case_id=OTHER, seq=2),),
        merge=MergeView(role="newer", other_case_id=OTHER),
        routing=(
            RoutingView(
                "2026-03-01T10:00:00+00:00",
                False,
                {
                    "format": 1,
                    "policy_version": "",
                    "targets": ["beratung"],
                    "escalation": [],
                    "ack_deadline_minutes": 0,
                    "fallback_used": False,
                    "reasons": [],
                },
            ),
        ),
        history=(HistoryEntry("2026-03-01T10:05:00+00:00", "case.decrypt", "u1", "staff"),),
    )


def lookups() -> CaseLookups:
    return CaseLookups(
        staff_names={"u1": "Frau Beispiel"},
        organisation_names={"o1": "Beratung", "beratung": "Beratung"},
        colleagues=[("u2", "Herr Kollege")],
        receivers=[("polizei", "Polizei", True)],
        articles=[],
        linked_mine={OTHER: False},
        linked_holders={OTHER: ["Andere Stelle"]},
    )


def test_the_case_page_is_made_from_typed_data_without_a_database() -> None:
    view = case_view(case_file(), lookups(), labels(), "u1", NOW, date(2026, 3, 2))
    assert view["status"] == "in_progress"
    assert view["assignee_me"]
    assert view["assignee_name"] == "Frau Beispiel"
    assert view["messages"][0]["author"] == "Frau Beispiel, Beratung"
    [incident] = view["incidents"]
    assert incident["description"] == "Drohung im Rathaus."
    assert incident["url_is_link"]
    assert incident["perpetrator"]["details"] == "groß"
    assert incident["complaint"] is not None
    assert incident["complaint"]["state"] == "soon"
    assert view["events"] == [
        {"incident_seq": 1, "seq": 2, "mine": False, "ref": "", "href": "", "holders": ["Andere Stelle"]}
    ]
    assert view["merge"] == {"role": "newer", "ref": OTHER[:8], "href": f"/intern/faelle/{OTHER}"}
    assert view["routing"][0]["targets"] == ["Beratung"]
    assert view["receivers"] == [{"slug": "polizei", "name": "Polizei", "police": True}]
    assert view["colleagues"] == [{"id": "u2", "name": "Herr Kollege"}]


def test_a_closed_case_warns_of_no_deadline() -> None:
    view = case_view(case_file(CaseStatus.closed), lookups(), labels(), "u2", NOW, date(2026, 3, 2))
    assert view["closed"]
    assert view["complaint"] is not None
    assert view["complaint"]["state"] == "ok"
    complaint = view["incidents"][0]["complaint"]
    assert complaint is not None
    assert complaint["state"] == "ok"
    assert not view["assignee_me"]


def test_the_typed_case_file_keeps_the_apis_shape() -> None:
    sent = case_file().as_json()
    assert sent["status"] == "in_progress"
    assert sent["labels"] == ["legal"]
    incident: Mapping[str, object] = sent["incidents"][0]
    # Every field of the sealed payload as filed, newer ones included, beside the clear ones.
    assert incident["something_newer"] == 1
    assert incident["type_codes"] == ["A3a"]
    assert incident["proceedings"] is None
    assert sent["merge"] == {"role": "newer", "other_case_id": OTHER}
    assert sent["routing"] == [
        {
            "created_at": "2026-03-01T10:00:00+00:00",
            "fallback_used": False,
            "format": 1,
            "policy_version": "",
            "targets": ["beratung"],
            "escalation": [],
            "ack_deadline_minutes": 0,
            "reasons": [],
        }
    ]
    assert sent["events"] == [{"incident_seq": 1, "case_id": OTHER, "seq": 2}]
    assert all(kind in sent for kind in ANSWER_KINDS)


def test_inbox_rows_sort_open_cases_by_their_next_deadline() -> None:
    def row(case_id: str, status: CaseStatus, deadline: str) -> InboxRow:
        return InboxRow(
            id=case_id,
            status=status,
            urgency="normal",
            severity=3,
            land="05",
            district_ags=None,
            type_codes=("A1",),
            incidents=1,
            assignee_id=None,
            labels=(),
            created_at="2026-03-01T10:00:00+00:00",
            ack_deadline_at=deadline,
            ack_overdue=False,
            acknowledged_at=None,
            complaint_deadline_week=None,
            reopened=True,
        )

    rows = [
        row("c" * 36, CaseStatus.closed, "2026-03-01T12:00:00+00:00"),
        row("b" * 36, CaseStatus.new, "2026-03-03T12:00:00+00:00"),
        row("a" * 36, CaseStatus.new, "2026-03-02T12:00:00+00:00"),
    ]
    assert [r.id[0] for r in sorted(rows, key=inbox_sort_key)] == ["a", "b", "c"]
    shown = inbox_row(rows[0], labels(), None, {}, NOW, date(2026, 3, 2))
    assert shown["status"] == "closed"
    assert shown["reopened"] is False
