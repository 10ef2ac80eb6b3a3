"""A JSON client's retry with the same Idempotency-Key files once and gets the first receipt.

The API's counterpart of the report form's single-use token (tests/reports/test_answer_again.py): after a
lost answer or a 503 (the database connection lost with the report committed after all), a client that
sends the same report with the same key gets the receipt of the first filing, not a second case whose
first receipt nobody holds. The key and the body together name the claim: the same key with another body
is another report. Adversaries: a hostile client who knows or guesses a victim's key, and the thief of a
dump with every server secret.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.cases.models import Case
from service.db import utcnow
from service.matching.service import Budget
from service.observability import metrics
from service.reports import answer_again
from service.reports.filing import CaseDraft
from service.reports.models import SubmissionToken
from service.reports.schemas import ReportCreate
from service.reports.submissions import SubmissionTokens
from service.runtime import Runtime
from tests.support.blocking import at_once
from tests.support.custody import Loot, cases_opened, dump_database, secrets_in
from tests.support.forms import report_body

BODY = report_body(description="Drohanruf im Bürgerbüro, zweimal an einem Tag.")


def content(body: dict[str, Any]) -> bytes:
    """The body as the intake reads it (``ReportCreate`` as JSON): with the key, what names the claim."""
    return ReportCreate.model_validate(body).model_dump_json().encode()


def count(runtime: Runtime, model: type[Any]) -> int:
    with runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def post(client: TestClient, body: dict[str, Any], key: str | None) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/api/v1/reports", json=body, headers=headers)


def test_a_retry_with_the_same_key_files_once_and_answers_with_the_first_receipt(
    client: TestClient, runtime: Runtime
) -> None:
    key = str(uuid.uuid4())
    first = post(client, BODY, key)
    again = post(client, BODY, key)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(runtime, Case) == 1
    with runtime.sessions() as db:
        assert runtime.intake.open_case(db, again.json()["receipt"]).case is not None


def test_without_a_key_each_request_is_a_report(client: TestClient, runtime: Runtime) -> None:
    assert post(client, BODY, None).json()["receipt"] != post(client, BODY, None).json()["receipt"]
    assert count(runtime, Case) == 2
    assert count(runtime, SubmissionToken) == 0  # and nothing is kept for a retry


def test_the_same_key_with_other_content_is_another_report(client: TestClient, runtime: Runtime) -> None:
    """A client that reuses its key loses no report; the second answer shows nothing of the first."""
    key = str(uuid.uuid4())
    first = post(client, BODY, key)
    other = post(client, {**BODY, "description": "Ein anderer Vorfall: Flugblatt am Rathaus."}, key)

    assert first.status_code == other.status_code == 201
    assert other.json()["receipt"] != first.json()["receipt"]
    assert "Idempotent-Replayed" not in other.headers
    assert count(runtime, Case) == 2


def test_a_malformed_key_is_refused_by_name_and_stores_nothing(client: TestClient, runtime: Runtime) -> None:
    for key in (
        "kurz",
        "0000000000000000000001"[1:],
        "x" * 129,
        "leer zeichen-und-mehr-als-22",
        "umlaut-äöü-0123456789abcdef",
    ):
        refused = client.post("/api/v1/reports", json=BODY, headers={b"Idempotency-Key": key.encode()})
        assert refused.status_code == 422, key
        assert refused.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
        assert key not in refused.text
    assert (count(runtime, Case), count(runtime, SubmissionToken)) == (0, 0)


def test_a_retry_after_a_lost_answer_gets_the_receipt_of_the_report_stored_after_all(
    client: TestClient, runtime: Runtime
) -> None:
    """The first request's report was committed, but its answer never reached the client (a lost
    connection, a 503): stored here as that request's filing would have stored it. The retry answers
    with its receipt and files nothing."""
    key = str(uuid.uuid4())
    data = ReportCreate.model_validate(BODY)
    claim = runtime.submissions.idempotent(key, data.model_dump_json().encode(), utcnow())[0]
    with runtime.sessions() as db:
        stored = runtime.intake.file_report(db, data, CaseDraft.new(), [], claim=claim)
        db.commit()

    retry = post(client, BODY, key)

    assert retry.status_code == 201
    assert retry.json()["receipt"] == stored.receipt
    assert count(runtime, Case) == 1


def test_after_a_quarter_of_an_hour_a_retry_is_409_and_files_nothing(
    client: TestClient, runtime: Runtime
) -> None:
    key = str(uuid.uuid4())
    first = post(client, BODY, key)
    assert first.status_code == 201
    claim = runtime.submissions.idempotent(key, content(BODY), utcnow())[0]
    with runtime.sessions() as db:
        shown = runtime.intake.answer_again(db, claim)
        assert shown is not None
        answer_again.keep(db, claim, shown, utcnow() - answer_again.SHOWN_AGAIN_FOR - timedelta(seconds=1))
        db.commit()

    late = post(client, BODY, key)

    assert late.status_code == 409
    assert "filed already" in late.json()["detail"]
    assert first.json()["receipt"] not in late.text
    assert count(runtime, Case) == 1


def test_a_hostile_client_with_the_victims_key_gets_a_report_of_their_own(
    client: TestClient, runtime: Runtime
) -> None:
    """The key leaked or was guessed (a client that counts 1, 2, 3): without the victim's report, word for
    word, the hostile client only files a report of their own and never sees the victim's receipt."""
    key = "client-000000000000001"  # 22 characters: accepted, though a counter
    victim = post(client, BODY, key)
    hostile = post(client, {**BODY, "description": "Irgendwas."}, key)
    assert hostile.status_code == 201
    assert hostile.json()["receipt"] != victim.json()["receipt"]
    assert victim.json()["receipt"] not in hostile.text


def test_the_thief_of_a_dump_with_every_secret_reads_no_kept_receipt_even_with_the_key(
    client: TestClient, runtime: Runtime
) -> None:
    """The operator's dump and secrets, and the client's key as well (it travelled in a header that a
    proxy may log): the kept answer needs the report's content too, so no case opens."""
    key = str(uuid.uuid4())
    assert post(client, BODY, key).status_code == 201
    dump = dump_database(runtime.engine)
    assert [row["answer"] is not None for row in dump["submission_token"]] == [True]
    loot = Loot(peppers=secrets_in(runtime.settings.data_dir))
    loot.add_text(key)

    assert cases_opened(dump, loot) == set()

    # The control: key and content together (what the client holds) open it.
    loot.passwords.add(key + "\x00" + content(BODY).decode())
    assert len(cases_opened(dump, loot)) == 1


def test_a_replay_spends_none_of_the_shared_matching_budget(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile client replaying a report with many identifiers must not drain the hourly look-ups that
    every reporter shares: only the filing reserves them, a replay (201 or 409) none."""
    body = {
        **BODY,
        "perpetrator_identifiers": [
            {"kind": "handle", "value": f"hetzer{n}", "platform": "x"} for n in range(5)
        ],
        "consent_matching": True,
    }
    reserved: list[int] = []
    real = runtime.matching.reserve

    def spy(count: int) -> Budget:
        reserved.append(count)
        return real(count)

    monkeypatch.setattr(runtime.matching, "reserve", spy)
    key = str(uuid.uuid4())
    for _ in range(4):
        assert post(client, body, key).status_code == 201
    assert reserved == [5]
    assert count(runtime, Case) == 1


def test_a_retry_across_a_session_key_rotation_finds_the_first_filing(
    client: TestClient, runtime: Runtime
) -> None:
    """The operator rotates the session key between the request and its retry: the retry's key and body,
    hashed under the previous key, still find the first filing."""
    key = str(uuid.uuid4())
    first = post(client, BODY, key)
    runtime.submissions = SubmissionTokens(bytes(range(32)), previous=(runtime.secrets.session_key,))

    again = post(client, BODY, key)

    assert again.status_code == 201
    assert again.json()["receipt"] == first.json()["receipt"]
    assert count(runtime, Case) == 1


def test_a_replay_is_counted_a_duplicate_not_an_accepted_report(client: TestClient, runtime: Runtime) -> None:
    def counted(outcome: str) -> float:
        return float(metrics.reports.labels("api", outcome)._value.get())

    key = str(uuid.uuid4())
    accepted, duplicate = counted("accepted"), counted("duplicate")
    post(client, BODY, key)
    post(client, BODY, key)
    assert (counted("accepted") - accepted, counted("duplicate") - duplicate) == (1, 1)


def test_two_requests_at_once_with_one_key_file_once_and_answer_alike(
    client: TestClient, runtime: Runtime
) -> None:
    """Through the endpoint, on the event loop's engine: both start together; one files, the other waits
    for it at the database (or finds it filed) and answers with its receipt."""
    key = str(uuid.uuid4())
    # The one client's portal: both requests run on the application's event loop, as two connections to
    # one server process would.
    answers: list[Any] = at_once(lambda: post(client, BODY, key))
    assert [getattr(answer, "status_code", answer) for answer in answers] == [201, 201]
    assert answers[0].json() == answers[1].json()
    assert count(runtime, Case) == 1
