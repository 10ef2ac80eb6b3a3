"""Canary for case work: markers in messages (both ways), notes and attachments appear nowhere at rest."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.identity.models import MembershipRole
from service.runtime import Runtime
from tests.support.forms import csrf_token, report_form_tokens
from tests.support.stack import all_bytes_under, pg_dump
from tests.support.staff import MakeStaff, Staff

MARKERS = {
    "message": "QXMSGCANARY7341",
    "note": "QXNOTECANARY2210",
    "reply": "QXREPLYCANARY9035",
    "attachment": "QXFILECANARY5512",
    "filename": "QXNAMECANARY6620",
    "staff_file": "QXSTAFFFILECANARY4471",
    "staff_filename": "QXSTAFFNAMECANARY8802",
    # The proceedings of an incident (issue 18): every field sealed, the days and the outcome code included.
    "file_number": "QXAKTENZEICHENCANARY3306",
    "complaint_on": "2003-07-19",
    "application_on": "2004-02-29",
    "information_requested_on": "2005-03-31",
    "outcome": "dismissed_153a",
}


def test_no_casework_marker_at_rest_or_in_logs(
    client: TestClient,
    runtime: Runtime,
    make_staff: MakeStaff,
    code: Callable[[Staff], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    page = client.get("/melden").text
    filed = client.post(
        "/melden",
        data={
            **report_form_tokens(page),
            "land": "09",
            "type_codes": ["A1"],
            "description": "x",
            "channel": "email",
        },
        files=[
            ("attachments", (f"{MARKERS['filename']}.txt", MARKERS["attachment"].encode() * 50, "text/plain"))
        ],
    )
    assert filed.status_code == 201
    receipt = re.sub(r"<[^>]+>", "", filed.text)
    found = re.search(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}", receipt)
    assert found

    staff = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as counsellor:
        login = counsellor.post(
            "/api/v1/session", json={"email": staff.email, "password": staff.password, "totp": code(staff)}
        )
        counsellor.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        case_id = counsellor.get("/api/v1/cases").json()[0]["id"]
        assert (
            counsellor.post(
                f"/api/v1/cases/{case_id}/messages", json={"body": MARKERS["message"]}
            ).status_code
            == 201
        )
        assert (
            counsellor.post(f"/api/v1/cases/{case_id}/notes", json={"body": MARKERS["note"]}).status_code
            == 201
        )
        # A file sent to the reporter with a message, through the case page's form.
        page = counsellor.get(f"/intern/faelle/{case_id}").text
        sent = counsellor.post(
            f"/intern/faelle/{case_id}/nachricht",
            data={"csrf_token": csrf_token(page), "message": "Anbei"},
            files=[
                (
                    "message_files",
                    (f"{MARKERS['staff_filename']}.txt", MARKERS["staff_file"].encode() * 50, "text/plain"),
                )
            ],
            follow_redirects=False,
        )
        assert sent.status_code == 303
        recorded = counsellor.post(
            f"/intern/faelle/{case_id}/vorfaelle/1/verfahren",
            data={
                "csrf_token": csrf_token(page),
                **{
                    name: MARKERS[name]
                    for name in ("file_number", "complaint_on", "application_on", "information_requested_on")
                },
                "outcome": MARKERS["outcome"],
            },
            follow_redirects=False,
        )
        assert recorded.status_code == 303, recorded.text
        reply = client.post(
            "/api/v1/reports/messages", json={"receipt": found.group(0), "body": MARKERS["reply"]}
        )
        assert reply.status_code == 201
        case = counsellor.get(f"/api/v1/cases/{case_id}").json()
        attachment_id = case["attachments"][0]["id"]
        assert (
            MARKERS["attachment"].encode()
            in counsellor.get(f"/api/v1/cases/{case_id}/attachments/{attachment_id}").content
        )
    # The service itself shows them to those who may see them ...
    assert {m["body"] for m in case["messages"]} == {MARKERS["message"], "Anbei", MARKERS["reply"]}
    assert case["incidents"][0]["proceedings"] == {
        "complaint_on": MARKERS["complaint_on"],
        "application_on": MARKERS["application_on"],
        "file_number": MARKERS["file_number"],
        "information_requested": True,
        "information_requested_on": MARKERS["information_requested_on"],
        "outcome": MARKERS["outcome"],
    }
    looked_up = client.post("/api/v1/reports/lookup", json={"receipt": found.group(0)}).json()
    (staff_file,) = [f for m in looked_up["messages"] for f in m["attachments"]]
    assert staff_file["filename"] == f"{MARKERS['staff_filename']}.txt"

    # ... and nothing at rest or in the logs does.
    places = [(str(path), data) for path, data in all_bytes_under(runtime.settings.data_dir)]
    if not runtime.settings.is_sqlite:
        places.append(("pg_dump", pg_dump(runtime.settings.resolved_database_url)))
    places.append(("logs", "\n".join(record.getMessage() for record in caplog.records).encode()))
    for marker in MARKERS.values():
        for where, data in places:
            assert marker.encode() not in data, f"{marker} found in {where}"
