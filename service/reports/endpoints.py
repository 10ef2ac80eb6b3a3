"""JSON API of the intake and the reporter's follow-up (a contract that tools use)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.cases import conversation
from service.cases.proceedings import Proceedings
from service.cases.schemas import Created, ReporterMessageCreate
from service.db import utcnow
from service.deps import DbSession, RuntimeDep, enforce, enforce_async, in_transaction
from service.errors import AlreadyFiled, AlreadySubmitted, error_responses
from service.evidence import attachments as files
from service.matching.answer_time import answer_at_a_fixed_time
from service.observability import metrics
from service.reports.filing import CaseDraft, Filed
from service.reports.on_loop import LoopStatements, file_on_loop
from service.reports.schemas import (
    CaseForReporter,
    IdentifiersAdd,
    IdentifiersSaved,
    IncidentAdded,
    IncidentCreate,
    IncidentFields,
    KeyHolderRead,
    ReceiptIdentifiers,
    ReceiptLogin,
    ReceiptNotify,
    ReceiptPerpetratorKnown,
    ReceiptProceedings,
    ReportCreate,
    ReportCreated,
)
from service.reports.submissions import SubmissionClaim
from service.runtime import Runtime, intake_limit, receipt_limit
from service.web import IDEMPOTENCY_KEY, OnceKey, StrictRoute, download

router = APIRouter(prefix="/api/v1", tags=["reports"], route_class=StrictRoute)

# Every call takes a JSON body (413 above the size limit, 422 for what does not fit) and counts against
# the client's limit (429); the reporter's calls open the case with the receipt (one 404 for every miss).
# Each of those is one transaction (``DbSession``): committed when it returns, before the answer starts.
_INTAKE_ERRORS = error_responses(
    413,
    422,
    429,
    described={
        409: "Filed before with this Idempotency-Key and content, longer ago than its answer is kept",
        503: "No organisation can receive the report now, or the database is out of reach; nothing stored",
    },
)
_RECEIPT_ERRORS = error_responses(413, 422, 429, described={404: "No case for this receipt"})
_RECEIPT_ONCE_ERRORS = error_responses(
    413,
    422,
    429,
    described={
        404: "No case for this receipt",
        409: "Sent before with this Idempotency-Key and text; not sent again",
    },
)


@router.post(
    "/reports",
    status_code=status.HTTP_201_CREATED,
    response_model=ReportCreated,
    responses=_INTAKE_ERRORS,
    summary="File a report",
)
async def create_report(
    data: ReportCreate,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY,
            description=(
                "Optional: a random string of your own (a UUID, say) for this report. Sending the same "
                "report again with the same key (after a lost answer or a 503) files nothing a second time "
                "and, within a quarter of an hour, answers with the first receipt (Idempotent-Replayed: "
                "true); later with 409, for a day or two (then the same key and report file anew). The "
                "same key with other content is another report."
            ),
        ),
    ] = None,
) -> ReportCreated:
    """Encrypts, routes on the server and stores the report; answers only after the commit."""
    # A report with identifiers answers at a fixed time, whatever their look-up found (answer_time.py).
    async with answer_at_a_fixed_time(padded=bool(data.consent_matching and data.perpetrator_identifiers)):
        return await _create_report(data, request, response, runtime, idempotency_key)


async def _create_report(
    data: ReportCreate, request: Request, response: Response, runtime: Runtime, idempotency_key: str | None
) -> ReportCreated:
    # Redis on the event loop; the database's count (Redis away) in the thread pool, off the event loop.
    await enforce_async(runtime, request, intake_limit(runtime.settings))
    claims = runtime.submissions.idempotent(idempotency_key, data.model_dump_json().encode(), utcnow())
    if claims:
        # A retry of a report filed before answers from what was kept, before anything (the matching
        # budget among it) is spent on it again.
        before = await in_transaction(request, lambda db: runtime.intake.claimed(db, claims))
        if before is not None:
            return _created(await _replayed(request, response, runtime, before))
    # Perpetrator identifiers (with consent): their look-ups are counted first, off the event loop, and only
    # for a report the intake accepts (a refused one spends none of the budget).
    budget = None
    if data.consent_matching and data.perpetrator_identifiers:
        runtime.intake.refuse_invalid(data)
        budget = await run_in_threadpool(runtime.matching.reserve, len(data.perpetrator_identifiers))
    claim = claims[0] if claims else None
    draft = CaseDraft.new()
    statements: LoopStatements | None = request.app.state.loop_statements
    # The path that has to keep up with a flood runs on the event loop where it can: most reports as one
    # statement with no session (``on_loop``), the others in a unit of work (``in_transaction``).
    filed = None
    if statements is not None and claim is None:
        filed = await file_on_loop(runtime.intake, statements, data, draft)
    try:
        if filed is None:
            filed = await in_transaction(
                request,
                lambda db: runtime.intake.file_report(
                    db, data, draft, [], claim=claim, matching_budget=budget
                ),
                on_event_loop=True,
            )
    except AlreadySubmitted:
        # The same key and body in a request at the same instant, which filed first.
        if claim is None:
            raise
        filed = await _replayed(request, response, runtime, claim)
    return _created(filed)


def _created(filed: Filed) -> ReportCreated:
    return ReportCreated(
        receipt=filed.receipt,
        routed_to=filed.routed_to,
        key_holders=[
            KeyHolderRead.model_validate(holder, from_attributes=True) for holder in filed.key_holders
        ],
        ack_deadline_minutes=filed.ack_deadline_minutes,
    )


async def _replayed(
    request: Request, response: Response, runtime: RuntimeDep, claim: SubmissionClaim
) -> Filed:
    """The first filing's answer for a retry with the same Idempotency-Key and body, counted as a duplicate;
    AlreadyFiled (409) once it may no longer be shown."""
    filed = await in_transaction(request, lambda db: runtime.intake.answer_again(db, claim))
    if filed is None:
        raise AlreadyFiled()
    metrics.count_as_duplicate(request.scope)
    response.headers["Idempotent-Replayed"] = "true"
    return filed


@router.post(
    "/reports/lookup",
    response_model=CaseForReporter,
    responses=_RECEIPT_ERRORS,
    summary="Read your own case file with the receipt",
)
def lookup_case(body: ReceiptLogin, request: Request, runtime: RuntimeDep, db: DbSession) -> CaseForReporter:
    enforce(runtime, request, receipt_limit(runtime.settings))
    # Read only, but a transaction all the same: opening may move the case to the current pepper.
    opened = runtime.intake.open_case(db, body.receipt)
    return CaseForReporter.model_validate(runtime.intake.reporter_view(db, opened), from_attributes=True)


@router.post(
    "/reports/incidents",
    status_code=status.HTTP_201_CREATED,
    response_model=IncidentAdded,
    responses=_RECEIPT_ERRORS,
    summary="Add a further incident to your case file",
)
def add_incident(body: IncidentCreate, request: Request, runtime: RuntimeDep, db: DbSession) -> IncidentAdded:
    enforce(runtime, request, receipt_limit(runtime.settings))
    fields = IncidentFields.model_validate(body.model_dump(exclude={"receipt"}))
    opened = runtime.intake.open_case(db, body.receipt)
    # Committed by the request's unit of work; the holders are told after it (service.db.after_commit).
    return IncidentAdded(seq=runtime.intake.add_incident(db, opened, fields, []))


@router.post(
    "/reports/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=Created,
    responses=_RECEIPT_ONCE_ERRORS,
    summary="Answer the counselling organisation",
)
def reporter_message(
    body: ReporterMessageCreate,
    request: Request,
    runtime: RuntimeDep,
    db: DbSession,
    idempotency_key: OnceKey = None,
) -> Created:
    enforce(runtime, request, receipt_limit(runtime.settings))
    opened = runtime.intake.open_case(db, body.receipt)
    message_id = conversation.reporter_reply(db, opened.case, opened.data_key, body.body)
    scope = f"reporter-message:{opened.case.id}"
    runtime.intake.claim_once(db, runtime.submissions.once(idempotency_key, scope, body.body, utcnow()))
    return Created(id=message_id)


@router.post(
    "/reports/notify",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_RECEIPT_ERRORS,
    summary="Set or remove the address told (content-free) of new messages",
)
def set_notify(body: ReceiptNotify, request: Request, runtime: RuntimeDep, db: DbSession) -> Response:
    enforce(runtime, request, receipt_limit(runtime.settings))
    opened = runtime.intake.open_case(db, body.receipt)
    runtime.intake.set_notify_address(db, opened, str(body.notify_email) if body.notify_email else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/reports/identifiers",
    response_model=IdentifiersSaved,
    responses=_RECEIPT_ERRORS,
    summary="Add perpetrator identifiers for the repeat-perpetrator matching (with the consent)",
)
async def add_identifiers(
    body: ReceiptIdentifiers, request: Request, runtime: RuntimeDep
) -> IdentifiersSaved:
    """The holders of a case that shares one are told that it does, never with whom; identifiers without
    ``consent_matching`` are refused (422) and nothing is kept (docs/matching.md)."""
    # Counted before anything else: sending the same identifiers again must not tell holders anew at will.
    await enforce_async(runtime, request, receipt_limit(runtime.settings))
    fields = IdentifiersAdd.model_validate(body.model_dump(exclude={"receipt"}))

    def work(db: Session) -> bool:
        return runtime.intake.add_identifiers(db, runtime.intake.open_case(db, body.receipt), fields)

    # At a fixed time, whatever the look-up found (answer_time.py).
    async with answer_at_a_fixed_time():
        return IdentifiersSaved(registered=await in_transaction(request, work))


@router.post(
    "/reports/identifiers/withdraw",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_RECEIPT_ERRORS,
    summary="Withdraw the consent to the matching: every token and identifier of the case is deleted",
)
def withdraw_identifiers(
    body: ReceiptLogin, request: Request, runtime: RuntimeDep, db: DbSession
) -> Response:
    enforce(runtime, request, receipt_limit(runtime.settings))
    runtime.intake.withdraw_matching(db, runtime.intake.open_case(db, body.receipt))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/reports/perpetrator-known",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_RECEIPT_ERRORS,
    summary="Since when the perpetrator of an incident is known (the Strafantrag period starts then)",
)
def set_perpetrator_known(
    body: ReceiptPerpetratorKnown, request: Request, runtime: RuntimeDep, db: DbSession
) -> Response:
    enforce(runtime, request, receipt_limit(runtime.settings))
    opened = runtime.intake.open_case(db, body.receipt)
    runtime.intake.set_perpetrator_known(db, opened, body.seq, body.perpetrator_known_on)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/reports/proceedings",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_RECEIPT_ERRORS,
    summary="Record an incident's proceedings (sealed with the case; a Strafantrag date ends the reminders)",
)
def record_proceedings(
    body: ReceiptProceedings, request: Request, runtime: RuntimeDep, db: DbSession
) -> Response:
    enforce(runtime, request, receipt_limit(runtime.settings))
    opened = runtime.intake.open_case(db, body.receipt)
    record = Proceedings.model_validate(body.model_dump(exclude={"receipt", "seq"}))
    runtime.intake.record_proceedings(db, opened, body.seq, record)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/reports/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={
        200: files.DOWNLOAD_RESPONSE,
        **error_responses(413, 422, 429, described={404: "No case for this receipt, or no such file in it"}),
    },
    summary="Download a file of your own case (for example one the counselling organisation sent)",
)
def download_attachment(
    attachment_id: str, body: ReceiptLogin, request: Request, runtime: RuntimeDep, db: DbSession
) -> StreamingResponse:
    # POST, not GET: the receipt is a secret and belongs in a body, never in a URL or an access log.
    enforce(runtime, request, receipt_limit(runtime.settings))
    opened = runtime.intake.open_case(db, body.receipt)
    # The audit event is committed with the request's session before the file streams.
    found = runtime.intake.open_attachment(db, opened, attachment_id, runtime.blobs)
    return download(found.filename, found.content_type, found.size_bytes, found.chunks())
