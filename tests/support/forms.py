"""What a test sends as a browser or API client would: the tokens of a form, and the fields of a report."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from fastapi.testclient import TestClient

from service.reports.schemas import FREE_TEXT_FIELDS
from service.runtime import Runtime

# The report's free-text and contact fields, each of which the canaries fill with a marker of its own: the
# product's own list (a new free-text field is covered without a change here), less the staff's messages.
REPORT_TEXT_FIELDS = tuple(sorted(FREE_TEXT_FIELDS - {"message"}))


_SUBMISSION_TOKEN = re.compile(r'name="submission_token" value="([^"]+)"')


_CSRF_TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def csrf_token(html: str) -> str:
    """The CSRF token of the (first) form on a page."""
    match = _CSRF_TOKEN.search(html)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def report_form_tokens(html: str) -> dict[str, str]:
    """What a browser sends back of a view of the report form: its CSRF and single-use submission token."""
    return {"csrf_token": csrf_token(html), "submission_token": submission_token(html)}


def submission_token(html: str) -> str:
    """The single-use submission token of the (first) reporter form on a page: each view has its own."""
    match = _SUBMISSION_TOKEN.search(html)
    assert match, "the page carries a submission token"
    return match.group(1)


# The report most tests file: Bavaria, an insult online, told by e-mail. A test names only the fields it
# needs otherwise (``report_body(type_codes=["A3a"], channel="letter")``); every call returns a new dict.
STANDARD_REPORT: Final[Mapping[str, Any]] = MappingProxyType(
    {"land": "09", "type_codes": ["A1"], "description": "Beleidigung im Netz.", "channel": "email"}
)


def report_body(**fields: Any) -> dict[str, Any]:
    """The standard report (``STANDARD_REPORT``) with ``fields`` set or replaced, as a JSON body or form."""
    body = {key: list(value) if isinstance(value, list) else value for key, value in STANDARD_REPORT.items()}
    return body | fields


# A threatening letter at the town hall, as the report form sends it (Bavaria, 09162).
LETTER_FORM: Final[Mapping[str, Any]] = MappingProxyType(
    report_body(
        district_ags="09162",
        type_codes=["A3a"],
        description="Drohbrief im Briefkasten des Rathauses.",
        channel="letter",
        urgency="normal",
        consent_counselling="1",
    )
)


def file_json(client: TestClient, runtime: Runtime, body: Mapping[str, Any]) -> tuple[str, str]:
    """File ``body`` through the JSON intake (it must be accepted): (receipt, case id)."""
    response = client.post("/api/v1/reports", json=dict(body))
    assert response.status_code == 201, response.text
    receipt = str(response.json()["receipt"])
    with runtime.sessions() as db:
        return receipt, runtime.intake.open_case(db, receipt).case.id
