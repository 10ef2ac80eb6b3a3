"""Issue 18, repeat-perpetrator matching, end to end on both databases.

Three reporters in two organisations (the routing policy decides: Bayern's counselling for Land 09, Sachsen's
for Land 14) name the same handle written three ways; the two organisations are told, nobody else. A fourth
report (Nordrhein-Westfalen) naming someone else matches nothing. Consent withdrawn or the case purged: the
tokens are gone and never match again. Identifiers without consent are refused. The case page names the
organisations holding the other cases and nothing of them; the dashboard shows the figure k-anonymously, the
public statistics never. What a thief of the dump, the operator and a counsellor of another organisation
learn is checked at the end (docs/matching.md).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as orm_events
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.cases.models import Case
from service.crypto import case_reference, perpetrator_token
from service.db import utcnow
from service.identity.models import CaseKeyGrant, MembershipRole, Organisation
from service.matching.models import PerpetratorToken
from service.matching.service import MATCH_TOPIC, cases_in_clusters
from service.outbox.models import OutboxMessage
from service.runtime import Runtime
from tests.support.forms import csrf_token, report_body, submission_token
from tests.support.forms import file_json as file
from tests.support.stack import pg_dump
from tests.support.staff import Login, MakeStaff

BAYERN, SACHSEN, NRW = "beratung-by", "beratung-sn", "beratung-nw"
LAND_OF = {BAYERN: "09", SACHSEN: "14", NRW: "05"}
HANDLE_WAYS = ("@Max_M", "max_m", "MAX_M ")
DESCRIPTION = "Drohbriefe nach der Ratssitzung, QZDESCRIPTIONMATCH."


def report(org: str, handle: str | None, *, consent: bool = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "land": LAND_OF[org],
        "type_codes": ["A1"],
        "description": DESCRIPTION,
        "channel": "letter",
        **extra,
    }
    if handle is not None:
        body["perpetrator_identifiers"] = [{"kind": "handle", "value": handle, "platform": "instagram"}]
        body["consent_matching"] = consent
    return body


def org_ids(runtime: Runtime) -> dict[str, str]:
    with runtime.sessions() as db:
        return {slug: id_ for id_, slug in db.execute(select(Organisation.id, Organisation.slug))}


def notices(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.sessions() as db:
        return [
            dict(row.payload)
            for row in db.scalars(select(OutboxMessage).where(OutboxMessage.topic == MATCH_TOPIC))
        ]


def tokens(runtime: Runtime) -> list[PerpetratorToken]:
    with runtime.sessions() as db:
        rows = list(db.scalars(select(PerpetratorToken)))
        db.expunge_all()
        return rows


def match_events(runtime: Runtime) -> list[AuditEvent]:
    with runtime.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == "matching.match")))


def shared(runtime: Runtime, case_id: str) -> Any:
    with runtime.sessions() as db:
        return runtime.matching.shared_with(db, case_id)


@pytest.fixture
def three(client: TestClient, runtime: Runtime) -> dict[str, str]:
    """Three reporters name @Max_M three ways: two in Bayern, one in Sachsen."""
    cases = {}
    for name, org, handle in (
        ("first", BAYERN, "@Max_M"),
        ("second", SACHSEN, "max_m"),
        ("third", BAYERN, "MAX_M "),
    ):
        _, cases[name] = file(client, runtime, report(org, handle))
    return cases


def test_three_reporters_two_organisations_are_told_and_nobody_else(
    client: TestClient, runtime: Runtime, three: dict[str, str]
) -> None:
    orgs = org_ids(runtime)
    told = notices(runtime)
    # The second report matched the first (both holders told), the third matched both (all told again).
    assert {item["organisation_id"] for item in told} == {orgs[BAYERN], orgs[SACHSEN]}
    assert {item["case_id"] for item in told} == set(three.values())
    assert all(set(item) == {"case_id", "organisation_id"} for item in told)
    # A fourth report, in a third organisation, naming someone else: no notice, no match, nobody new told.
    _, fourth = file(client, runtime, report(NRW, "moritz_k"))
    assert notices(runtime) == told
    assert shared(runtime, fourth) is None
    assert orgs[NRW] not in {item["organisation_id"] for item in notices(runtime)}
    # One token per case for the handle: three cases share it, the fourth has its own.
    rows = tokens(runtime)
    assert len(rows) == 4
    assert len({row.token for row in rows}) == 2
    with runtime.sessions() as db:
        assert cases_in_clusters(db) == 3
    # Each case sees the other two, held by the two organisations, and nothing that names them.
    view = shared(runtime, three["first"])
    assert view.cases == 2
    assert set(view.organisations) == {
        "Beratungsstelle Rückhalt Bayern (Demo)",
        "Beratungsstelle Rückhalt Sachsen (Demo)",
    }
    assert view.kinds == ("handle",)
    assert shared(runtime, three["second"]).organisations == ("Beratungsstelle Rückhalt Bayern (Demo)",)


def test_a_match_is_audited_with_counts_only(runtime: Runtime, three: dict[str, str]) -> None:
    events = match_events(runtime)
    assert [event.details for event in events] == [
        {"cases": 2, "organisations": 2},
        {"cases": 3, "organisations": 2},
    ]
    for event in events:
        assert (event.actor_kind, event.object_type, event.object_id) == ("system", "matching", None)
        assert not any(case_id in str(event.details) for case_id in three.values())
        assert "max_m" not in str(event.details).lower()


def test_the_same_reporter_adding_the_handle_again_tells_nobody(client: TestClient, runtime: Runtime) -> None:
    """A further incident or the same identifier sent twice is the same reporter: no match with itself."""
    receipt, case_id = file(client, runtime, report(BAYERN, "@Max_M"))
    added = client.post(
        "/api/v1/reports/incidents",
        json={
            "receipt": receipt,
            "type_codes": ["A1"],
            "description": "Noch ein Brief.",
            "channel": "letter",
        },
    )
    assert added.status_code == 201
    with runtime.sessions() as db:
        opened = runtime.intake.open_case(db, receipt)
        model = report(BAYERN, "MAX_M")
        from service.reports.schemas import IdentifiersAdd

        done = runtime.intake.add_identifiers(
            db,
            opened,
            IdentifiersAdd(perpetrator_identifiers=model["perpetrator_identifiers"], consent_matching=True),
        )
        # The transaction the /fall form would have committed.
        db.commit()
    assert done
    assert notices(runtime) == []
    assert match_events(runtime) == []
    assert len(tokens(runtime)) == 1
    assert shared(runtime, case_id) is None


def test_identifiers_without_consent_are_refused_and_store_nothing(
    client: TestClient, runtime: Runtime
) -> None:
    refused = client.post("/api/v1/reports", json=report(BAYERN, "@Max_M", consent=False))
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "consent_matching"]
    assert "Max_M" not in refused.text
    # The form too: it comes back with the error at the consent box and keeps what was typed.
    page = client.get("/melden").text
    form = report_body(
        csrf_token=csrf_token(page),
        submission_token=submission_token(page),
        description="Drohbrief.",
        channel="letter",
        match_handle="@Max_M",
        match_platform="instagram",
    )
    again = client.post("/melden", data=form, files=[("attachments", ("", b"", "application/octet-stream"))])
    assert again.status_code == 422
    assert 'id="field-consent_matching-error"' in again.text
    assert 'value="@Max_M"' in again.text
    with runtime.sessions() as db:
        assert db.scalar(select(Case.id)) is None
    assert tokens(runtime) == []
    # Consent without identifiers files a report with no token and nothing sealed.
    _, case_id = file(client, runtime, {**report(BAYERN, None), "consent_matching": True})
    with runtime.sessions() as db:
        case = db.get(Case, case_id)
        assert case is not None
        assert case.perpetrator_ciphertext is None
    assert tokens(runtime) == []


def test_the_form_files_identifiers_with_consent_and_the_case_page_shows_the_match(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, login: Login
) -> None:
    _, first = file(client, runtime, report(SACHSEN, "max_m"))
    page = client.get("/melden").text
    form = report_body(
        csrf_token=csrf_token(page),
        submission_token=submission_token(page),
        description="Drohbrief QZFORMTEXT.",
        channel="letter",
        match_handle="MAX_M ",
        match_platform="instagram",
        match_phone="0171 5550123",
        consent_matching="1",
    )
    filed = client.post("/melden", data=form, files=[("attachments", ("", b"", "application/octet-stream"))])
    assert filed.status_code == 201, filed.text
    with runtime.sessions() as db:
        second = db.scalar(select(Case.id).where(Case.id != first))
    assert second is not None
    bayern = make_staff(memberships=[(BAYERN, MembershipRole.counsellor)])
    answer = login(bayern).get(f"/intern/faelle/{second}")
    assert answer.status_code == 200
    text = re.sub(r"\s+", " ", answer.text)
    holder = "Beratungsstelle Rückhalt Sachsen (Demo)"
    shared = f"Teilt ein Merkmal der Tatperson mit 1 Fall, gehalten von: {holder}"
    assert shared in text
    # The counsellor sees the identifiers as their own reporter typed them; of the other case nothing.
    assert "MAX_M" in text
    assert "0171 5550123" in text
    assert first not in text
    assert first[:8] not in text
    assert DESCRIPTION not in text
    # Sachsen's counsellor sees Bayern named on their own case, and Bayern's text nowhere.
    sachsen = make_staff(memberships=[(SACHSEN, MembershipRole.counsellor)])
    theirs = re.sub(r"\s+", " ", login(sachsen).get(f"/intern/faelle/{first}").text)
    assert "gehalten von: Beratungsstelle Rückhalt Bayern (Demo)" in theirs
    assert "QZFORMTEXT" not in theirs
    assert second not in theirs
    assert "0171" not in theirs
    # Sachsen cannot open Bayern's case (404), matched or not.
    assert login(sachsen).get(f"/intern/faelle/{second}").status_code == 404


def reporter_session(client: TestClient, receipt: str) -> None:
    signed = client.post(
        "/fall/anmelden",
        data={"csrf_token": csrf_token(client.get("/fall").text), "receipt": receipt},
        follow_redirects=False,
    )
    assert signed.status_code == 303


def test_withdrawn_consent_deletes_the_tokens_and_never_matches_again(
    client: TestClient, runtime: Runtime
) -> None:
    receipt, withdrawn = file(client, runtime, report(BAYERN, "@Max_M"))
    reporter_session(client, receipt)
    page = client.get("/fall").text
    assert "Zustimmung widerrufen" in page
    assert "@Max_M" in page
    gone = client.post(
        "/fall/merkmale", data={"csrf_token": csrf_token(page), "action": "withdraw"}, follow_redirects=False
    )
    assert gone.status_code == 303
    assert gone.headers["location"].startswith("/fall?notice=identifiers_withdrawn")
    assert tokens(runtime) == []
    with runtime.sessions() as db:
        case = db.get(Case, withdrawn)
        assert case is not None
        assert case.perpetrator_ciphertext is None
    assert "@Max_M" not in client.get("/fall").text
    # A new report naming the same handle matches nothing with the withdrawn case.
    _, later = file(client, runtime, report(SACHSEN, "max_m"))
    assert notices(runtime) == []
    assert shared(runtime, later) is None
    assert shared(runtime, withdrawn) is None


def test_the_reporter_adds_identifiers_on_fall_with_consent(client: TestClient, runtime: Runtime) -> None:
    _, other = file(client, runtime, report(SACHSEN, "max_m"))
    receipt, mine = file(client, runtime, report(BAYERN, None))
    reporter_session(client, receipt)
    page = client.get("/fall").text
    no_consent = client.post(
        "/fall/merkmale",
        data={
            "csrf_token": csrf_token(page),
            "action": "save",
            "match_handle": "@max_m",
            "match_platform": "instagram",
        },
    )
    assert no_consent.status_code == 422
    assert 'id="field-consent_matching-error"' in no_consent.text
    assert tokens(runtime) != []
    assert len(tokens(runtime)) == 1
    saved = client.post(
        "/fall/merkmale",
        data={
            "csrf_token": csrf_token(page),
            "action": "save",
            "match_handle": "@max_m",
            "match_platform": "instagram",
            "consent_matching": "1",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert saved.headers["location"].startswith("/fall?notice=identifiers_saved")
    assert {item["case_id"] for item in notices(runtime)} == {other, mine}
    assert shared(runtime, mine).cases == 1
    # The reporter is never told whether their identifiers matched, nor who holds another case: a hostile
    # reporter cannot use the form to learn whether someone else reported a name.
    after = client.get("/fall").text
    assert "Sachsen" not in after
    assert "Teilt ein Merkmal der Tatperson" not in after
    assert other not in after


def test_a_purged_case_loses_its_tokens_and_never_matches_again(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, subject_of: Any
) -> None:
    from service.cases.schemas import CaseUpdate

    _, purged = file(client, runtime, report(BAYERN, "@Max_M"))
    counsellor = subject_of(make_staff(memberships=[(BAYERN, MembershipRole.counsellor)]))
    with runtime.sessions() as db:
        runtime.cases.update(db, counsellor, purged, CaseUpdate(status="closed", outcome="withdrawn"))
        db.commit()  # the transaction the endpoint would have run
    with runtime.sessions() as db:
        report_ = runtime.retention.purge(db, utcnow() + timedelta(days=4000), dry_run=False)
        db.commit()  # the task's transaction
    assert [item.candidate.case_id for item in report_.purged] == [purged]
    assert tokens(runtime) == []
    _, later = file(client, runtime, report(SACHSEN, "max_m"))
    assert notices(runtime) == []
    assert shared(runtime, later) is None


def test_a_page_view_deletes_nothing_and_the_next_registration_prunes_a_stale_reference(
    client: TestClient, runtime: Runtime
) -> None:
    """A token left behind for a case that is gone (a failure between a purge's steps) is pruned by the next
    registration that meets it, which commits; the case page's read (``shared_with``) only skips it."""
    _, first = file(client, runtime, report(BAYERN, "@Max_M"))
    (own,) = tokens(runtime)
    key = runtime.matching._key
    gone = case_reference(key, "a-case-that-is-gone")
    with runtime.sessions() as db:
        db.add(PerpetratorToken(token=own.token, case_ref=gone, kind="handle"))
        db.commit()
    statements: list[str] = []
    with runtime.sessions() as db:
        orm_events.listen(
            db, "do_orm_execute", lambda state: statements.append(str(state.statement).split()[0])
        )
        assert runtime.matching.shared_with(db, first) is None, "a case that is gone is no match"
    assert statements
    assert "DELETE" not in statements, "the view wrote nothing"
    assert len(tokens(runtime)) == 2
    file(client, runtime, report(SACHSEN, "max_m"))
    assert gone not in {row.case_ref for row in tokens(runtime)}
    assert len(tokens(runtime)) == 2, "the stale reference pruned, the new case's token stored"


def test_the_budget_counts_a_reports_identifiers_at_once_and_all_or_nothing(runtime: Runtime) -> None:
    """Three identifiers are three look-ups, counted in one call: a budget of four grants them, and then
    refuses the next two together rather than granting one of them."""
    from service.matching.service import matching_limit

    runtime.matching._limit = matching_limit(4)
    assert runtime.matching.reserve(0).granted
    assert runtime.matching.reserve(3).granted
    assert not runtime.matching.reserve(2).granted
    runtime.matching._limit = matching_limit(1000)


def test_the_hourly_budget_files_the_report_and_lets_the_identifiers_wait(
    client: TestClient, runtime: Runtime
) -> None:
    from service.matching.service import matching_limit

    runtime.matching._limit = matching_limit(1)
    _, first = file(client, runtime, report(BAYERN, "@Max_M"))
    receipt, waiting = file(client, runtime, report(SACHSEN, "max_m"))
    # Filed all the same; the identifiers are sealed, no token, nobody told.
    with runtime.sessions() as db:
        case = db.get(Case, waiting)
        assert case is not None
        assert case.perpetrator_ciphertext is not None
        assert not runtime.matching.registered(db, waiting)
    assert len(tokens(runtime)) == 1
    assert notices(runtime) == []
    reporter_session(client, receipt)
    assert "Der Abgleich steht noch aus" in client.get("/fall").text
    # Next hour's budget: sent again on /fall, the waiting identifier is looked up and matches.
    runtime.matching._limit = matching_limit(1000)
    page = client.get("/fall").text
    again = client.post(
        "/fall/merkmale",
        data={
            "csrf_token": csrf_token(page),
            "action": "save",
            "match_handle": "MAX_M",
            "match_platform": "instagram",
            "consent_matching": "1",
        },
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert {item["case_id"] for item in notices(runtime)} == {first, waiting}


def test_the_dashboard_shows_the_figure_k_anonymously_and_the_public_never(
    client: TestClient, runtime: Runtime, three: dict[str, str], make_staff: MakeStaff, login: Login
) -> None:
    coordinator = login(make_staff(coordinator=True))
    page = coordinator.get("/intern/statistik").text
    assert re.search(r'id="repeat-cases">&lt; 5<', page), "three cases: below k, shown as < 5"
    for index in range(4):
        file(client, runtime, report(NRW, "@Max_M"))
        file(client, runtime, report(NRW, f"someone_{index}"))
    # Seven cases in the cluster: rounded down to 5, so that one more case a day later does not show.
    assert re.search(r'id="repeat-cases">5<', coordinator.get("/intern/statistik").text)
    # The public statistics (page and API) say nothing of it.
    for path in ("/statistik", "/api/v1/statistics/releases"):
        public = client.get(path)
        assert "Merkmal der Tatperson" not in public.text
        assert "repeat" not in public.text.lower()
    # Counsellors do not see the dashboard at all.
    counsellor = login(make_staff(memberships=[(BAYERN, MembershipRole.counsellor)]))
    assert counsellor.get("/intern/statistik").status_code == 404


def test_what_a_dump_thief_an_operator_and_another_counsellor_learn(
    client: TestClient, runtime: Runtime, three: dict[str, str]
) -> None:
    """docs/matching.md, checked. The thief of a dump (no secrets): no identifier in clear, no case id
    beside a token, and a guess cannot be tested without the key. The operator (key and dump): can test a
    guessed handle and open the case references: the trade-off the document states."""
    rows = tokens(runtime)
    case_ids = set(three.values())
    raw = b"".join(row.token + row.case_ref + row.kind.encode() for row in rows)
    for case_id in case_ids:
        assert case_id.encode() not in raw
    assert b"max_m" not in raw.lower()
    if not runtime.settings.is_sqlite:
        dump = pg_dump(runtime.settings.resolved_database_url)
        assert b"max_m" not in dump.lower()
    # A thief guessing with any key but the matching key computes tokens that are not there.
    for guess_key in (bytes(32), runtime.secrets.audit_key, runtime.secrets.statistics_key):
        assert perpetrator_token(guess_key, "handle", "instagram", "max_m") not in {row.token for row in rows}
    # The operator with the key can: that is why the key is a secret of its own (docs/matching.md).
    guessed = perpetrator_token(runtime.secrets.matching_key, "handle", "instagram", "max_m")
    assert {row.case_ref for row in rows if row.token == guessed} == {
        case_reference(runtime.secrets.matching_key, case_id) for case_id in case_ids
    }
    # The other organisation's counsellors learn who holds the other cases (their names), nothing more:
    # the holders are the only organisations named, and each case's page counts the others.
    with runtime.sessions() as db:
        holders = set(
            db.scalars(
                select(Organisation.display_name)
                .join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
                .where(CaseKeyGrant.case_id.in_(case_ids), CaseKeyGrant.active.is_(True))
            )
        )
    assert set(shared(runtime, three["first"]).organisations) <= holders
