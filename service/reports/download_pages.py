"""/fall's downloads: a file of the case, the dossier, the evidence ZIP and the letters, each decrypted
from the case in this session, streamed and audited without content."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from service import forms
from service.deps import DbSession, enforce_async, runtime_of
from service.dossier import archive, letter_request, letters
from service.dossier import service as dossiers
from service.dossier.pdf import dossier_download
from service.dossier.pdf import render as render_dossier
from service.errors import CsrfFailed
from service.forms import FormRefused
from service.reports.my_case import answer_form, back_to_fall, on_my_case, signed_in
from service.reports.opened import OpenedCase
from service.reports.pages import ReporterSession, open_from_cookie, pages_of, today
from service.runtime import Runtime, receipt_limit
from service.web import StrictRoute, download, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)


@router.get("/fall/anhang/{attachment_id}")
def reporter_download(attachment_id: str, request: Request, db: DbSession) -> Response:
    """A file of the reporter's own case (one a counsellor sent, or their own: an incident's evidence or a
    message's file), decrypted as it streams and audited. A GET with the reporter's session cookie, which
    is SameSite=Strict, as the counsellors' downloads are: a link with ``download`` works without
    JavaScript. The audit event is committed with the request's session (``DbSession``) before the file
    streams; a case gone, or a file not of this case, is 404 (NotFound)."""
    runtime = runtime_of(request)
    reporter = open_from_cookie(request, runtime)
    if reporter is None:
        return back_to_fall()
    opened = runtime.intake.open_case_by_id(db, reporter.case_id, reporter.data_key)
    found = runtime.intake.open_attachment(db, opened, attachment_id, runtime.blobs)
    return download(found.filename, found.content_type, found.size_bytes, found.chunks())


async def _reporter_download_request(request: Request, runtime: Runtime) -> ReporterSession | None:
    """The reporter of a POST that asks for a generated download (dossier, evidence ZIP), or None when
    nobody is signed in. The form token is checked (403) and the receipt limit counted: generating is
    audited, so neither a prefetch nor another site may cause it, and each one costs decryption."""
    reporter = await signed_in(request)
    if reporter is None:
        return None
    form = await read_form(request, max_fields=10)
    token = form.get("csrf_token")
    if not pages_of(request).csrf_ok(request, token if isinstance(token, str) else None):
        raise CsrfFailed()
    await enforce_async(runtime, request, receipt_limit(runtime.settings))
    return reporter


@router.post("/fall/dossier")
async def reporter_dossier(request: Request) -> Response:
    """The case dossier as PDF (service/dossier): generated from the decrypted case in this session, in
    memory only, streamed, audited without content. A POST with the form token: generating is audited, so
    neither a prefetch nor another site may cause it."""
    runtime = runtime_of(request)
    reporter = await _reporter_download_request(request, runtime)
    if reporter is None:
        return back_to_fall()
    lang = request_lang(request)

    def generate(db: Session, opened: OpenedCase) -> Response:
        dossier = dossiers.build(db, opened.case, opened.data_key, runtime.blobs, runtime.taxonomy, lang)
        document = render_dossier(dossier, lang)
        dossiers.record_generated(
            runtime.audit, db, dossier, opened.case.id, actor_kind="reporter", actor_id=None
        )
        return dossier_download(document)

    return await on_my_case(request, reporter, generate)


@router.post("/fall/beweise")
async def reporter_evidence_zip(request: Request) -> Response:
    """The evidence files the dossier lists, as a ZIP with their SHA256SUMS (service/dossier/archive.py):
    decrypted while it streams, nothing stored, audited without content. A POST with the form token, as
    the dossier: it is audited, so neither a prefetch nor another site may cause it."""
    runtime = runtime_of(request)
    reporter = await _reporter_download_request(request, runtime)
    if reporter is None:
        return back_to_fall()
    lang = request_lang(request)

    def prepare(db: Session, opened: OpenedCase) -> Response:
        dossier = dossiers.build(db, opened.case, opened.data_key, runtime.blobs, runtime.taxonomy, lang)
        items = archive.members(db, dossier, opened.case.id)
        archive.record_downloaded(
            runtime.audit, db, len(items), opened.case.id, actor_kind="reporter", actor_id=None
        )
        # Streamed after the commit, from the blobs alone: the answer holds no session.
        return archive.download(items, opened.data_key, runtime.blobs)

    return await on_my_case(request, reporter, prepare)


@router.post("/fall/brief")
async def reporter_letter(request: Request) -> Response:
    """A letter (service/dossier/letters.py) filled from the decrypted case, as PDF or plain text.

    What was typed for it (names, addresses, household, URLs, an Aktenzeichen) comes with this request and
    goes into this answer only: never stored, never logged, never in the audit (which records the kind of
    letter, nothing else)."""
    runtime = runtime_of(request)
    reporter = await signed_in(request)
    if reporter is None:
        return back_to_fall()
    form = await read_form(request, max_fields=letter_request.MAX_FIELDS, free_text=letter_request.FREE_TEXT)
    typed = letter_request.typed_values(form)

    async def generate() -> Response:
        wanted, errors = letter_request.parse(form)
        if wanted is None:
            raise FormRefused(forms.refusals(errors))
        await enforce_async(runtime, request, receipt_limit(runtime.settings))
        day = today()

        def write(db: Session, opened: OpenedCase) -> Response:
            dossier = dossiers.build(db, opened.case, opened.data_key, runtime.blobs, runtime.taxonomy, "de")
            document = letter_request.rendered(wanted, letters.write(wanted.kind, dossier, wanted.typed, day))
            letter_request.record_generated(
                runtime.audit, db, wanted.kind, opened.case.id, actor_kind="reporter", actor_id=None
            )
            return letter_request.letter_download(wanted, document, day)

        return await on_my_case(request, reporter, write)

    return await answer_form(
        request,
        reporter,
        token=form.get("csrf_token"),
        field=letter_request.KIND_FIELD,
        action=generate,
        values=lambda: dict(typed),
        default_field="description",
    )
