"""Canary: a unique marker in every free-text and contact field must appear nowhere at rest or in logs.

Searched: every file in the data folder (SQLite database, its WAL and shared-memory files, the blob folder,
secrets), a pg_dump of the PostgreSQL database, and every captured log record.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from helpers import REPORT_TEXT_FIELDS, all_bytes_under, csrf_token, pg_dump, submission_token

from service.runtime import Runtime


def markers(prefix: str) -> dict[str, str]:
    values = {field: f"QX{prefix}{index:02d}CANARY" for index, field in enumerate(REPORT_TEXT_FIELDS)}
    values["contact_email"] = f"qx{prefix.lower()}mail@canary.example"
    values["notify_email"] = f"qx{prefix.lower()}notify@canary.example"
    return values


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
    ]
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
