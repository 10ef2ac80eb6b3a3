"""Issue 15, "Back after sending makes a second case": each view of a reporter's form files once.

The report form and the further-incident form on /fall carry a single-use submission token. A second
submission of the same view (Back and send, a second tap) files nothing and shows the first one's receipt
again (tests/reports/test_answer_again.py); an expired or unknown token brings the form back with
everything typed and a new token. Only a keyed hash of a used token is stored in clear, with its expiry,
and nothing that links it to the case; the retention purge deletes expired ones. Two submissions at once
with one token file exactly one case.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select

from service.cases.models import Case, Incident
from service.db import utcnow
from service.errors import AlreadySubmitted
from service.reports import repository
from service.reports.filing import CaseDraft, Filed
from service.reports.models import SubmissionToken
from service.reports.schemas import ReportCreate
from service.reports.submissions import REPORT_PURPOSE, TokenState, incident_purpose
from service.runtime import Runtime
from tests.support.blocking import at_once, waits_for
from tests.support.forms import LETTER_FORM, csrf_token, report_form_tokens, submission_token

FIELDS: dict[str, Any] = dict(LETTER_FORM)


def count(runtime: Runtime, model: type[Any]) -> int:
    with runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def form_view(client: TestClient, path: str = "/melden") -> dict[str, str]:
    return report_form_tokens(client.get(path).text)


def test_back_and_send_files_the_report_once(client: TestClient, runtime: Runtime) -> None:
    """Given a sent report, when the same view of the form is sent again (Back, send), then nothing is
    filed a second time (what that answer shows: tests/reports/test_answer_again.py)."""
    view = form_view(client)
    first = client.post("/melden", data={**FIELDS, **view})
    assert first.status_code == 201, first.text

    again = client.post("/melden", data={**FIELDS, **view})

    assert again.status_code == 200
    assert count(runtime, Case) == 1
    assert count(runtime, SubmissionToken) == 1


def test_a_new_view_of_the_form_files_a_new_report(client: TestClient, runtime: Runtime) -> None:
    assert client.post("/melden", data={**FIELDS, **form_view(client)}).status_code == 201
    assert client.post("/melden", data={**FIELDS, **form_view(client)}).status_code == 201
    assert count(runtime, Case) == 2


def test_the_stored_token_cannot_be_joined_to_its_case(client: TestClient, runtime: Runtime) -> None:
    """In clear only a keyed hash and the hour of expiry: no case, receipt, time of use or address. The
    answer kept for a second tap is ciphertext (who can open it: tests/reports/test_answer_again.py)."""
    view = form_view(client)
    filed = client.post("/melden", data={**FIELDS, **view})
    assert filed.status_code == 201
    with runtime.sessions() as db:
        columns = {column["name"] for column in inspect(db.get_bind()).get_columns("submission_token")}
        (row,) = db.scalars(select(SubmissionToken)).all()
        (case_id,) = db.scalars(select(Case.id)).all()
    assert columns == {"token_hash", "expires_at", "answer", "answer_until"}  # the last two for 15 minutes
    assert view["submission_token"].encode() not in row.token_hash
    assert len(row.token_hash) == 32
    assert (row.expires_at.minute, row.expires_at.second, row.expires_at.microsecond) == (0, 0, 0)
    receipt = re.search(
        r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}", re.sub(r"<[^>]+>", "", filed.text)
    )
    assert receipt
    assert row.answer
    for clear in (receipt.group(0), receipt.group(0).replace("-", ""), case_id):
        assert clear.encode() not in row.answer


def test_an_expired_token_keeps_what_was_typed_and_gives_a_new_one(
    client: TestClient, runtime: Runtime
) -> None:
    """Given a form opened more than a day ago, sending it files nothing yet: the form comes back with the
    text and a new token, and sending that files the report."""
    view = form_view(client)
    view["submission_token"] = runtime.submissions.issue(REPORT_PURPOSE, utcnow() - timedelta(hours=26))
    fields = {**FIELDS, "place": "Marktplatz 1"}

    refused = client.post("/melden", data={**fields, **view})

    assert refused.status_code == 422
    assert count(runtime, Case) == 0
    assert "Drohbrief im Briefkasten des Rathauses." in refused.text
    assert "Marktplatz 1" in refused.text
    assert "länger als einen Tag geöffnet" in refused.text
    fresh = submission_token(refused.text)
    assert fresh != view["submission_token"]
    sent = client.post("/melden", data={**fields, **view, "submission_token": fresh})
    assert sent.status_code == 201, sent.text
    assert count(runtime, Case) == 1


def test_an_unknown_or_missing_token_files_nothing_and_keeps_the_text(
    client: TestClient, runtime: Runtime
) -> None:
    view = form_view(client)
    forged = view["submission_token"][:-4] + "AAAA"
    for token in (forged, ""):
        refused = client.post("/melden", data={**FIELDS, **view, "submission_token": token})
        assert refused.status_code == 422
        assert "Drohbrief im Briefkasten des Rathauses." in refused.text
        assert "konnte nicht zugeordnet werden" in refused.text
        assert submission_token(refused.text) not in (forged, "")
    # A token of another form (a further incident's) is no report form's token either.
    other = runtime.submissions.issue(incident_purpose("any-case"), utcnow())
    assert runtime.submissions.check(other, REPORT_PURPOSE, utcnow()).state is TokenState.unknown
    assert count(runtime, Case) == 0


def test_a_refused_report_leaves_its_token_usable(client: TestClient, runtime: Runtime) -> None:
    """A bad field comes back with the same token (Back to this view still files once), and the token is
    not spent: the corrected form files."""
    view = form_view(client)
    bad = client.post("/melden", data={**FIELDS, **view, "type_codes": ["NOPE"]})
    assert bad.status_code == 422
    assert submission_token(bad.text) == view["submission_token"]
    assert count(runtime, SubmissionToken) == 0
    assert client.post("/melden", data={**FIELDS, **view}).status_code == 201
    assert client.post("/melden", data={**FIELDS, **view}).status_code == 200  # the receipt again
    assert count(runtime, Case) == 1


def _report() -> ReportCreate:
    data = {key: value for key, value in FIELDS.items() if key != "consent_counselling"}
    return ReportCreate.model_validate(data)


def test_two_submissions_at_once_with_one_token_file_one_case(runtime: Runtime) -> None:
    """Both start together; the database lets one insert the token and the other find it."""
    claim = runtime.submissions.check(
        runtime.submissions.issue(REPORT_PURPOSE, utcnow()), REPORT_PURPOSE, utcnow()
    )
    assert claim.claim is not None

    def submit() -> Filed:
        with runtime.sessions() as db:
            filed = runtime.intake.file_report(db, _report(), CaseDraft.new(), [], claim=claim.claim)
            db.commit()
        return filed

    results = at_once(submit)
    assert len(results) == 2, results
    assert sum(isinstance(result, Filed) for result in results) == 1
    assert sum(isinstance(result, AlreadySubmitted) for result in results) == 1
    assert count(runtime, Case) == 1


def test_a_second_claim_waits_for_the_first_and_then_finds_the_token_used(runtime: Runtime) -> None:
    """The atomic step itself: while one transaction holds the claim uncommitted, the second waits at the
    database; after the first commits it claims nothing."""
    checked = runtime.submissions.check(
        runtime.submissions.issue(REPORT_PURPOSE, utcnow()), REPORT_PURPOSE, utcnow()
    )
    assert checked.claim is not None
    claim = checked.claim
    second: list[bool] = []
    with runtime.sessions() as first:
        assert repository.claim_submission(first, claim) is True

        def claim_again() -> None:
            with runtime.sessions() as db:
                second.append(repository.claim_submission(db, claim))
                db.commit()

        waits_for(first.commit, claim_again, "the second claim")
    assert second == [False]
    assert count(runtime, SubmissionToken) == 1


def sign_in(client: TestClient, receipt: str) -> str:
    page = client.get("/fall")
    signed_in = client.post("/fall/anmelden", data={"csrf_token": csrf_token(page.text), "receipt": receipt})
    assert signed_in.status_code == 200
    return signed_in.text


def test_a_further_incident_sent_twice_is_added_once(client: TestClient, runtime: Runtime) -> None:
    filed = client.post("/melden", data={**FIELDS, **form_view(client)})
    receipt = re.search(
        r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}", re.sub(r"<[^>]+>", "", filed.text)
    )
    assert receipt
    page = sign_in(client, receipt.group(0))
    incident = {
        "csrf_token": csrf_token(page),
        "submission_token": submission_token(page),
        "type_codes": ["A11"],
        "description": "Wieder standen Leute vor meinem Haus.",
        "channel": "in_person.home",
    }
    added = client.post("/fall/vorfall", data=incident)
    assert added.status_code == 200, added.text
    assert submission_token(added.text) != incident["submission_token"]

    again = client.post("/fall/vorfall", data=incident, follow_redirects=False)

    assert again.status_code == 303
    assert again.headers["location"] == "/fall?notice=incident_already_added"
    assert "kein zweites Mal hinzugefügt" in client.get(again.headers["location"]).text
    assert count(runtime, Incident) == 2


def test_used_tokens_are_deleted_by_the_retention_purge_a_day_after_their_end(
    client: TestClient, runtime: Runtime
) -> None:
    assert client.post("/melden", data={**FIELDS, **form_view(client)}).status_code == 201
    assert count(runtime, SubmissionToken) == 1
    with runtime.sessions() as db:
        early = runtime.retention.purge(db, utcnow() + timedelta(hours=12), dry_run=False)
        db.commit()  # the task's transaction
    assert early.submission_tokens == 0
    assert count(runtime, SubmissionToken) == 1
    with runtime.sessions() as db:
        # A day past the token's end the row is still there: a view sent again then is recognised.
        kept = runtime.retention.purge(db, utcnow() + timedelta(hours=26 + 22), dry_run=False)
        db.commit()
    assert kept.submission_tokens == 0
    with runtime.sessions() as db:
        dry = runtime.retention.purge(db, utcnow() + timedelta(hours=26 + 24), dry_run=True)
        late = runtime.retention.purge(db, utcnow() + timedelta(hours=26 + 24), dry_run=False)
        db.commit()  # the task's transaction
    assert (dry.submission_tokens, late.submission_tokens) == (1, 1)
    assert count(runtime, SubmissionToken) == 0
