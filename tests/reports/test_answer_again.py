"""A second tap on "send" is shown the receipt of the first, for a quarter of an hour, and nobody else is.

service/reports/answer_again.py: the report form's filing keeps its receipt page sealed beside the used
token, under a key only the token yields. The reporter whose browser shows the answer to a second tap (or to
a resend after an error page) gets the code instead of "already sent"; past the quarter of an hour, or for
anyone without that form view's token, nothing more is shown than before. Adversaries played here: the thief
of a dump together with every server secret (the operator), and a hostile sender with forms of their own.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.cases.models import Case, Incident
from service.config import Settings
from service.crypto import Context, seal
from service.db import utcnow
from service.errors import AlreadySubmitted
from service.reports import answer_again, pages, repository
from service.reports.filing import CaseDraft
from service.reports.models import SubmissionToken
from service.reports.repository import StaleGrant
from service.reports.schemas import ReportCreate
from service.reports.submissions import REPORT_PURPOSE, SubmissionClaim, SubmissionTokens, TokenState
from service.runtime import Runtime
from tests.support.blocking import waits_for
from tests.support.custody import Loot, cases_opened, dump_database, secrets_in
from tests.support.forms import LETTER_FORM, csrf_token, report_form_tokens
from workers import context
from workers import tasks as worker_tasks
from workers.celery_app import celery_config

FIELDS: dict[str, Any] = dict(LETTER_FORM)
RECEIPT = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}")


def receipt_on(html: str) -> str | None:
    found = RECEIPT.search(re.sub(r"<[^>]+>", "", html))
    return found.group(0) if found else None


def count(runtime: Runtime, model: type[Any]) -> int:
    with runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def form_view(client: TestClient) -> dict[str, str]:
    return report_form_tokens(client.get("/melden").text)


def claim_of(runtime: Runtime, token: str) -> SubmissionClaim:
    claim = runtime.submissions.check(token, REPORT_PURPOSE, utcnow()).claim
    assert claim is not None
    return claim


def signs_in(client: TestClient, receipt: str) -> bool:
    page = client.get("/fall").text
    answer = client.post("/fall/anmelden", data={"csrf_token": csrf_token(page), "receipt": receipt})
    return answer.status_code == 200 and "Drohbrief im Briefkasten des Rathauses." in answer.text


def test_a_second_tap_is_shown_the_receipt_of_the_first(client: TestClient, runtime: Runtime) -> None:
    """Given a report sent from a form view, when the same view is sent again (a second tap, Back and
    send), then nothing more is filed and the answer is the first receipt page again, saying so, in the
    reporter's language; the code opens the case."""
    view = form_view(client)
    first = client.post("/melden", data={**FIELDS, **view})
    assert first.status_code == 201, first.text
    receipt = receipt_on(first.text)
    assert receipt

    again = client.post("/melden", data={**FIELDS, **view})
    english = client.post("/melden?lang=en", data={**FIELDS, **view})

    assert again.status_code == 200
    assert receipt_on(again.text) == receipt
    assert "mehr als einmal gesendet" in again.text
    assert "Beratungsstelle Rückhalt Bayern (Demo)" in again.text  # where it went, as the first time
    assert english.status_code == 200
    assert receipt_on(english.text) == receipt
    assert "You sent this form more than once" in english.text
    assert count(runtime, Case) == 1
    assert signs_in(client, receipt)


def _report() -> ReportCreate:
    return ReportCreate.model_validate(
        {key: value for key, value in FIELDS.items() if key != "consent_counselling"}
    )


def second_tap(runtime: Runtime, claim: SubmissionClaim) -> str:
    """A submission with a used token, as the page makes it: AlreadySubmitted, then the kept answer."""
    try:
        with runtime.sessions() as db:
            runtime.intake.file_report(db, _report(), CaseDraft.new(), [], claim=claim)
            db.commit()
    except AlreadySubmitted:
        with runtime.sessions() as db:
            shown = runtime.intake.answer_again(db, claim)
            db.commit()
        return shown.receipt if shown is not None else "nothing shown"
    return "filed twice"


def test_a_second_tap_while_the_first_is_in_flight_waits_and_gets_its_receipt(runtime: Runtime) -> None:
    """The first filing has claimed the token and kept its answer but not committed: the second waits for
    it at the database, then finds the token used and is shown the first one's receipt."""
    claim = claim_of(runtime, runtime.submissions.issue(REPORT_PURPOSE, utcnow()))
    shown: list[str] = []
    with runtime.sessions() as first:
        filed = runtime.intake.file_report(first, _report(), CaseDraft.new(), [], claim=claim)
        waits_for(first.commit, lambda: shown.append(second_tap(runtime, claim)), "the second tap")
    assert shown == [filed.receipt]
    assert count(runtime, Case) == 1


def test_a_filing_routed_again_keeps_its_answer_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An organisation changed since it was read (StaleGrant): the filing rolls back the claim with the
    rest and files again, which claims and keeps anew; the answer is the receipt that was filed."""
    claim = claim_of(runtime, runtime.submissions.issue(REPORT_PURPOSE, utcnow()))
    real = repository.insert_new
    attempts: list[int] = []

    def stale_once(session: Any, rows: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise StaleGrant()
        real(session, rows)

    monkeypatch.setattr(repository, "insert_new", stale_once)
    with runtime.sessions() as db:
        filed = runtime.intake.file_report(db, _report(), CaseDraft.new(), [], claim=claim)
        db.commit()
    assert len(attempts) == 2
    assert (count(runtime, Case), count(runtime, SubmissionToken)) == (1, 1)
    assert second_tap(runtime, claim) == filed.receipt


def test_after_a_quarter_of_an_hour_the_code_is_not_shown_again(client: TestClient, runtime: Runtime) -> None:
    """The answer's time is over: the page says the report arrived and how to go on without the code, shows
    no code, and the kept answer is erased."""
    view = form_view(client)
    first = client.post("/melden", data={**FIELDS, **view})
    assert first.status_code == 201
    claim = claim_of(runtime, view["submission_token"])
    with runtime.sessions() as db:
        shown = runtime.intake.answer_again(db, claim)
        assert shown is not None
        # The same answer, kept as a filing a quarter of an hour and a second ago would have kept it.
        answer_again.keep(db, claim, shown, utcnow() - answer_again.SHOWN_AGAIN_FOR - timedelta(seconds=1))
        db.commit()

    again = client.post("/melden", data={**FIELDS, **view})

    assert again.status_code == 409
    assert "Diese Meldung ist bereits angekommen" in again.text
    assert "Hier können wir ihn nicht mehr zeigen" in again.text
    assert "verloren" in again.text  # a new report that mentions the lost code
    assert 'href="/wissen/hilfe-in-den-laendern"' in again.text
    assert receipt_on(again.text) is None
    english = client.post("/melden?lang=en", data={**FIELDS, **view})
    assert english.status_code == 409
    assert "This report has already arrived" in english.text
    assert "Here we can no longer show it" in english.text
    assert receipt_on(english.text) is None
    with runtime.sessions() as db:
        assert db.execute(select(SubmissionToken.answer, SubmissionToken.answer_until)).all() == [
            (None, None)
        ]
    assert count(runtime, Case) == 1


def test_within_the_quarter_of_an_hour_the_answer_stays(runtime: Runtime) -> None:
    """The edge, on the service's clock: shown just before the end, erased at it."""
    claim = claim_of(runtime, runtime.submissions.issue(REPORT_PURPOSE, utcnow()))
    with runtime.sessions() as db:
        filed = runtime.intake.file_report(db, _report(), CaseDraft.new(), [], claim=claim)
        db.commit()
    now = utcnow()
    with runtime.sessions() as db:
        answer_again.keep(db, claim, filed, now)
        end = now + answer_again.SHOWN_AGAIN_FOR
        shown = answer_again.again(db, claim, end - timedelta(seconds=1))
        assert shown is not None
        assert (shown.receipt, shown.routed_to, shown.key_holders, shown.complaint, shown.type_codes) == (
            filed.receipt,
            filed.routed_to,
            filed.key_holders,
            filed.complaint,
            filed.type_codes,
        )
        assert (shown.case_id, shown.urgency) == ("", "")  # not kept: not shown
        assert answer_again.again(db, claim, end) is None
        assert repository.kept_answer(db, claim.token_hash) is None


def test_the_minute_task_erases_every_answer_whose_time_has_ended(
    client: TestClient, runtime: Runtime, settings: Settings
) -> None:
    """Without a second tap the answer does not wait for the day's purge: the minute task erases it, with
    the minute its time ends, and leaves one whose time runs."""
    views = [form_view(client) for _ in range(2)]
    for view in views:
        assert client.post("/melden", data={**FIELDS, **view}).status_code == 201
    old = claim_of(runtime, views[0]["submission_token"])
    with runtime.sessions() as db:
        shown = runtime.intake.answer_again(db, old)
        assert shown is not None
        answer_again.keep(db, old, shown, utcnow() - answer_again.SHOWN_AGAIN_FOR - timedelta(minutes=1))
        db.commit()
    context.use(context.context_for(runtime, settings))
    try:
        assert worker_tasks.forget_answers.run() == 1
        assert worker_tasks.forget_answers.run() == 0
    finally:
        context.use(None)
    with runtime.sessions() as db:
        kept = dict(db.execute(select(SubmissionToken.token_hash, SubmissionToken.answer_until)).all())
        assert kept[old.token_hash] is None
        assert repository.kept_answer(db, old.token_hash) is None
        running = claim_of(runtime, views[1]["submission_token"])
        assert kept[running.token_hash] is not None
        assert runtime.intake.answer_again(db, running) is not None
    assert "reports.forget_answers" in {
        entry["task"] for entry in celery_config(settings)["beat_schedule"].values()
    }


def test_a_failure_after_the_answer_is_kept_loses_nothing(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim, the case and its kept answer are one transaction: a failure in the middle stores none of
    them, and the same form view then files the report."""
    view = form_view(client)

    real = repository.keep_answer

    def kept_then_broken(*args: Any) -> None:
        real(*args)  # the answer is written, in the filing's transaction
        raise RuntimeError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(repository, "keep_answer", kept_then_broken)
        failed = TestClient(client.app, base_url="http://127.0.0.1", raise_server_exceptions=False)
        failed.cookies = client.cookies
        assert failed.post("/melden", data={**FIELDS, **view}).status_code == 500
    assert (count(runtime, Case), count(runtime, SubmissionToken)) == (0, 0)

    sent = client.post("/melden", data={**FIELDS, **view})
    assert sent.status_code == 201
    assert receipt_on(client.post("/melden", data={**FIELDS, **view}).text) == receipt_on(sent.text)


def test_an_answer_that_cannot_be_opened_is_erased_and_never_shown(
    client: TestClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone with write access to the database swaps in an answer of their own (sealed under another
    key): it fails to open, is erased, and the page says only that the report arrived."""
    view = form_view(client)
    assert client.post("/melden", data={**FIELDS, **view}).status_code == 201
    claim = claim_of(runtime, view["submission_token"])
    forged = json.dumps({"receipt": "AAAA-AAAA-AAAA-AAAA-AAAA"}).encode()
    with runtime.sessions() as db:
        context = Context("submission_answer", record_id=claim.token_hash.hex())
        repository.keep_answer(
            db, claim.token_hash, seal(bytes(32), forged, context), utcnow() + timedelta(minutes=5)
        )
        db.commit()

    with caplog.at_level(logging.WARNING, logger="rueckhalt.intake"):
        again = client.post("/melden", data={**FIELDS, **view})

    assert again.status_code == 409
    assert receipt_on(again.text) is None
    assert "could not be opened (DecryptionError)" in caplog.text
    assert view["submission_token"] not in caplog.text
    with runtime.sessions() as db:
        assert repository.kept_answer(db, claim.token_hash) is None


def test_a_hostile_sender_with_forms_of_their_own_gets_only_their_own_receipts(
    client: TestClient, runtime: Runtime
) -> None:
    """The hostile "reporter" sends many views of the form and resends each: every answer is the receipt
    of their own report, never the victim's; a made-up token files nothing and shows nothing."""
    victim = client.post("/melden", data={**FIELDS, **form_view(client)})
    victims_receipt = receipt_on(victim.text)
    assert victims_receipt is not None
    hostile = TestClient(client.app, base_url="http://127.0.0.1")
    own: set[str] = set()
    for _ in range(3):
        view = form_view(hostile)
        filed = receipt_on(hostile.post("/melden", data={**FIELDS, **view}).text)
        again = receipt_on(hostile.post("/melden", data={**FIELDS, **view}).text)
        assert filed is not None
        assert again == filed
        own.add(filed)
    view = form_view(hostile)
    made_up = view["submission_token"][:-6] + "AAAAAA"
    refused = hostile.post("/melden", data={**FIELDS, **view, "submission_token": made_up})
    assert refused.status_code == 422
    assert victims_receipt not in own
    assert receipt_on(refused.text) is None


def test_the_thief_of_a_dump_with_every_secret_reads_no_kept_receipt(
    client: TestClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator: every row of the database and every server secret of the data folder. The kept
    answers do not open (their key needs the form's token, which only the reporter's browser held), so no
    case opens. The control: with that token in hand as well, the same workbench opens the case."""
    views = [form_view(client) for _ in range(2)]
    for view in views:
        assert client.post("/melden", data={**FIELDS, **view}).status_code == 201
    dump = dump_database(runtime.engine)
    assert len([row for row in dump["submission_token"] if row["answer"]]) == 2
    loot = Loot(peppers=secrets_in(runtime.settings.data_dir))
    assert runtime.secrets.session_key in loot.peppers
    # What opens an answer is nowhere at rest: neither a token nor its random part, in the database, the
    # data folder or the log.
    everything = repr(dump).encode() + b"".join(
        path.read_bytes() for path in runtime.settings.data_dir.rglob("*") if path.is_file()
    )
    for view in views:
        nonce = view["submission_token"].split(".")[2]
        for secret in (view["submission_token"], nonce):
            assert secret.encode() not in everything
            assert secret not in caplog.text

    assert cases_opened(dump, loot) == set()

    loot.add_text(views[0]["submission_token"])
    assert len(cases_opened(dump, loot)) == 1


def test_code_noted_erases_the_answer_at_once_and_leads_to_sign_in(
    client: TestClient, runtime: Runtime
) -> None:
    """The receipt page's button: the answer is erased now, a second tap after it shows no code, and the
    reporter lands on the sign-in with a notice. Without the page's CSRF token nothing is erased."""
    view = form_view(client)
    first = client.post("/melden", data={**FIELDS, **view})
    assert 'action="/melden/code-notiert"' in first.text
    assert view["submission_token"] in first.text  # the button's form carries it
    form = {"csrf_token": csrf_token(first.text), "submission_token": view["submission_token"]}

    forged = client.post("/melden/code-notiert", data={**form, "csrf_token": "x"}, follow_redirects=False)
    assert forged.status_code == 403
    with runtime.sessions() as db:
        assert repository.kept_answer(db, claim_of(runtime, view["submission_token"]).token_hash) is not None

    noted = client.post("/melden/code-notiert", data=form, follow_redirects=False)

    assert noted.status_code == 303
    assert noted.headers["location"] == "/fall?notice=code_noted"
    assert "Der Code wird nicht mehr angezeigt" in client.get(noted.headers["location"]).text
    with runtime.sessions() as db:
        assert db.execute(select(SubmissionToken.answer, SubmissionToken.answer_until)).all() == [
            (None, None)
        ]
    again = client.post("/melden", data={**FIELDS, **view})
    assert again.status_code == 409
    assert receipt_on(again.text) is None
    # A token that names nothing erases nothing and leads on the same way.
    unknown = {**form, "submission_token": "s1.1.AAAA.AAAA"}
    assert client.post("/melden/code-notiert", data=unknown, follow_redirects=False).status_code == 303


def test_the_kept_answer_is_the_same_size_whatever_the_report(client: TestClient, runtime: Runtime) -> None:
    """AES-GCM does not hide a length: the answer is padded, so its size does not say how many kinds of
    incident or organisations the case has (which are in clear beside it)."""
    for codes in (["A3a"], ["A3a", "A1", "A11", "A2"]):
        assert (
            client.post("/melden", data={**FIELDS, **form_view(client), "type_codes": codes}).status_code
            == 201
        )
    with runtime.sessions() as db:
        sizes = {len(answer) for answer in db.scalars(select(SubmissionToken.answer)).all() if answer}
    assert len(sizes) == 1


def test_a_second_tap_after_the_session_key_was_rotated_finds_the_first_answer(runtime: Runtime) -> None:
    """The operator rotates the session key between the two taps (``rueckhalt secrets rotate``): the token
    was made under the previous key, which still names its row and opens its answer."""
    old_key, new_key = runtime.secrets.session_key, bytes(range(32))
    before = SubmissionTokens(old_key)
    token = before.issue(REPORT_PURPOSE, utcnow())
    claim = before.check(token, REPORT_PURPOSE, utcnow()).claim
    assert claim is not None
    with runtime.sessions() as db:
        filed = runtime.intake.file_report(db, _report(), CaseDraft.new(), [], claim=claim)
        db.commit()

    after = SubmissionTokens(new_key, previous=(old_key,))
    again = after.check(token, REPORT_PURPOSE, utcnow()).claim

    assert again is not None
    assert again.token_hash == claim.token_hash
    assert second_tap(runtime, again) == filed.receipt
    assert SubmissionTokens(new_key).check(token, REPORT_PURPOSE, utcnow()).state is TokenState.unknown
    assert "answer_key" not in repr(again)  # never in a traceback or a log line


def test_the_minute_the_answer_is_erased_is_never_before_its_end(runtime: Runtime) -> None:
    """``answer_until`` is stored to the minute: rounded up, so the minute task never erases an answer its
    reporter may still be shown; an end on a whole minute stays that minute."""
    claim = claim_of(runtime, runtime.submissions.issue(REPORT_PURPOSE, utcnow()))
    with runtime.sessions() as db:
        filed = runtime.intake.file_report(db, _report(), CaseDraft.new(), [], claim=claim)
        for filed_at, erased_at in (("12:00:30", "12:16:00"), ("12:00:00", "12:15:00")):
            day = "2026-12-07T"
            answer_again.keep(db, claim, filed, datetime.fromisoformat(f"{day}{filed_at}+00:00"))
            stored = db.scalar(select(SubmissionToken.answer_until))
            assert stored == datetime.fromisoformat(f"{day}{erased_at}+00:00")


def test_a_second_tap_just_after_the_views_end_is_shown_the_receipt_not_the_form_again(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view filed a minute before its token's end and sent again a minute after: the token has expired,
    but it was used, so the answer is the first receipt (kept for a quarter of an hour), not "the form has
    expired" with the form shown again to be filed a second time. An expired view that filed nothing is
    refused as before, with nothing filed."""
    view = form_view(client)
    unused = form_view(client)
    first = client.post("/melden", data={**FIELDS, **view})
    assert first.status_code == 201, first.text
    ends = datetime.fromtimestamp(int(view["submission_token"].split(".")[1]), UTC)
    monkeypatch.setattr(pages, "utcnow", lambda: ends + timedelta(minutes=1))

    again = client.post("/melden", data={**FIELDS, **view})
    expired = client.post("/melden", data={**FIELDS, **unused})

    assert again.status_code == 200, again.text
    assert receipt_on(again.text) == receipt_on(first.text)
    assert expired.status_code == 422
    assert "abgelaufen" in expired.text
    assert count(runtime, Case) == 1


def test_a_further_incident_sent_again_just_after_the_views_end_is_added_once(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = client.post("/melden", data={**FIELDS, **form_view(client)})
    receipt = receipt_on(first.text)
    assert receipt
    assert signs_in(client, receipt)
    view = {
        **report_form_tokens(client.get("/fall").text),
        "type_codes": "A3a",
        "description": "Wieder ein Brief.",
        "channel": "letter",
    }
    added = client.post("/fall/vorfall", data=view, follow_redirects=False)
    assert added.status_code == 200, added.text
    ends = datetime.fromtimestamp(int(view["submission_token"].split(".")[1]), UTC)
    monkeypatch.setattr(pages, "utcnow", lambda: ends + timedelta(minutes=1))

    again = client.post("/fall/vorfall", data=view, follow_redirects=False)

    assert again.status_code == 303
    assert again.headers["location"] == "/fall?notice=incident_already_added"
    assert count(runtime, Incident) == 2
