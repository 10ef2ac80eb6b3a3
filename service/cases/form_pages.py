"""The forms of the counsellor's case page (service/cases/pages.py shows it): each checks the form token,
runs one CaseService change (audited there) and answers 303 back to the page with a notice, or the page
again with what was typed and the errors (``act``). The downloads generated from a case (dossier, evidence
ZIP, letter) come from the case documents the runtime passes in (service/cases/panels.py).

Nothing here logs: whatever a request carries is case content.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from service.auth.deps import StaffDep, pages_of
from service.auth.subject import Subject
from service.cases import repository as case_repository
from service.cases.forms import refused, validated, value_of
from service.cases.pages import act, case_form, case_response, check_case_id, error_summary
from service.cases.presenter import INBOX, case_url, today
from service.cases.proceedings import PROCEEDINGS_FIELDS, proceedings_from_form
from service.cases.schemas import CaseUpdate, MessageCreate
from service.cases.views import FormValues
from service.deps import in_transaction, runtime_of
from service.errors import CsrfFailed, ErrorDetail, NotFound, ValidationFailed
from service.evidence.uploads import form_content, parse_form
from service.i18n import Translator
from service.runtime import Runtime
from service.web import BodyKind, StrictRoute, body, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)


@router.post(INBOX + "/{case_id}/bestaetigen")
async def acknowledge(case_id: str, request: Request, subject: StaffDep) -> Response:
    form = await case_form(request)

    def work(runtime: Runtime, db: Session) -> None:
        runtime.cases.update(db, subject, case_id, CaseUpdate(acknowledge=True))

    return await act(request, subject, case_id, form, values={}, notice="acknowledged", work=work)


@router.post(INBOX + "/{case_id}/status")
async def change_status(case_id: str, request: Request, subject: StaffDep) -> Response:
    form = await case_form(request)
    status, outcome = value_of(form, "status"), value_of(form, "outcome")

    def work(runtime: Runtime, db: Session) -> None:
        change = validated(CaseUpdate, {"status": status or None, "outcome": outcome or None})
        runtime.cases.update(db, subject, case_id, change)

    values = {"status": status, "outcome": outcome}
    return await act(request, subject, case_id, form, values=values, notice="status_saved", work=work)


@router.post(INBOX + "/{case_id}/zuweisen")
async def assign(case_id: str, request: Request, subject: StaffDep) -> Response:
    form = await case_form(request)
    action, chosen = value_of(form, "action"), value_of(form, "assignee_id")

    def work(runtime: Runtime, db: Session) -> None:
        if action == "me":
            change = CaseUpdate(assignee_id=subject.user_id)
        elif action == "other":
            # The service checks that the colleague belongs to an organisation holding the case.
            change = validated(CaseUpdate, {"assignee_id": chosen or None}, field="assignee_id")
            if change.assignee_id is None:
                raise refused("assignee_id", "missing")
        elif action == "none":
            change = CaseUpdate(unassign=True)
        else:
            raise refused("assignee_id", "invalid")
        runtime.cases.update(db, subject, case_id, change)

    notice = {"none": "unassigned", "other": "assigned_other"}.get(action, "assigned")
    return await act(request, subject, case_id, form, values={}, notice=notice, work=work)


@router.post(INBOX + "/{case_id}/labels")
async def set_labels(case_id: str, request: Request, subject: StaffDep) -> Response:
    form = await case_form(request)
    # No box ticked sends no field at all: that is "no labels", which this form means to store.
    labels = [value for value in form.getlist("labels") if isinstance(value, str)]

    def work(runtime: Runtime, db: Session) -> None:
        runtime.cases.update(db, subject, case_id, validated(CaseUpdate, {"labels": labels}))

    values = {"labels": labels}
    return await act(request, subject, case_id, form, values=values, notice="labels_saved", work=work)


@router.post(INBOX + "/{case_id}/weitergeben")
async def refer(case_id: str, request: Request, subject: StaffDep) -> Response:
    """Refer (share) or transfer (hand over) the case; after a transfer the case is no longer ours to see,
    so the counsellor lands on the inbox with a notice instead of a 404."""
    form = await case_form(request)
    target, mode, consent = (
        value_of(form, "organisation"),
        value_of(form, "mode"),
        value_of(form, "consent") == "yes",
    )

    def work(runtime: Runtime, db: Session) -> None:
        if mode not in ("refer", "transfer"):
            raise refused("mode", "missing")
        if not target:
            raise refused("organisation", "missing")
        runtime.cases.refer(db, subject, case_id, target, transfer=mode == "transfer", consent=consent)

    values: FormValues = {"organisation": target, "mode": mode, "consent": consent}
    done = f"{INBOX}?notice=transferred" if mode == "transfer" else None
    return await act(
        request, subject, case_id, form, values=values, notice="referred", work=work, done_url=done
    )


@router.post(INBOX + "/{case_id}/vorfaelle/{seq}/einordnung")
async def reclassify(case_id: str, seq: int, request: Request, subject: StaffDep) -> Response:
    form = await case_form(request)
    codes = [value for value in form.getlist("type_codes") if isinstance(value, str)]

    def work(runtime: Runtime, db: Session) -> None:
        try:
            runtime.cases.reclassify(db, subject, case_id, seq, codes)
        except ValidationFailed as exc:
            # Shown at this incident's form: a page lists several incidents, each with its own choices.
            raise ValidationFailed([{**error, "loc": [f"types-{seq}"]} for error in exc.detail]) from None

    values = {f"types-{seq}": codes}
    return await act(request, subject, case_id, form, values=values, notice="reclassified", work=work)


@router.post(INBOX + "/{case_id}/nachricht")
@body(BodyKind.upload)
async def write_message(case_id: str, request: Request, subject: StaffDep) -> Response:
    """A message to the reporter, optionally with files; the files are encrypted with the case key while
    the form streams in, so the case is opened (404 if the subject may not see it) before the body is read."""
    check_case_id(case_id)
    runtime = runtime_of(request)

    def case_key() -> bytes:
        with runtime.sessions() as db:
            return runtime.cases.unlock(db, subject, case_id).data_key

    key = await run_in_threadpool(case_key)
    parser = await parse_form(
        request, key=key, case_id=case_id, blobs=runtime.blobs, settings=runtime.settings
    )
    form = FormData([(name, value) for name, values in parser.fields.items() for value in values])
    text = value_of(form, "message")

    def work(runtime: Runtime, db: Session) -> None:
        problems: list[ErrorDetail] = [
            {
                "loc": ["message_files"],
                "type": str(error["reason"]),
                "msg": "",
                "position": str(error.get("position", "")),
            }
            for error in parser.errors
        ]
        try:
            body: MessageCreate = validated(MessageCreate, {"body": text}, field="message")
        except ValidationFailed as exc:
            raise ValidationFailed(exc.detail + problems) from None
        if problems:
            raise ValidationFailed(problems)
        runtime.cases.post_message(db, subject, case_id, body.body, parser.uploads)

    values = {"message": text}
    # Refused, failed or sent before: the encrypted files of this request must not stay behind without a row.
    return await act(
        request,
        subject,
        case_id,
        form,
        values=values,
        notice="message_sent",
        work=work,
        once="message",
        content=form_content(text, parser.uploads),
        undo=parser.discard,
    )


async def _download_request(case_id: str, request: Request, subject: Subject) -> tuple[Runtime, FormData]:
    """The checks before a generated download of a case (dossier, evidence ZIP): a case the subject may not
    see is a 404 before anything else, a missing form token included (a 403 would tell that the case
    exists). Only whether a holding organisation's grant exists is looked up here: the case key is
    unwrapped once, by the generation itself."""
    check_case_id(case_id)
    runtime = runtime_of(request)
    form = await case_form(request)

    def visible() -> bool:
        with runtime.sessions() as db:
            return case_repository.visible_case(db, subject.organisation_ids, case_id) is not None

    if not await run_in_threadpool(visible):
        raise NotFound()
    if not pages_of(request).csrf_ok(request, value_of(form, "csrf_token")):
        raise CsrfFailed()
    return runtime, form


@router.post(INBOX + "/{case_id}/dossier")
async def case_dossier(case_id: str, request: Request, subject: StaffDep) -> Response:
    """The case dossier as PDF for a counsellor of a holding organisation (404 for anyone else), generated
    in memory, streamed, audited without content (service/dossier)."""
    runtime, _ = await _download_request(case_id, request, subject)
    lang = request_lang(request)

    def generate(db: Session) -> Response:
        unlocked = runtime.cases.unlock(db, subject, case_id)
        return runtime.case_documents.dossier(db, unlocked, lang, subject.user_id)

    return await in_transaction(request, generate)


@router.post(INBOX + "/{case_id}/beweise")
async def case_evidence_zip(case_id: str, request: Request, subject: StaffDep) -> Response:
    """The evidence files the dossier lists, as a ZIP with their SHA256SUMS, for a counsellor of a holding
    organisation (404 for anyone else, before the form token is looked at): decrypted while it streams,
    nothing stored, audited without content (service/dossier/archive.py)."""
    runtime, _ = await _download_request(case_id, request, subject)
    lang = request_lang(request)

    def prepare(db: Session) -> Response:
        unlocked = runtime.cases.unlock(db, subject, case_id)
        return runtime.case_documents.evidence(db, unlocked, lang, subject.user_id)

    return await in_transaction(request, prepare)


@router.post(INBOX + "/{case_id}/brief")
async def case_letter(case_id: str, request: Request, subject: StaffDep) -> Response:
    """A letter filled from the decrypted case, as PDF or plain text, for a counsellor of a holding
    organisation (404 for anyone else, before the form token is looked at). What was typed for it goes into
    this answer only: never stored, never logged, audited as the kind of letter (service/dossier)."""
    runtime, form = await _download_request(case_id, request, subject)
    documents = runtime.case_documents
    try:
        documents.check_letter(form)
    except ValidationFailed as exc:
        summary = error_summary(exc.detail, Translator(request_lang(request)), runtime)
        values = documents.letter_values(form)
        return await run_in_threadpool(
            case_response, request, subject, case_id, status=422, values=values, errors=summary
        )
    day = today()

    def generate(db: Session) -> Response:
        unlocked = runtime.cases.unlock(db, subject, case_id)
        return documents.letter(db, unlocked, form, day, subject.user_id)

    return await in_transaction(request, generate)


@router.post(INBOX + "/{case_id}/notiz")
async def write_note(case_id: str, request: Request, subject: StaffDep) -> Response:
    form = await case_form(request)
    text = value_of(form, "note")

    def work(runtime: Runtime, db: Session) -> None:
        body: MessageCreate = validated(MessageCreate, {"body": text}, field="note")
        runtime.cases.add_note(db, subject, case_id, body.body)

    return await act(
        request,
        subject,
        case_id,
        form,
        values={"note": text},
        notice="note_added",
        work=work,
        once="note",
        content=form_content(text, []),
    )


@router.post(INBOX + "/{case_id}/vorfaelle/{seq}/verfahren")
async def record_proceedings(case_id: str, seq: int, request: Request, subject: StaffDep) -> Response:
    """The proceedings of one incident (Strafanzeige, Strafantrag, Aktenzeichen, § 406d StPO, outcome):
    sealed with the case key; a Strafantrag recorded ends the deadline's reminders."""
    form = await case_form(request)

    def work(runtime: Runtime, db: Session) -> None:
        try:
            record = proceedings_from_form(form)
        except ValidationFailed as exc:
            # Shown at this incident's form: a page lists several incidents, each with its own.
            raise ValidationFailed(
                [{**error, "loc": [f"proceedings-{seq}"]} for error in exc.detail]
            ) from None
        runtime.cases.record_proceedings(db, subject, case_id, seq, record)

    values = {f"proceedings-{seq}": {name: value_of(form, name) for name in PROCEEDINGS_FIELDS}}
    return await act(request, subject, case_id, form, values=values, notice="proceedings_saved", work=work)


@router.post(INBOX + "/{case_id}/abgleich")
async def resume_matching(case_id: str, request: Request, subject: StaffDep) -> Response:
    """Run the repeat-perpetrator matching of identifiers that wait (a used-up budget, a rotated matching
    key) from the sealed ones, with the case key of the holder; audited without content."""
    form = await case_form(request)
    outcome: list[bool] = []

    def work(runtime: Runtime, db: Session) -> None:
        outcome.append(runtime.cases.resume_matching(db, subject, case_id, runtime.intake.resume_matching))

    response = await act(request, subject, case_id, form, values={}, notice="matching_done", work=work)
    if outcome == [False]:
        return RedirectResponse(f"{case_url(case_id)}?notice=matching_waiting#matching", status_code=303)
    return response


def _seq(form: FormData, name: str) -> int:
    text = value_of(form, name).strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise refused(name, "invalid")
    return int(text)


@router.post(INBOX + "/{case_id}/ereignis")
async def link_event(case_id: str, request: Request, subject: StaffDep) -> Response:
    """Declare an incident of this case and one of another case the subject holds the same event. A case
    the subject does not hold (or none) is a 404, as for the case in the address."""
    form = await case_form(request)
    other = value_of(form, "other_case")

    def work(runtime: Runtime, db: Session) -> None:
        seq, other_seq = _seq(form, "seq"), _seq(form, "other_seq")
        if not other.strip():
            raise refused("other_case", "missing")
        runtime.case_links.link_event(db, subject, case_id, seq, other, other_seq)

    values = {name: value_of(form, name) for name in ("seq", "other_case", "other_seq")}
    return await act(request, subject, case_id, form, values=values, notice="linked", work=work)


@router.post(INBOX + "/{case_id}/ereignis/{seq}/loesen")
async def unlink_event(case_id: str, seq: int, request: Request, subject: StaffDep) -> Response:
    form = await case_form(request)

    def work(runtime: Runtime, db: Session) -> None:
        runtime.case_links.unlink_event(db, subject, case_id, seq)

    return await act(request, subject, case_id, form, values={}, notice="unlinked", work=work)


@router.post(INBOX + "/{case_id}/zusammenfuehren")
async def propose_merge(case_id: str, request: Request, subject: StaffDep) -> Response:
    """Propose merging this case and another one the subject holds (the newer into the older; the reporter
    confirms from the newer one on /fall), or withdraw a pending proposal. Another case the subject does
    not hold is a 404."""
    form = await case_form(request)
    action, other = value_of(form, "action"), value_of(form, "other_case")

    def work(runtime: Runtime, db: Session) -> None:
        if action == "withdraw":
            runtime.case_links.withdraw_merge(db, subject, case_id)
            return
        if not other.strip():
            raise refused("other_case", "missing")
        runtime.case_links.propose_merge(db, subject, case_id, other)

    notice = "merge_withdrawn" if action == "withdraw" else "merge_proposed"
    values = {"merge_case": other}
    return await act(request, subject, case_id, form, values=values, notice=notice, work=work)
