"""Every operation of /openapi.json, fuzzed by Schemathesis in-process against the ASGI app.

Each role sends valid (schema-conforming) and invalid (schema-violating) requests to every operation:
anonymous; the reporter, whose only key in the API is the receipt in the body (the world's real receipt
is put into generated bodies); and every staff role: counsellor and lead of the organisation holding the
world's case, coordinator, administrator, and a member who still has to replace the initial password.
Generated path parameters are half of the time replaced by the identifiers of the world's case and file,
so the handlers behind the 404 are reached too.

Checks: no 5xx; the status code, the content type and the body are those the document promises. A failure
because the document is incomplete is fixed in the service's declarations, not here.

One database is enough for this volume, so the world runs on SQLite only; the per-database behaviour of
hostile input is covered by the corpus tests (tests/fuzz/test_hostile_*.py), which run on both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.fuzz import STAFF_ROLES, World

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ROLES = ("anonymous", "reporter", *STAFF_ROLES)
# Generated examples per operation, role and mode. Operations without any input exhaust their (single)
# example at once, so the total is counted, not computed: see test_enough_requests_were_sent.
EXAMPLES = 25
MIN_REQUESTS = 5_000
SENT: Counter[str] = Counter()
ANSWERS: Counter[tuple[str, str, int]] = Counter()
# One answer each role must have had at least once: proof that its identity was used (and not, say, every
# request bouncing off as anonymous).
REACHED = {
    "anonymous": ("GET /api/v1/cases", 401),
    "reporter": ("POST /api/v1/reports/lookup", 200),
    "counsellor": ("GET /api/v1/cases/{case_id}", 200),
    "lead": ("GET /api/v1/cases/{case_id}/attachments/{attachment_id}", 200),
    "coordinator": ("GET /api/v1/dashboard/snapshots/{as_of}", 200),
    "admin": ("GET /api/v1/cases", 200),
    "pending": ("GET /api/v1/cases", 403),
}


@dataclass
class Identity:
    """How a role's requests differ from the anonymous: the staff session's cookie and CSRF header, or the
    reporter's receipt (put into every generated body that has a receipt field)."""

    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    receipt: str | None = None


def identity_of(world: World, role: str) -> Identity:
    if role == "anonymous":
        return Identity()
    if role == "reporter":
        return Identity(receipt=world.receipt)
    cookie, token = world.sign_in(world.staff[role])
    return Identity(cookies={"rh_staff": cookie}, headers={"X-CSRF-Token": token})


@pytest.fixture(scope="module")
def api(sqlite_world: World) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", sqlite_world.app)


def operations(api: Any) -> list[Any]:
    """Every operation; signing out last, so the role's session serves every other operation first."""
    found = [result.ok() for result in api.get_all_operations()]
    return sorted(
        found, key=lambda op: (op.method.upper() == "DELETE" and op.path == "/api/v1/session", op.label)
    )


def real_path_parameters(world: World, operation: Any) -> dict[str, Any]:
    known = {
        "case_id": world.case_id,
        "attachment_id": world.attachment_id,
        "seq": 1,
        "as_of": world.snapshot_month,
    }
    names = {parameter.name for parameter in operation.path_parameters}
    return {name: value for name, value in known.items() if name in names}


# Codes of the taxonomy for the fields that name them: generated strings almost never are codes, so
# without these nearly every generated report would stop at the taxonomy check (a 422) and the encryption,
# routing and storage behind it would never see generated text.
KNOWN_CODES: dict[str, Any] = {
    "land": "09",
    "district_ags": "09162",
    "type_codes": ["A3a"],
    "channel": "email",
    "urgency": "normal",
    "targets": ["self"],
}
OPTIONAL_CODES = (
    "office",
    "support_needs",
    "perpetrator_familiarity",
    "perpetrator_residence",
    "perpetrator_number",
)


def with_known_codes(body: dict[str, Any]) -> None:
    for name, value in KNOWN_CODES.items():
        if name in body:
            body[name] = value
    for name in OPTIONAL_CODES:
        body.pop(name, None)


def fuzz(world: World, operation: Any, mode: GenerationMode, identity: Identity, role: str) -> None:
    # Invalid requests need a body or a query string to break: every value of a plain string path
    # parameter (such as case_id) is valid, and an operation without input has no invalid request at all.
    if mode is GenerationMode.NEGATIVE and not (operation.body or operation.query):
        return
    strategies = [operation.as_strategy(generation_mode=mode)]
    real = real_path_parameters(world, operation)
    if real:
        strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=real))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies), known_codes=st.booleans())
    def run(case: Any, known_codes: bool) -> None:
        if isinstance(case.body, dict):
            if identity.receipt is not None and "receipt" in case.body:
                case.body["receipt"] = identity.receipt
            if known_codes:
                with_known_codes(case.body)
        SENT[role] += 1
        response = case.call_and_validate(checks=CHECKS, headers=identity.headers, cookies=identity.cookies)
        ANSWERS[(role, operation.label, response.status_code)] += 1

    run()


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_keeps_its_contract(role: str, sqlite_world: World, api: Any) -> None:
    world = sqlite_world
    identity = identity_of(world, role)
    for operation in operations(api):
        world.beat()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(world, operation, mode, identity, role)
    assert ANSWERS[(role, *REACHED[role])] > 0, "the role's identity never reached its handlers"
    assert SENT[role] >= MIN_REQUESTS // len(ROLES)


def test_enough_requests_were_sent() -> None:
    """Runs after the role tests (pytest keeps the file's order): the whole module sent at least 5,000."""
    assert set(SENT) == set(ROLES), "run the whole module: every role is part of the count"
    assert sum(SENT.values()) >= MIN_REQUESTS, SENT
