"""Canary: a unique marker in every free-text and contact field must appear nowhere at rest or in logs.

Searched: every file in the data folder (SQLite database, its WAL and shared-memory files, the blob folder,
secrets), a pg_dump of the PostgreSQL database, and every captured log record.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.matching.service import cases_in_clusters
from service.runtime import Runtime
from tests.support.forms import REPORT_TEXT_FIELDS, csrf_token, submission_token
from tests.support.stack import all_bytes_under, pg_dump


def markers(prefix: str) -> dict[str, str]:
    values = {field: f"QX{prefix}{index:02d}CANARY" for index, field in enumerate(REPORT_TEXT_FIELDS)}
    values["contact_email"] = f"qx{prefix.lower()}mail@canary.example"
    values["notify_email"] = f"qx{prefix.lower()}notify@canary.example"
    return values


# Perpetrator identifiers for the matching (docs/matching.md), as typed; sealed in the case and stored as
# keyed tokens only. Each marker is a part of the value that survives normalisation too (the E.164 digits,
# the plate without separators, the gmail local part without dots and tag), so neither form is at rest.
IDENTIFIERS = [
    {"kind": "name", "value": "QXNAMECANARY Person"},
    {"kind": "handle", "value": "@QXHANDLECANARY", "platform": "instagram"},
    {"kind": "phone", "value": "0171 7315842"},
    {"kind": "email", "value": "QX.Mail.Canary+tag@gmail.com"},
    {"kind": "plate", "value": "QX-CY 4711"},
]
IDENTIFIER_MARKERS = [
    "QXNAMECANARY",
    "QXHANDLECANARY",
    "7315842",
    "qxmailcanary",
    "QX.Mail.Canary",
    "QXCY4711",
    "QX-CY 4711",
]


def test_no_marker_at_rest_or_in_logs(
    client: TestClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    api_markers = markers("API")
    report = {
        "land": "09",
        "district_ags": "09162",
        "type_codes": ["X1", "A3a"],
        "channel": "social_media.public_post",
        "occurred_on": "2026-10-01",
        **api_markers,
        "perpetrator_identifiers": IDENTIFIERS,
        "consent_matching": True,
    }
    created = client.post("/api/v1/reports", json=report)
    assert created.status_code == 201, created.text
    receipt = created.json()["receipt"]

    follow_markers = markers("FUP")
    further = {
        "receipt": receipt,
        "type_codes": ["A1"],
        "channel": "email",
        **{k: v for k, v in follow_markers.items() if k in ("description", "place", "perpetrator_details")},
    }
    assert client.post("/api/v1/reports/incidents", json=further).status_code == 201

    form_markers = markers("WEB")
    page = client.get("/melden")
    fields = {
        "csrf_token": csrf_token(page.text),
        "submission_token": submission_token(page.text),
        "land": "14",
        "type_codes": ["A1"],
        "channel": "email",
        **form_markers,
        # The same identifiers on the form: a match fires (a notice, an audit event), still nothing in clear.
        "match_name": "QXNAMECANARY Person",
        "match_handle": "qxhandlecanary",
        "match_platform": "instagram",
        "match_phone": "+49 171 7315842",
        "match_email": "qxmailcanary@googlemail.com",
        "match_plate": "qx cy 4711",
        "consent_matching": "1",
    }
    files = [
        (
            "attachments",
            (
                f"{form_markers['description']}-name.txt",
                f"evidence {form_markers['place']}".encode(),
                "text/plain",
            ),
        )
    ]
    submitted = client.post("/melden", data=fields, files=files)
    assert submitted.status_code == 201, submitted.text

    everything = [
        *api_markers.values(),
        *[follow_markers[k] for k in ("description", "place", "perpetrator_details")],
        *form_markers.values(),
        *IDENTIFIER_MARKERS,
    ]
    # The two reports matched: the tokens are there, and equal, yet name nobody in clear.
    with runtime.sessions() as db:
        assert cases_in_clusters(db) == 2
    places: list[tuple[str, bytes]] = [
        (str(path), data) for path, data in all_bytes_under(runtime.settings.data_dir)
    ]
    assert any("blobs" in path for path, _ in places), "the blob folder is searched"
    if runtime.settings.is_sqlite:
        assert any(path.endswith(".db") for path, _ in places)
        assert any(path.endswith("-wal") for path, _ in places), "the WAL is searched too"
    else:
        places.append(("pg_dump", pg_dump(runtime.settings.resolved_database_url)))
    places.append(("logs", "\n".join(record.getMessage() for record in caplog.records).encode()))
    for marker in everything:
        for where, data in places:
            assert marker.encode() not in data, f"{marker} found in {where}"
            assert marker.lower().encode() not in data.lower(), f"{marker} found in {where}"
