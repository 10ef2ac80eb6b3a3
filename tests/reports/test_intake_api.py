"""The JSON intake: a report is encrypted, routed on the server and stored in one transaction."""

from __future__ import annotations

import copy
import dataclasses
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.app import create_app
from service.cases.models import Case, Incident, RoutingRecord
from service.crypto import (
    Context,
    PrivateKey,
    open_sealed,
    unwrap_key,
)
from service.db import utcnow
from service.extract.models import StatisticsExtract
from service.identity.models import CaseKeyGrant, Organisation
from service.identity.recovery import open_epochs_with_recovery, recovery_private_key
from service.outbox.models import OutboxMessage, WorkerHeartbeat
from service.runtime import Runtime
from tests.support.stack import free_port

RECEIPT_FORMAT = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}$")


def openapi_example(client: TestClient) -> dict[str, Any]:
    schema = client.get("/openapi.json").json()
    example: dict[str, Any] = schema["components"]["schemas"]["ReportCreate"]["examples"][0]
    return example


def count(runtime: Runtime, model: type[Any]) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def stored_rows(runtime: Runtime) -> dict[str, int]:
    return {
        model.__tablename__: count(runtime, model)
        for model in (Case, Incident, CaseKeyGrant, RoutingRecord, StatisticsExtract, OutboxMessage)
    }


def test_openapi_example_is_accepted_unchanged(client: TestClient, runtime: Runtime) -> None:
    """Given the example from /openapi.json, when posted as is, then 201 with a receipt and recipients."""
    example = openapi_example(client)
    assert "description" in example

    response = client.post("/api/v1/reports", json=example)

    assert response.status_code == 201, response.text
    body = response.json()
    assert RECEIPT_FORMAT.match(body["receipt"])
    assert body["routed_to"]
    assert all(isinstance(name, str) for name in body["routed_to"])
    assert count(runtime, Case) == 1


def test_one_transaction_stores_case_incident_grants_routing_extract_and_outbox(
    client: TestClient, runtime: Runtime
) -> None:
    example = openapi_example(client)
    response = client.post("/api/v1/reports", json=example)
    assert response.status_code == 201

    rows = stored_rows(runtime)
    assert rows["case_file"] == 1
    assert rows["incident"] == 1
    assert rows["routing_record"] == 1
    assert rows["statistics_extract"] == 1
    assert rows["case_key_grant"] >= 1
    assert rows["outbox_message"] >= 1
    with runtime.sessions() as session:
        case = session.scalars(select(Case)).one()
        record = session.scalars(select(RoutingRecord)).one()
        grants = session.scalars(select(CaseKeyGrant)).all()
        org_by_id = {org.id: org for org in session.scalars(select(Organisation))}
        outbox = session.scalars(select(OutboxMessage)).all()
        extract = session.scalars(select(StatisticsExtract)).one()
    assert case.land == "09"
    assert case.district_ags == "09162"
    assert record.decision["reasons"], "the decision keeps its reasons"
    granted = {org_by_id[g.organisation_id].slug for g in grants}
    decided = set(record.decision["targets"]) | {
        step[0] if isinstance(step, list) else step["org"] for step in record.decision["escalation"]
    }
    assert granted == decided
    active_names = {org_by_id[g.organisation_id].display_name for g in grants if g.active}
    assert active_names == set(response.json()["routed_to"])
    # Outbox rows carry identifiers and codes only.
    for message in outbox:
        assert set(message.payload) <= {"case_id", "organisation_id", "urgency"}
    # The extract has no way back to the case.
    assert extract.land == "09"
    assert case.id not in extract.reporter_pseudonym
    assert not hasattr(extract, "case_id")


def test_routed_organisation_can_open_the_report_and_no_other_can(
    client: TestClient, runtime: Runtime
) -> None:
    """Only the organisations in the decision hold the case key; their private key opens the payload."""
    example = openapi_example(client)
    assert client.post("/api/v1/reports", json=example).status_code == 201
    with runtime.sessions() as session:
        case = session.scalars(select(Case)).one()
        incident = session.scalars(select(Incident)).one()
        grant = session.scalars(select(CaseKeyGrant).where(CaseKeyGrant.active.is_(True))).first()
        assert grant is not None
        org = session.get(Organisation, grant.organisation_id)
        assert org is not None
    private = runtime_private_key(runtime, org.slug)
    data_key = unwrap_key(grant.wrapped_key, private, Context("case_key", case_id=case.id, record_id=org.id))
    payload = open_sealed(
        data_key, incident.payload, Context("incident", case_id=case.id, record_id=incident.id)
    )
    assert example["description"].encode() in payload


def runtime_private_key(runtime: Runtime, slug: str) -> PrivateKey:
    """An organisation's current private key, recovered with k of its custodians' shares."""
    shares = runtime.recovery_shares[slug][:2]  # type: ignore[attr-defined]
    with runtime.sessions() as session:
        org = session.scalars(select(Organisation).where(Organisation.slug == slug)).one()
        keys = open_epochs_with_recovery(session, org, recovery_private_key(org, shares))
        return keys[org.current_epoch]


def test_invalid_fields_are_named_never_echoed_and_nothing_is_stored(
    client: TestClient, runtime: Runtime
) -> None:
    marker = "ZZECHOCANARY4711"
    report = copy.deepcopy(openapi_example(client))
    report["land"] = "99"
    report["description"] = marker
    report["municipality"] = marker
    report["contact_email"] = f"{marker}-not-an-address"

    response = client.post("/api/v1/reports", json=report)

    assert response.status_code == 422
    assert marker not in response.text
    fields = {tuple(error["loc"])[-1] for error in response.json()["detail"]}
    assert {"land", "contact_email"} <= fields
    assert all(value == 0 for value in stored_rows(runtime).values())


def test_unknown_codes_are_refused(client: TestClient, runtime: Runtime) -> None:
    report = copy.deepcopy(openapi_example(client))
    report["type_codes"] = ["A3a", "Z99"]
    report["channel"] = "carrier_pigeon"

    response = client.post("/api/v1/reports", json=report)

    assert response.status_code == 422
    locs = [error["loc"] for error in response.json()["detail"]]
    assert ["type_codes", 1] in locs
    assert ["channel"] in locs
    assert count(runtime, Case) == 0


def test_district_must_lie_in_the_land(client: TestClient, runtime: Runtime) -> None:
    report = copy.deepcopy(openapi_example(client))
    report["land"] = "14"  # Sachsen, but district 09162 is München
    response = client.post("/api/v1/reports", json=report)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "district_land"
    assert count(runtime, Case) == 0


def test_a_forged_recipient_field_is_refused(client: TestClient, runtime: Runtime) -> None:
    """A client can never choose or add recipients: such fields are refused, not silently ignored."""
    for field in ("routed_to", "recipients", "organisations", "targets_override"):
        report = copy.deepcopy(openapi_example(client))
        report[field] = ["polizei-kontakt", "online-hass"]
        response = client.post("/api/v1/reports", json=report)
        assert response.status_code == 422, field
    assert count(runtime, Case) == 0


def test_routing_ignores_anything_but_the_facts(client: TestClient, runtime: Runtime) -> None:
    """Without police consent the police liaison never receives the case, whatever the client sends."""
    report = copy.deepcopy(openapi_example(client))
    report["consent_police"] = False
    report["type_codes"] = ["D5"]
    response = client.post("/api/v1/reports", json=report)
    assert response.status_code == 201
    with runtime.sessions() as session:
        slugs = set(
            session.scalars(
                select(Organisation.slug).join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
            )
        )
    assert "polizei-kontakt" not in slugs


def test_oversized_body_is_413_and_stores_nothing(client: TestClient, runtime: Runtime) -> None:
    report = copy.deepcopy(openapi_example(client))
    report["description"] = "x" * (runtime.settings.max_json_body_bytes + 10)
    response = client.post("/api/v1/reports", json=report)
    assert response.status_code == 413
    assert count(runtime, Case) == 0


def test_too_long_description_is_422(client: TestClient, runtime: Runtime) -> None:
    report = copy.deepcopy(openapi_example(client))
    report["description"] = "x" * 20_001
    response = client.post("/api/v1/reports", json=report)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "description"


def test_invalid_json_is_422_without_echo(client: TestClient) -> None:
    response = client.post(
        "/api/v1/reports",
        content=b'{"description": "ZZJSONCANARY", ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "ZZJSONCANARY" not in response.text


def test_control_characters_are_refused(client: TestClient, runtime: Runtime) -> None:
    report = copy.deepcopy(openapi_example(client))
    report["description"] = "abc\x00def"
    assert client.post("/api/v1/reports", json=report).status_code == 422
    report["description"] = "abc\x1b[31mdef"
    assert client.post("/api/v1/reports", json=report).status_code == 422
    assert count(runtime, Case) == 0
    # Bidi controls come with text pasted from a messenger: accepted (tests/reports/test_bidi.py).
    report["description"] = "abc\u202edef"
    assert client.post("/api/v1/reports", json=report).status_code == 201


def test_no_organisation_with_a_key_means_503_and_nothing_stored(runtime_without_orgs: Runtime) -> None:
    from service.app import create_app

    with TestClient(create_app(runtime=runtime_without_orgs), base_url="http://127.0.0.1") as client:
        response = client.post("/api/v1/reports", json=openapi_example(client))
    assert response.status_code == 503
    assert "110" in response.json()["detail"]
    rows = stored_rows(runtime_without_orgs)
    assert rows.pop("outbox_message") == 1, "the refusal raises an alert"
    assert all(value == 0 for value in rows.values())
    with runtime_without_orgs.sessions() as session:
        alert = session.scalars(select(OutboxMessage)).one()
    assert alert.topic == "alerts.intake_refused"
    assert alert.payload == {"land": "09", "reason": "no_recipient"}


def test_reporter_reads_the_case_with_the_receipt_in_any_spelling(client: TestClient) -> None:
    example = openapi_example(client)
    receipt = client.post("/api/v1/reports", json=example).json()["receipt"]
    sloppy = receipt.lower().replace("-", " ").replace("0", "o").replace("1", "l")

    response = client.post("/api/v1/reports/lookup", json={"receipt": sloppy})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "new"
    assert body["organisations"]
    assert body["incidents"][0]["description"] == example["description"]


def test_wrong_receipts_all_get_the_same_404(client: TestClient) -> None:
    client.post("/api/v1/reports", json=openapi_example(client))
    answers = {
        client.post("/api/v1/reports/lookup", json={"receipt": receipt}).text
        for receipt in ("ABCD-EFGH-JKMN-PQRS-TVWX", "not a code", "0000-0000-0000-0000-000U")
    }
    statuses = {
        client.post("/api/v1/reports/lookup", json={"receipt": "ABCD-EFGH-JKMN-PQRS-TVWX"}).status_code,
    }
    assert statuses == {404}
    assert len(answers) == 1


def test_reporter_adds_a_further_incident(client: TestClient, runtime: Runtime) -> None:
    example = openapi_example(client)
    receipt = client.post("/api/v1/reports", json=example).json()["receipt"]
    further = {
        "receipt": receipt,
        "type_codes": ["A11"],
        "description": "Heute standen wieder zwei Personen vor meinem Haus.",
        "channel": "in_person.home",
    }

    response = client.post("/api/v1/reports/incidents", json=further)

    assert response.status_code == 201, response.text
    assert response.json() == {"seq": 2}
    view = client.post("/api/v1/reports/lookup", json={"receipt": receipt}).json()
    assert [item["seq"] for item in view["incidents"]] == [1, 2]
    assert view["incidents"][1]["description"] == further["description"]
    assert count(runtime, StatisticsExtract) == 2


def test_adding_with_a_wrong_receipt_is_404_and_stores_nothing(client: TestClient, runtime: Runtime) -> None:
    client.post("/api/v1/reports", json=openapi_example(client))
    response = client.post(
        "/api/v1/reports/incidents",
        json={
            "receipt": "ABCD-EFGH-JKMN-PQRS-TVWX",
            "type_codes": ["A1"],
            "description": "x",
            "channel": "email",
        },
    )
    assert response.status_code == 404
    assert count(runtime, Incident) == 1


def test_security_headers_on_every_kind_of_response(client: TestClient) -> None:
    for response in (
        client.get("/"),
        client.get("/melden"),
        client.get("/healthz"),
        client.get("/does-not-exist"),
        client.post("/api/v1/reports", json={}),
        client.get("/static/app.css"),
    ):
        headers = response.headers
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert "geolocation=()" in headers["permissions-policy"]


def test_healthz_reports_database_broker_and_worker(client: TestClient, runtime: Runtime) -> None:
    """Given no worker has ever beaten, /healthz is 503 naming the worker; a fresh heartbeat makes it 200;
    one older than three beats makes it 503 again."""
    silent = client.get("/healthz")
    assert silent.status_code == 503
    assert silent.json()["database"]["ok"] is True
    assert silent.json()["broker"]["ok"] is True
    assert silent.json()["worker"] == {"ok": False, "error": "no heartbeat yet"}

    with runtime.sessions() as db:
        db.add(WorkerHeartbeat(name="worker", beat_at=utcnow()))
        db.commit()
    healthy = client.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.json()["status"] == "ok"

    with runtime.sessions() as db:
        beat = db.get(WorkerHeartbeat, "worker")
        assert beat is not None
        beat.beat_at = utcnow() - timedelta(minutes=5)
        db.commit()
    stale = client.get("/healthz")
    assert stale.status_code == 503
    assert stale.json()["worker"]["ok"] is False


def test_healthz_is_503_when_the_broker_is_down(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_app(runtime=dataclasses.replace(runtime, settings=settings))
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False
    assert response.json()["database"]["ok"] is True


def test_a_decision_whose_every_key_changed_meanwhile_is_refused_with_the_alert(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The organisations were read, then every chosen one's key changed before its key was read: nobody can
    # hold the case key. Refused like a report with no recipient, with the same alert, nothing else stored.
    from service.app import create_app

    monkeypatch.setattr(runtime.intake._keys, "of", lambda _session, _receivers: {})
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
        response = client.post("/api/v1/reports", json=openapi_example(client))
    assert response.status_code == 503
    rows = stored_rows(runtime)
    assert rows.pop("outbox_message") == 1, "the refusal raises an alert"
    assert all(value == 0 for value in rows.values())
    with runtime.sessions() as session:
        alert = session.scalars(select(OutboxMessage)).one()
    assert alert.payload == {"land": "09", "reason": "no_recipient"}
