"""A report filed on the event loop with no session (``service.reports.on_loop``) is the same report as one
filed in a session: the same rows in every table, opened by the same receipt; and whatever it cannot do
without the database (the organisations to read afresh, a key not met yet, an organisation changed since it
was read) is left to the session's way, with nothing written twice.

Adversaries: a removed member or a disabled organisation (a grant refused by its guard must not become a
case for them, nor a lost report), and the thief of a dump (what is stored is what the session's way stores:
ciphertext, with no more in clear)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.crypto import generate_keypair, open_sealed, unwrap_key
from service.identity.models import CaseKeyGrant, Organisation
from service.reports.opened import ctx
from service.runtime import Runtime
from tests.support.forms import report_body
from tests.support.intake_ways import cache_that_does_not_age, in_a_session, on_the_loop, sessions_used
from tests.support.retention import table_census

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

REPORT = report_body(
    description="Drohschreiben im Briefkasten.",
    municipality="Musterstadt",
    contact_email="buergermeisterin@example.org",
    notify_email="privat@example.org",
)
BAYERN = "beratung-by"


def added(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def file(client: TestClient) -> dict[str, Any]:
    filed = client.post("/api/v1/reports", json=REPORT)
    assert filed.status_code == 201, filed.text
    return dict(filed.json())


def test_a_report_on_the_loop_stores_the_same_rows_as_one_in_a_session(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_the_loop(client, runtime, monkeypatch)
    used = sessions_used(monkeypatch)
    start = table_census(runtime)
    on_loop = file(client)
    middle = table_census(runtime)
    assert used == [], "filed on the loop"
    in_a_session(monkeypatch)
    in_session = file(client)
    assert used == [1], "filed in a session"

    assert added(start, middle) == added(middle, table_census(runtime))
    assert added(start, middle)["case_file"] == 1
    assert on_loop["routed_to"] == in_session["routed_to"]
    assert on_loop["key_holders"] == in_session["key_holders"]
    assert on_loop["receipt"] != in_session["receipt"]
    # The reporter opens it with the receipt, and what she wrote is sealed under the case's key.
    with runtime.sessions() as db:
        opened = runtime.intake.open_case(db, on_loop["receipt"])
        assert opened.case.details_ciphertext
        assert b"Drohschreiben" not in opened.case.details_ciphertext
        assert b"example.org" not in (opened.case.contact_ciphertext or b"")
        assert b"example.org" not in (opened.case.notify_ciphertext or b"")


def test_the_first_report_of_a_process_reads_in_a_session_and_the_next_go_on_the_loop(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new process has read neither the organisations nor their keys: the composition on the loop would
    # have to read them, and declines; the session's way reads them for the next reports.
    cache_that_does_not_age(runtime, monkeypatch)
    used = sessions_used(monkeypatch)
    file(client)
    assert used == [1]
    file(client)
    file(client)
    assert used == [1]


def test_an_organisation_disabled_since_the_read_gets_no_grant_and_the_report_is_stored_once(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_the_loop(client, runtime, monkeypatch)
    first = file(client)
    assert any("Bayern" in name for name in first["routed_to"])
    with runtime.engine.begin() as connection:  # as another process: this one's cache does not hear of it
        connection.execute(update(Organisation).where(Organisation.slug == BAYERN).values(active=False))
    used = sessions_used(monkeypatch)
    before = table_census(runtime)

    again = file(client)

    # Refused by the grant's guard on the loop, then routed afresh in a session: one case, not two.
    assert used == [1]
    assert added(before, table_census(runtime))["case_file"] == 1
    assert not any("Bayern" in name for name in again["routed_to"])
    with runtime.sessions() as db:
        case_id = runtime.intake.open_case(db, again["receipt"]).case.id
        bayern = db.scalar(select(Organisation.id).where(Organisation.slug == BAYERN))
        holders = set(db.scalars(select(CaseKeyGrant.organisation_id).where(CaseKeyGrant.case_id == case_id)))
    assert holders
    assert bayern not in holders
    # The next report routes on that fresh read: on the loop again, still without Bayern.
    used.clear()
    assert not any("Bayern" in name for name in file(client)["routed_to"])
    assert used == []


def test_a_refused_report_on_the_loop_stores_nothing(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_the_loop(client, runtime, monkeypatch)
    before = table_census(runtime)
    refused = client.post("/api/v1/reports", json={**REPORT, "type_codes": ["Z99"]})
    assert refused.status_code == 422
    assert table_census(runtime) == before


def test_a_key_holder_opens_a_case_filed_on_the_loop(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bayern's key is one this test holds (a new epoch, as a rotation makes it), read before the report.
    private, public = generate_keypair()
    with runtime.engine.begin() as connection:
        connection.execute(
            update(Organisation)
            .where(Organisation.slug == BAYERN)
            .values(public_key=public.raw, current_epoch=Organisation.current_epoch + 1)
        )
    on_the_loop(client, runtime, monkeypatch)
    used = sessions_used(monkeypatch)
    filed = file(client)
    assert used == []
    with runtime.sessions() as db:
        case = runtime.intake.open_case(db, filed["receipt"]).case
        org = db.scalars(select(Organisation).where(Organisation.slug == BAYERN)).one()
        grant = db.scalars(
            select(CaseKeyGrant).where(
                CaseKeyGrant.case_id == case.id, CaseKeyGrant.organisation_id == org.id
            )
        ).one()
    assert grant.epoch == org.current_epoch
    data_key = unwrap_key(grant.wrapped_key, private, ctx("case_key", case.id, org.id))
    details = json.loads(open_sealed(data_key, case.details_ciphertext, ctx("case_details", case.id)))
    assert details["municipality"] == REPORT["municipality"]
