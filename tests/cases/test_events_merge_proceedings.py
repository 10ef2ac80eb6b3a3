"""Issue 18: the same event, merged cases after a lost receipt, and proceedings (on both databases).

- A linked event counts once where the statistics count reports (the coordinators' catalogue and the public
  release), each reporter still once among the persons affected; unlinked, twice.
- Holders of a linked case see the link and who holds the other case, never its content; a counsellor of
  another organisation can neither link nor propose a merge with a case of ours (404, as for none).
- A merged case keeps both incidents, their messages and files (re-sealed under the older case's key) and
  one receipt: the newer one, which the reporter has. Nothing moves without the reporter's confirmation, a
  wrong receipt moves nothing, and a failure midway loses nothing.
- A Strafantrag recorded (by a counsellor or the reporter) stops its deadline reminders, and the pages say
  it was filed instead of counting down.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.audit.models import AuditEvent
from service.auth.subject import Subject
from service.cases.deadlines import add_months
from service.cases.escalation import CaseSchedule
from service.cases.events import event_token, extract_of
from service.cases.identifiers import open_typed
from service.cases.models import Case, EventLink, Incident, MergeProposal
from service.cases.proceedings import Proceedings
from service.errors import NotFound, ValidationFailed
from service.evidence.models import Attachment
from service.extract.models import StatisticsExtract
from service.i18n import LOCAL_ZONE
from service.identity.models import MembershipRole
from service.runtime import Runtime
from service.secrets.rotation import ROTATIONS
from service.statistics.dashboard.catalogue import NATIONAL_MONTH, compute_catalogue
from service.statistics.domains import domains_from
from service.statistics.policy import load_statistics_policy
from service.statistics.public import dp
from service.statistics.rows import from_model
from tests.support.forms import csrf_token, file_json, report_form_tokens
from tests.support.staff import MakeStaff

RECEIPT = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}")


@pytest.fixture
def counsellor(make_staff: MakeStaff, subject_of: Any) -> Subject:
    subject: Subject = subject_of(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    return subject


@pytest.fixture
def other_counsellor(make_staff: MakeStaff, subject_of: Any) -> Subject:
    """A counsellor of another organisation (Nordrhein-Westfalen)."""
    subject: Subject = subject_of(make_staff(memberships=[("beratung-nw", MembershipRole.counsellor)]))
    return subject


def file(client: TestClient, runtime: Runtime, text: str, land: str = "09", **extra: Any) -> tuple[str, str]:
    """A report through the JSON intake: (receipt, case id)."""
    body = {"land": land, "type_codes": ["A1"], "description": text, "channel": "email", **extra}
    return file_json(client, runtime, body)


def file_with_file(client: TestClient, runtime: Runtime, text: str, evidence: bytes) -> tuple[str, str]:
    """A report through the form, with an evidence file."""
    page = client.get("/melden").text
    response = client.post(
        "/melden",
        data={
            **report_form_tokens(page),
            "land": "09",
            "type_codes": ["A1"],
            "description": text,
            "channel": "email",
        },
        files=[("attachments", ("beweis.txt", evidence, "text/plain"))],
    )
    assert response.status_code == 201, response.text
    found = RECEIPT.search(re.sub(r"<[^>]+>", "", response.text))
    assert found
    with runtime.sessions() as db:
        return found.group(0), runtime.intake.open_case(db, found.group(0)).case.id


def extract_rows(runtime: Runtime) -> list[Any]:
    with runtime.sessions() as db:
        return [from_model(row) for row in db.scalars(select(StatisticsExtract))]


def this_month() -> str:
    return datetime.now(LOCAL_ZONE).strftime("%Y-%m")


# -- the same event ---------------------------------------------------------------------------------------


def test_a_linked_event_counts_once_in_the_catalogue_and_the_public_release(
    client: TestClient, runtime: Runtime, counsellor: Subject
) -> None:
    _, first = file(client, runtime, "Ratssitzung, Drohung gegen mich.")
    _, second = file(client, runtime, "Ratssitzung, Drohung gegen den Bürgermeister.")
    file(client, runtime, "Eine andere Sache.")
    domains = domains_from(runtime.taxonomy)
    policy = load_statistics_policy(runtime.settings.policies_dir).public
    reports_table = next(table for table in policy.tables if table.measure.value == "reports")

    def figures() -> tuple[int, int, int]:
        rows = extract_rows(runtime)
        cell = compute_catalogue(rows, this_month(), domains).cell(NATIONAL_MONTH.id, (this_month(),))
        year = int(this_month()[:4])
        public = sum(dp.bounded_counts(rows, year, policy, domains)[reports_table.id])
        return cell.reports, cell.persons, public

    assert figures() == (3, 3, 3), "unlinked: three reports of three people"
    with runtime.sessions() as db:
        runtime.case_links.link_event(db, counsellor, first, 1, second[:8], 1)
        db.commit()  # the transaction the case page would have run
    assert figures() == (2, 3, 2), "linked: one event, still three persons affected"
    with runtime.sessions() as db:
        # Linking what is linked changes nothing (and the other side names the same event).
        runtime.case_links.link_event(db, counsellor, second, 1, first, 1)
        assert len(db.scalars(select(EventLink)).all()) == 2
        keys = {row.event_key for row in db.scalars(select(StatisticsExtract))}
    assert len(keys) == 2, "two rows share one token, the third has none"
    assert first not in str(keys)
    assert second not in str(keys)
    with runtime.sessions() as db:
        runtime.case_links.unlink_event(db, counsellor, second, 1)
        assert db.scalars(select(EventLink)).all() == [], "an event of one incident is no link"
        db.commit()
    assert figures() == (3, 3, 3), "unlinked again: the lone token counts as an event of one incident"


def test_rotating_the_statistics_key_moves_the_event_tokens_too(
    client: TestClient, runtime: Runtime, counsellor: Subject
) -> None:
    """After `secrets rotate statistics_key` a linked event's rows carry the token under the new key (what an
    incident linked later gets: otherwise the event would count twice), and the old key's token, which
    joins the rows to ``event_link``, is gone; the lone token of an ended event is replaced (one event still).
    """
    _, first = file(client, runtime, "Ratssitzung, Drohung gegen mich.")
    _, second = file(client, runtime, "Ratssitzung, Drohung gegen den Bürgermeister.")
    _, third = file(client, runtime, "Ein Aufkleber am Rathaus.")
    _, fourth = file(client, runtime, "Derselbe Aufkleber, eine zweite Meldung.")
    old_key = runtime.secrets.statistics_key
    with runtime.sessions() as db:
        runtime.case_links.link_event(db, counsellor, first, 1, second[:8], 1)
        (event_id,) = set(db.scalars(select(EventLink.event_id)))
        runtime.case_links.link_event(db, counsellor, third, 1, fourth[:8], 1)
        runtime.case_links.unlink_event(db, counsellor, fourth, 1)
        assert set(db.scalars(select(EventLink.event_id))) == {event_id}, "the second event ended"
        db.commit()  # the transaction the case page would have run
    before = extract_tokens(runtime, counsellor)
    lone = before[third]
    assert before[first] == before[second] == event_token(old_key, event_id)
    assert lone is not None
    assert before[fourth] is None

    new_key = bytes(range(200, 232))
    secrets = replace(runtime.secrets, statistics_key=new_key, previous={"statistics_key": (old_key,)})
    rekey = ROTATIONS["statistics_key"].rekey
    assert rekey is not None
    with runtime.sessions() as db:
        done = rekey(db, secrets, runtime.settings)
        db.commit()
    assert (done.counts["events_moved"], done.counts["events_retired"]) == (1, 1)
    after = extract_tokens(runtime, counsellor)
    assert after[first] == after[second] == event_token(new_key, event_id)
    assert after[third] not in (None, lone, event_token(old_key, event_id))
    assert after[fourth] is None
    assert event_token(old_key, event_id) not in after.values()


def extract_tokens(runtime: Runtime, counsellor: Subject) -> dict[str, str | None]:
    """Each case's statistics row's event token, found the way the service finds it (the sealed reference)."""
    with runtime.sessions() as db:
        tokens: dict[str, str | None] = {}
        for incident in db.scalars(select(Incident).where(Incident.seq == 1)):
            extract = extract_of(
                db, runtime.cases.unlock(db, counsellor, incident.case_id).data_key, incident
            )
            assert extract is not None
            tokens[incident.case_id] = extract.event_key
        return tokens


def test_linking_is_audited_without_content_and_shows_only_where_the_other_case_is(
    client: TestClient,
    runtime: Runtime,
    counsellor: Subject,
    other_counsellor: Subject,
    make_staff: MakeStaff,
    login: Any,
) -> None:
    _, ours = file(client, runtime, "Drohung in der Sitzung. GEHEIM-UNSER-FALL")
    _, also_ours = file(client, runtime, "Dieselbe Sitzung. GEHEIM-ZWEITER-FALL")
    _, theirs = file(client, runtime, "Sitzung in NRW.", land="05")
    with runtime.sessions() as db, pytest.raises(NotFound):
        # A case of another organisation is not found, exactly like a case that does not exist.
        runtime.case_links.link_event(db, counsellor, ours, 1, theirs[:8], 1)
    with runtime.sessions() as db, pytest.raises(NotFound):
        runtime.case_links.link_event(db, other_counsellor, theirs, 1, ours[:8], 1)
    with runtime.sessions() as db, pytest.raises(NotFound):
        runtime.case_links.link_event(db, counsellor, ours, 1, "00000000", 1)
    with runtime.sessions() as db:
        runtime.case_links.link_event(db, counsellor, ours, 1, also_ours[:8], 1)
        db.commit()  # the transaction the case page would have run
    with runtime.sessions() as db:
        # The second case goes to the other organisation: its holders see the link, not our case.
        runtime.cases.refer(db, counsellor, also_ours, "beratung-nw", transfer=True, consent=True)
        db.commit()
    with runtime.sessions() as db:
        events = db.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(["case.event_link", "case.event_unlink"]))
        ).all()
    assert {event.object_id for event in events} == {ours, also_ours}
    assert all(event.details == {"seq": 1} for event in events), "the incident's number, nothing else"

    staff = make_staff(memberships=[("beratung-nw", MembershipRole.counsellor)])
    page = login(staff).get(f"/intern/faelle/{also_ours}").text
    assert "dasselbe Ereignis wie ein Vorfall eines Falls von:" in page
    assert "GEHEIM-UNSER-FALL" not in page
    assert f"/intern/faelle/{ours}" not in page
    assert ours[:8] not in page


# -- merging after a lost receipt --------------------------------------------------------------------------


def reporter_client(runtime: Runtime, receipt: str) -> TestClient:
    from service.app import create_app

    browser = TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1")
    token = csrf_token(browser.get("/fall").text)
    signed_in = browser.post("/fall/anmelden", data={"receipt": receipt, "csrf_token": token})
    assert signed_in.status_code == 200, signed_in.text
    return browser


def confirm_merge(runtime: Runtime, receipt: str) -> TestClient:
    """The reporter, signed in with the newer case's receipt, confirms the proposed merge (303)."""
    browser = reporter_client(runtime, receipt)
    done = browser.post(
        "/fall/zusammenfuehren",
        data={"csrf_token": csrf_token(browser.get("/fall").text), "action": "confirm", "receipt": receipt},
        follow_redirects=False,
    )
    assert done.status_code == 303
    return browser


def blob_files(runtime: Runtime) -> set[str]:
    return {path.name for path in runtime.blobs.root.rglob("*") if path.is_file()}


def test_a_merged_case_keeps_both_incidents_and_one_receipt_after_the_reporters_confirmation(
    client: TestClient, runtime: Runtime, counsellor: Subject, other_counsellor: Subject
) -> None:
    older_receipt, older = file(client, runtime, "Erste Meldung: Beleidigung im Rathaus.")
    newer_receipt, newer = file_with_file(client, runtime, "Zweite Meldung: wieder beleidigt.", b"BEWEIS-NEU")
    # Another organisation's counsellor, and ours with a case of theirs: 404, nothing proposed.
    _, theirs = file(client, runtime, "Anderswo.", land="05")
    with runtime.sessions() as db, pytest.raises(NotFound):
        runtime.case_links.propose_merge(db, other_counsellor, theirs, older[:8])
    with runtime.sessions() as db, pytest.raises(NotFound):
        runtime.case_links.propose_merge(db, counsellor, newer, theirs[:8])
    with runtime.sessions() as db:
        runtime.cases.post_message(db, counsellor, newer, "Haben Sie Ihren alten Code verloren?")
        runtime.case_links.propose_merge(db, counsellor, newer, older[:8])
        proposal = db.scalars(select(MergeProposal)).one()
        assert (proposal.newer_case_id, proposal.older_case_id) == (newer, older)
        db.commit()  # the transaction the case page would have run

    browser = reporter_client(runtime, newer_receipt)
    page = browser.get("/fall").text
    assert "Diese Meldung mit Ihrer früheren Meldung zusammenführen?" in page
    # Without the confirmation nothing has moved; a wrong receipt (the old one) moves nothing either.
    with runtime.sessions() as db:
        assert db.get(Case, newer) is not None
        assert len(db.scalars(select(Incident).where(Incident.case_id == older)).all()) == 1
    token = csrf_token(page)
    wrong = browser.post(
        "/fall/zusammenfuehren",
        data={"csrf_token": token, "action": "confirm", "receipt": older_receipt},
        follow_redirects=False,
    )
    assert wrong.status_code == 422
    assert "nicht der Code dieser Meldung" in wrong.text
    with runtime.sessions() as db:
        assert db.get(Case, newer) is not None

    done = browser.post(
        "/fall/zusammenfuehren",
        data={"csrf_token": token, "action": "confirm", "receipt": newer_receipt.lower()},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/fall?notice=merged"
    merged_page = browser.get("/fall?notice=merged").text
    assert "Erste Meldung" in merged_page
    assert "Zweite Meldung" in merged_page
    assert "Haben Sie Ihren alten Code verloren?" in merged_page
    assert "Ihre Meldungen sind zusammengeführt" in merged_page

    with runtime.sessions() as db:
        assert db.get(Case, newer) is None
        incidents = db.scalars(select(Incident).where(Incident.case_id == older).order_by(Incident.seq)).all()
        assert [incident.seq for incident in incidents] == [1, 2]
        # One receipt: the newer one opens the older case; the lost one opens nothing any more.
        assert runtime.intake.open_case(db, newer_receipt).case.id == older
        with pytest.raises(NotFound):
            runtime.intake.open_case(db, older_receipt)
        pseudonyms = {row.reporter_pseudonym for row in db.scalars(select(StatisticsExtract))}
        assert len(pseudonyms) == 2, "the merged case's two rows are one reporter (the third is theirs)"
        (event,) = db.scalars(select(AuditEvent).where(AuditEvent.action == "case.merge")).all()
        assert event.object_id == older
        assert event.details == {"merged_case_id": newer, "incidents": 1, "attachments": 1}
        attachment = db.scalars(select(Attachment).where(Attachment.case_id == older)).one()
    # The file, re-encrypted under the older case's key, downloads as sent.
    with runtime.sessions() as db:
        detail = runtime.cases.detail(db, counsellor, older)
    assert [item.description for item in detail.incidents][1] == "Zweite Meldung: wieder beleidigt."
    with runtime.sessions() as db:
        found = runtime.cases.open_attachment(db, counsellor, older, attachment.id, runtime.blobs)
        assert b"".join(found.chunks()) == b"BEWEIS-NEU"
    assert client.post("/api/v1/reports/lookup", json={"receipt": older_receipt}).status_code == 404


def test_a_merge_ends_the_lost_receipts_sessions_and_keeps_the_identifiers_and_the_pepper_id(
    client: TestClient, runtime: Runtime, counsellor: Subject
) -> None:
    """Whoever signed in with the lost receipt before the merge reads nothing of the merged case after it; the
    perpetrator identifiers the reporter gave in the newer case stay in the merged case (waiting to be looked
    up again), and the receipt's lookup keeps the id of the pepper it was made under."""
    older_receipt, older = file(client, runtime, "Erste Meldung.")
    identifiers = [{"kind": "handle", "value": "@Merge_Probe", "platform": "instagram"}]
    newer_receipt, newer = file(
        client, runtime, "Zweite Meldung.", perpetrator_identifiers=identifiers, consent_matching=True
    )
    with runtime.sessions() as db:
        runtime.case_links.propose_merge(db, counsellor, newer, older[:8])
        newer_case = db.get(Case, newer)
        assert newer_case is not None
        newer_lookup_key_id = newer_case.lookup_key_id
        db.commit()  # the transaction the case page would have run
    finder = reporter_client(runtime, older_receipt)
    assert "Erste Meldung." in finder.get("/fall").text
    browser = confirm_merge(runtime, newer_receipt)
    assert "Zweite Meldung." in browser.get("/fall").text
    after = finder.get("/fall").text
    assert "Erste Meldung." not in after
    assert "Zweite Meldung." not in after
    with runtime.sessions() as db:
        merged = db.get(Case, older)
        assert merged is not None
        assert merged.lookup_key_id == newer_lookup_key_id
        opened = runtime.intake.open_case(db, newer_receipt)
        typed = open_typed(opened.data_key, older, merged.perpetrator_ciphertext)
    assert typed == [{"kind": "handle", "value": "@Merge_Probe", "platform": "instagram"}]


def test_a_failure_midway_through_a_merge_loses_nothing(
    client: TestClient, runtime: Runtime, counsellor: Subject, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, older = file(client, runtime, "Erste Meldung.")
    newer_receipt, newer = file_with_file(client, runtime, "Zweite Meldung.", b"BEWEIS-BLEIBT")
    with runtime.sessions() as db:
        runtime.case_links.propose_merge(db, counsellor, newer, older[:8])
        db.commit()  # the transaction the case page would have run
    before = blob_files(runtime)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected failure after the incidents, messages and files were moved")

    monkeypatch.setattr(runtime.merges, "_case_fields", broken)
    with runtime.sessions() as db:
        opened = runtime.intake.open_case(db, newer_receipt)
        with pytest.raises(RuntimeError):
            runtime.merges.confirm(db, newer, opened.data_key, newer_receipt)
    assert blob_files(runtime) == before, "the re-encrypted copies are gone, the originals are there"
    with runtime.sessions() as db:
        opened = runtime.intake.open_case(db, newer_receipt)
        assert opened.case.id == newer
        view = runtime.intake.reporter_view(db, opened)
        assert [item.description for item in view.incidents] == ["Zweite Meldung."]
        assert db.get(MergeProposal, newer) is not None, "the proposal still waits"
        assert len(db.scalars(select(Incident).where(Incident.case_id == older)).all()) == 1
        attachment = db.scalars(select(Attachment).where(Attachment.case_id == newer)).one()
        found = runtime.intake.open_attachment(db, opened, attachment.id, runtime.blobs)
        assert b"".join(found.chunks()) == b"BEWEIS-BLEIBT"
    monkeypatch.undo()
    with runtime.sessions() as db:
        opened = runtime.intake.open_case(db, newer_receipt)
        merged = runtime.merges.confirm(db, newer, opened.data_key, newer_receipt)
        db.commit()  # the transaction the reporter's page would have run
    assert merged.case_id == older


def test_the_merges_files_follow_the_callers_transaction(
    client: TestClient, runtime: Runtime, counsellor: Subject
) -> None:
    """The merge is the reporter's page's transaction: a step of the page after the merge that fails rolls it
    back and takes the re-encrypted copies with it; the originals go only when the page commits."""
    _, older = file(client, runtime, "Erste Meldung.")
    newer_receipt, newer = file_with_file(client, runtime, "Zweite Meldung.", b"BEWEIS-FOLGT")
    with runtime.sessions() as db:
        runtime.case_links.propose_merge(db, counsellor, newer, older[:8])
        db.commit()
        original = db.scalars(select(Attachment.blob_name).where(Attachment.case_id == newer)).one()
    before = blob_files(runtime)
    with runtime.sessions() as db:
        opened = runtime.intake.open_case(db, newer_receipt)
        runtime.merges.confirm(db, newer, opened.data_key, newer_receipt)
        assert blob_files(runtime) > before, "the copy is written, the original kept"
        db.rollback()  # a later step of the page failed
    assert blob_files(runtime) == before
    with runtime.sessions() as db:
        assert db.get(Case, newer) is not None
        assert db.get(MergeProposal, newer) is not None
        opened = runtime.intake.open_case(db, newer_receipt)
        runtime.merges.confirm(db, newer, opened.data_key, newer_receipt)
        db.commit()
    with runtime.sessions() as db:
        assert db.get(Case, newer) is None
        moved = db.scalars(select(Attachment.blob_name).where(Attachment.case_id == older)).one()
    assert blob_files(runtime) == (before - {original}) | {moved}, "the original went with the commit"


def test_declining_drops_the_proposal_and_a_new_holder_voids_it(
    client: TestClient, runtime: Runtime, counsellor: Subject
) -> None:
    _, older = file(client, runtime, "Erste Meldung.")
    newer_receipt, newer = file(client, runtime, "Zweite Meldung.")
    with runtime.sessions() as db:
        runtime.case_links.propose_merge(db, counsellor, newer, older)
        db.commit()  # the transaction the case page would have run
    with runtime.sessions() as db:
        assert runtime.merges.decline(db, newer)
        assert db.get(MergeProposal, newer) is None
    with runtime.sessions() as db:
        runtime.case_links.propose_merge(db, counsellor, newer, older)
        # The newer case goes to an organisation that does not hold the older one: it must not get its key.
        runtime.cases.refer(db, counsellor, newer, "rechtshilfe", transfer=False, consent=True)
        db.commit()  # the transaction the case page would have run
    with runtime.sessions() as db:
        opened = runtime.intake.open_case(db, newer_receipt)
        with pytest.raises(ValidationFailed):
            runtime.merges.confirm(db, newer, opened.data_key, newer_receipt)
    with runtime.sessions() as db:
        assert db.get(MergeProposal, newer) is None
        assert db.get(Case, newer) is not None
        with pytest.raises(ValidationFailed):
            runtime.case_links.propose_merge(db, counsellor, newer, older)


# -- proceedings ------------------------------------------------------------------------------------------


def today_here() -> date:
    return datetime.now(LOCAL_ZONE).date()


def test_a_recorded_strafantrag_stops_its_reminders_and_the_pages_say_it_was_filed(
    client: TestClient, runtime: Runtime, counsellor: Subject, login: Any, make_staff: MakeStaff
) -> None:
    occurred = today_here() - timedelta(days=80)  # the deadline is about ten days away
    _, control = file(client, runtime, "Beleidigung.", occurred_on=occurred.isoformat())
    receipt, filed = file(client, runtime, "Beleidigung, angezeigt.", occurred_on=occurred.isoformat())
    _, by_reporter = file(client, runtime, "Beleidigung, selbst angezeigt.", occurred_on=occurred.isoformat())
    with runtime.sessions() as db:
        runtime.cases.record_proceedings(
            db,
            counsellor,
            filed,
            1,
            Proceedings(application_on=today_here(), file_number="123 Js 456/26", outcome="running"),
        )
        # A reclassification computes the reminder week again: the recorded Strafantrag keeps it off.
        runtime.cases.reclassify(db, counsellor, filed, 1, ["A1"])
        db.commit()  # the transaction the case page would have run
    browser = reporter_client(runtime, receipt)
    page = browser.get("/fall").text
    assert "Der Strafantrag wurde am" in page
    assert "123 Js 456/26" in page

    schedule = CaseSchedule(runtime.audit, reporter_waiting_hours=48)
    with runtime.sessions() as db:
        weeks = {
            incident.case_id: incident.complaint_reminder_on for incident in db.scalars(select(Incident))
        }
    assert weeks[filed] is None
    assert weeks[control] is not None
    deadline = add_months(occurred, 3)
    sent = schedule.remind(runtime.sessions, datetime.now(LOCAL_ZONE), deadline - timedelta(days=3))
    reminded = {case_id for case_id, kind, _ in sent if kind.startswith("complaint_")}
    assert control in reminded
    assert by_reporter in reminded
    assert filed not in reminded

    staff = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    staff_page = staff.get(f"/intern/faelle/{filed}")
    assert "Strafantrag gestellt am" in staff_page.text
    refused = staff.post(
        f"/intern/faelle/{filed}/vorfaelle/1/verfahren",
        data={"csrf_token": csrf_token(staff_page.text), "application_on": "2999-01-01"},
        follow_redirects=False,
    )
    assert refused.status_code == 422
    assert 'href="#field-proceedings-1"' in refused.text, "the error leads to this incident's form"
    # Taking the day back brings the reminders back (the sealed incident day still holds the deadline).
    with runtime.sessions() as db:
        runtime.cases.record_proceedings(db, counsellor, filed, 1, Proceedings(outcome="running"))
        assert db.scalars(select(Incident.complaint_reminder_on).where(Incident.case_id == filed)).one()


def test_the_reporter_records_proceedings_on_fall(client: TestClient, runtime: Runtime) -> None:
    occurred = today_here() - timedelta(days=80)
    receipt, case_id = file(client, runtime, "Beleidigung.", occurred_on=occurred.isoformat())
    browser = reporter_client(runtime, receipt)
    token = csrf_token(browser.get("/fall").text)
    future = (today_here() + timedelta(days=2)).isoformat()
    refused = browser.post(
        "/fall/verfahren",
        data={"csrf_token": token, "seq": "1", "application_on": future},
        follow_redirects=False,
    )
    assert refused.status_code == 422
    with runtime.sessions() as db:
        assert db.scalars(select(Incident.proceedings)).one() is None
    saved = browser.post(
        "/fall/verfahren",
        data={
            "csrf_token": token,
            "seq": "1",
            "complaint_on": today_here().isoformat(),
            "application_on": today_here().isoformat(),
            "information_requested": "yes",
            "outcome": "dismissed_170",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    page = browser.get("/fall").text
    assert "Der Strafantrag wurde am" in page
    assert "eingestellt mangels hinreichenden Tatverdachts (§ 170 Abs. 2 StPO)" in page
    with runtime.sessions() as db:
        incident = db.scalars(select(Incident).where(Incident.case_id == case_id)).one()
        assert incident.complaint_reminder_on is None
        assert incident.proceedings is not None
        (event,) = db.scalars(select(AuditEvent).where(AuditEvent.action == "case.proceedings")).all()
        assert event.actor_kind == "reporter"
        assert event.details == {"seq": 1}


def test_the_case_page_answers_404_for_another_organisations_case_in_a_merge_or_link(
    client: TestClient, runtime: Runtime, make_staff: MakeStaff, login: Any
) -> None:
    """A counsellor holding only one of the two cases can propose nothing: the other case is not found,
    byte for byte as a case that does not exist; nothing is written."""
    _, ours = file(client, runtime, "Unsere Meldung.")
    _, theirs = file(client, runtime, "Ihre Meldung.", land="05")
    browser = login(make_staff(memberships=[("beratung-by", MembershipRole.counsellor)]))
    token = csrf_token(browser.get(f"/intern/faelle/{ours}").text)
    answers = []
    for other in (theirs[:8], "0123abcd"):
        merge = browser.post(
            f"/intern/faelle/{ours}/zusammenfuehren",
            data={"csrf_token": token, "action": "propose", "other_case": other},
            follow_redirects=False,
        )
        link = browser.post(
            f"/intern/faelle/{ours}/ereignis",
            data={"csrf_token": token, "other_case": other},
            follow_redirects=False,
        )
        assert merge.status_code == link.status_code == 404
        answers.append((merge.text, link.text))
    assert answers[0] == answers[1]
    with runtime.sessions() as db:
        assert db.scalars(select(MergeProposal)).all() == []
        assert db.scalars(select(EventLink)).all() == []


def test_a_merge_into_a_closed_case_takes_the_open_cases_clock_and_counts_one_set_of_answers(
    client: TestClient, runtime: Runtime, counsellor: Subject
) -> None:
    """The older case was closed long ago; the newer one is open and waits for its acknowledgement. Merged,
    the case is open with the newer case's deadline (the closed case's, long past, would escalate at once),
    and the reporter's KoMo answers of both reports are on one statistics row, each code once: left on two
    rows, one reporter's answers would count twice."""
    _, older = file(
        client, runtime, "Erste Meldung.", motives=["municipal_decision"], triggers=["budget_taxes"]
    )
    newer_receipt, newer = file(
        client, runtime, "Zweite Meldung.", motives=["entitlement", "municipal_decision"], triggers=[]
    )
    long_ago = datetime.now(LOCAL_ZONE) - timedelta(days=90)
    with runtime.sessions() as db:
        closed = db.get(Case, older)
        assert closed is not None
        closed.status, closed.outcome, closed.closed_at = "closed", "supported", long_ago
        closed.ack_deadline_at = closed.acknowledged_at = long_ago
        db.commit()
        open_case = db.get(Case, newer)
        assert open_case is not None
        newer_deadline, newer_status = open_case.ack_deadline_at, open_case.status
        runtime.case_links.propose_merge(db, counsellor, newer, older[:8])
        db.commit()
    confirm_merge(runtime, newer_receipt)
    with runtime.sessions() as db:
        merged = db.get(Case, older)
        assert merged is not None
        assert (merged.status, merged.outcome, merged.closed_at) == (newer_status, None, None)
        assert merged.ack_deadline_at == newer_deadline
        assert merged.acknowledged_at is None
        rows = list(db.scalars(select(StatisticsExtract)))
    assert len(rows) == 2
    answered = [row for row in rows if row.motives is not None]
    assert len(answered) == 1, "one report, one set of answers"
    assert answered[0].motives == ["entitlement", "municipal_decision"]
    assert answered[0].triggers == ["budget_taxes"]
    (further,) = [row for row in rows if row.motives is None]
    assert (further.bias, further.triggers, further.consequences) == (None, None, None)
