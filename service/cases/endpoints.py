"""JSON API of counsellor case work (a contract that tools use). A case the subject may not see is a 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from service.auth.deps import StaffDep, StaffWriteDep
from service.cases.case_read import CaseRead
from service.cases.proceedings import Proceedings
from service.cases.repository import CaseFilters
from service.cases.schemas import (
    CaseSummary,
    CaseUpdate,
    Created,
    EventLinkCreate,
    MergeProposalCreate,
    MessageCreate,
    Reclassification,
    ReferralCreate,
)
from service.db import utcnow
from service.deps import DbSession, RuntimeDep
from service.errors import error_responses
from service.evidence import attachments as files
from service.runtime import Runtime
from service.web import OnceKey, StrictRoute, download

router = APIRouter(prefix="/api/v1/cases", tags=["cases"], route_class=StrictRoute)

# Every route needs a staff session (401) whose initial password is changed (403); a case the subject may
# not see is a 404. Routes that change state also check the X-CSRF-Token header (403) and take a JSON body.
# Each route is one unit of work (``DbSession``): committed when the function returns, before the answer is
# sent, rolled back when it raises (a refused change stores nothing).
_NOT_FOUND = "No such case for this subject"
_READ_ERRORS = error_responses(401, 403, 422, described={404: _NOT_FOUND})
_WRITE_ERRORS = error_responses(401, 403, 413, 422, described={404: _NOT_FOUND})
# A message or a note: stored once per Idempotency-Key and text (``OnceKey``).
_ONCE_ERRORS = error_responses(
    401,
    403,
    413,
    422,
    described={
        404: _NOT_FOUND,
        409: "Stored before with this Idempotency-Key and text; nothing stored again",
    },
)


# At most this many cases per answer, the oldest acknowledgement deadlines first; a cut list says so in the
# header ``X-Rueckhalt-Truncated: true`` (a client must never take a cut list for the whole).
API_CASES_LIMIT = 200
TRUNCATED_HEADER = "X-Rueckhalt-Truncated"


@router.get(
    "",
    response_model=list[CaseSummary],
    responses={
        200: {
            "description": f"At most {API_CASES_LIMIT} cases, the oldest acknowledgement deadlines first",
            "headers": {
                TRUNCATED_HEADER: {
                    "description": "true when more cases match than the answer holds (narrow the filters)",
                    "schema": {"type": "string", "enum": ["true", "false"]},
                }
            },
        },
        **error_responses(401, 403, 422),
    },
    summary="The cases of the subject's organisations",
)
def list_cases(
    subject: StaffDep,
    runtime: RuntimeDep,
    db: DbSession,
    response: Response,
    status_filter: Annotated[str | None, Query(alias="status", max_length=32)] = None,
    urgency: Annotated[str | None, Query(max_length=16)] = None,
    land: Annotated[str | None, Query(pattern=r"^(0[1-9]|1[0-6])$")] = None,
    type_code: Annotated[str | None, Query(alias="type", max_length=16)] = None,
    assignee: Annotated[str | None, Query(max_length=36)] = None,
) -> list[CaseSummary]:
    filters = CaseFilters(
        status=status_filter,
        urgency=urgency,
        land=land,
        type_code=type_code,
        assignee_id=assignee,
        # One more than the answer holds: whether the list was cut is then known, not guessed.
        limit=API_CASES_LIMIT + 1,
    )
    rows = runtime.cases.inbox(db, subject, filters)
    response.headers[TRUNCATED_HEADER] = "true" if len(rows) > API_CASES_LIMIT else "false"
    return [CaseSummary.model_validate(row, from_attributes=True) for row in rows[:API_CASES_LIMIT]]


@router.get(
    "/{case_id}", response_model=CaseRead, responses=_READ_ERRORS, summary="The decrypted case (audited)"
)
def get_case(case_id: str, subject: StaffDep, runtime: RuntimeDep, db: DbSession) -> CaseRead:
    return CaseRead.model_validate(runtime.cases.detail(db, subject, case_id).as_json())


@router.patch(
    "/{case_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        401, 403, 413, described={404: _NOT_FOUND, 422: "Invalid change; nothing stored"}
    ),
    summary="Acknowledge, assign, change status or labels",
)
def update_case(
    case_id: str, change: CaseUpdate, subject: StaffWriteDep, runtime: RuntimeDep, db: DbSession
) -> Response:
    runtime.cases.update(db, subject, case_id, change)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{case_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=Created,
    responses=_ONCE_ERRORS,
    summary="Write to the reporter (encrypted with the case key)",
)
def post_message(
    case_id: str,
    body: MessageCreate,
    subject: StaffWriteDep,
    runtime: RuntimeDep,
    db: DbSession,
    idempotency_key: OnceKey = None,
) -> Created:
    message_id = runtime.cases.post_message(db, subject, case_id, body.body)
    _stored_once(runtime, db, idempotency_key, f"case-message:{case_id}", body.body)
    return Created(id=message_id)


@router.post(
    "/{case_id}/notes",
    status_code=status.HTTP_201_CREATED,
    response_model=Created,
    responses=_ONCE_ERRORS,
    summary="An internal note (encrypted; the reporter never sees it)",
)
def add_note(
    case_id: str,
    body: MessageCreate,
    subject: StaffWriteDep,
    runtime: RuntimeDep,
    db: DbSession,
    idempotency_key: OnceKey = None,
) -> Created:
    note_id = runtime.cases.add_note(db, subject, case_id, body.body)
    _stored_once(runtime, db, idempotency_key, f"case-note:{case_id}", body.body)
    return Created(id=note_id)


def _stored_once(runtime: Runtime, db: Session, key: str | None, scope: str, text: str) -> None:
    """After the write (a case the subject may not see was a 404 first): its Idempotency-Key claimed, or
    AlreadySent (409) and the write rolled back with the unit of work."""
    runtime.intake.claim_once(db, runtime.submissions.once(key, scope, text, utcnow()))


@router.get(
    "/{case_id}/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={200: files.DOWNLOAD_RESPONSE, **_READ_ERRORS},
    summary="Download an attachment, decrypted while it streams (audited)",
)
def download_attachment(
    case_id: str, attachment_id: str, subject: StaffDep, runtime: RuntimeDep, db: DbSession
) -> StreamingResponse:
    found = runtime.cases.open_attachment(db, subject, case_id, attachment_id, runtime.blobs)
    return download(found.filename, found.content_type, found.size_bytes, found.chunks())


@router.post(
    "/{case_id}/incidents/{seq}/classification",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        401, 403, 413, described={404: _NOT_FOUND, 422: "Unknown codes; nothing changed"}
    ),
    summary="Correct an incident's type codes (the statistics row follows; audited)",
)
def reclassify(
    case_id: str, seq: int, body: Reclassification, subject: StaffWriteDep, runtime: RuntimeDep, db: DbSession
) -> Response:
    runtime.cases.reclassify(db, subject, case_id, seq, body.type_codes)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{case_id}/referrals",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        401,
        403,
        413,
        described={404: _NOT_FOUND, 422: "Refused (no such receiver, no consent); nothing changed"},
    ),
    summary="Refer the case to another organisation, or transfer it (ends the own organisation's access)",
)
def refer(
    case_id: str, body: ReferralCreate, subject: StaffWriteDep, runtime: RuntimeDep, db: DbSession
) -> Response:
    runtime.cases.refer(
        db, subject, case_id, body.organisation, transfer=body.transfer, consent=body.reporter_consent
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{case_id}/incidents/{seq}/proceedings",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        401, 403, 413, described={404: _NOT_FOUND, 422: "Invalid dates or outcome; nothing changed"}
    ),
    summary="Record an incident's proceedings (sealed; a Strafantrag recorded ends its reminders; audited)",
)
def record_proceedings(
    case_id: str, seq: int, body: Proceedings, subject: StaffWriteDep, runtime: RuntimeDep, db: DbSession
) -> Response:
    runtime.cases.record_proceedings(db, subject, case_id, seq, body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{case_id}/incidents/{seq}/event",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 413, 422, described={404: _NOT_FOUND}),
    summary="Declare the incident and one of another case the subject holds the same event (audited)",
)
def link_event(
    case_id: str, seq: int, body: EventLinkCreate, subject: StaffWriteDep, runtime: RuntimeDep, db: DbSession
) -> Response:
    """Both holders see the link, never the other case's content; the statistics count the event once. A
    case the subject does not hold, or no such incident, is a 404; linking what is linked changes nothing."""
    runtime.case_links.link_event(db, subject, case_id, seq, body.other_case, body.other_seq)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{case_id}/incidents/{seq}/event",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, described={404: _NOT_FOUND}),
    summary="Take the incident out of its event (audited; nothing to take out changes nothing)",
)
def unlink_event(
    case_id: str, seq: int, subject: StaffWriteDep, runtime: RuntimeDep, db: DbSession
) -> Response:
    runtime.case_links.unlink_event(db, subject, case_id, seq)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{case_id}/merge-proposal",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        401, 403, 413, described={404: _NOT_FOUND, 422: "The other case is newer, or not held alike"}
    ),
    summary="Propose merging this case into an earlier one of the same reporter (the reporter confirms)",
)
def propose_merge(
    case_id: str, body: MergeProposalCreate, subject: StaffWriteDep, runtime: RuntimeDep, db: DbSession
) -> Response:
    """Nothing moves until the reporter confirms on /fall with this case's receipt (after a lost receipt the
    reporter filed again). Audited."""
    runtime.case_links.propose_merge(db, subject, case_id, body.older_case)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{case_id}/merge-proposal",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, described={404: _NOT_FOUND}),
    summary="Withdraw a pending merge proposal (audited; none pending changes nothing)",
)
def withdraw_merge(case_id: str, subject: StaffWriteDep, runtime: RuntimeDep, db: DbSession) -> Response:
    runtime.case_links.withdraw_merge(db, subject, case_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
