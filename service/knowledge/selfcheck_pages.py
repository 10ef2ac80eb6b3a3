"""/wissen/selbstcheck and /wissen/sicherheitsplan: the municipal self-check, a code to keep it under, and the
printable plans. No JavaScript; every answer travels in a form body, never in an address.

What writes, and what does not:
- Answering, the evaluation, the printable page and the PDFs of both plans write nothing: no row, no file,
  no audit event, no rate-limit count (a count would be a row too; the PDFs, which cost CPU, are bounded per
  client by a counter in memory instead, service/knowledge/plan_limit.py). They change no state, so they
  take no form token either: another site that posts to them only shows its visitor a page of their answers.
- Keeping the answers under a code, opening them with it and deleting them are the only writes. Each takes
  the form token and counts against the code limit (as many per client and hour as receipt look-ups).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from service.auth.deps import pages_of
from service.deps import client_address, enforce_async, in_transaction, runtime_of
from service.errors import NotFound, RateLimited
from service.i18n import Translator, format_date, service_today
from service.knowledge import safety_plan as plans
from service.knowledge.plan_limit import MemoryWindowLimiter
from service.knowledge.selfcheck import ANSWERS, clean_answers, load_selfcheck, question_ids
from service.knowledge.selfcheck_store import MAX_NOTE_CHARS, Opened
from service.knowledge.selfcheck_view import (
    MAX_OWNER_CHARS,
    MAX_STEP_CHARS,
    STEPS,
    Evaluation,
    evaluate,
    month_label,
)
from service.pdf.output import chunks
from service.runtime import selfcheck_code_limit
from service.validation import is_control
from service.web import StrictRoute, download, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)

# Every question twice (this take and the previous one) and the few other fields, with room to spare.
MAX_FIELDS = 2 * len(question_ids()) + 40
MAX_CODE_CHARS = 60
_FREE_TEXT = frozenset(
    {"note", *(f"step{n}" for n in range(1, STEPS + 1)), *(f"owner{n}" for n in range(1, STEPS + 1))}
    | {f"f.{field.id}" for field in plans.load_safety_plan().fields}
)


def _today() -> date:
    return service_today()


def _text(form: FormData, name: str, limit: int) -> str:
    """A typed line as sent, cut to its limit, with control characters (but line breaks) left out."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    value = value.replace("\r\n", "\n")[:limit]
    return "".join(char for char in value if char == "\n" or not is_control(char))


def _single(form: FormData) -> dict[str, str]:
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _previous(form: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """A previous take as the questionnaire carried it (p.<id>, prev_month): only ever shown back to the
    person who sent it, so it is taken as sent, within the questions and answers that exist."""
    previous = clean_answers(
        {f"a.{name[2:]}": value for name, value in form.items() if name.startswith("p.")}
    )
    month = form.get("prev_month", "")[:7]
    return previous, month if month_label(month, "de") else ""


def _code_of(form: Mapping[str, str]) -> str:
    return form.get("code", "")[:MAX_CODE_CHARS]


def _questionnaire(
    request: Request,
    answers: Mapping[str, str],
    *,
    previous: Mapping[str, str] | None = None,
    previous_month: str = "",
    code: str = "",
    status: int = 200,
    notice: str = "",
    note: str = "",
) -> Response:
    lang = request_lang(request)
    t = Translator(lang)
    before = previous or {}
    return pages_of(request).render(
        request,
        "knowledge_selfcheck.html",
        status=status,
        areas=[
            {
                "id": area.id,
                "title": area.title.get(lang, area.title["de"]),
                "sections": [
                    {
                        "id": section.id,
                        "title": section.title.get(lang, section.title["de"]),
                        "questions": [
                            {
                                "id": q.id,
                                "text": q.text.get(lang, q.text["de"]),
                                "answer": answers.get(q.id, ""),
                                "previous": t(f"selfcheck.answer.{before[q.id]}") if q.id in before else "",
                            }
                            for q in section.questions
                        ],
                    }
                    for section in area.sections
                ],
            }
            for area in load_selfcheck()
        ],
        answer_options=ANSWERS,
        answer_labels={answer: t(f"selfcheck.answer.{answer}") for answer in ANSWERS},
        previous=before,
        previous_month=previous_month,
        previous_label=month_label(previous_month, lang),
        code=code,
        notice=notice,
        note=note,
    )


@router.get("/wissen/selbstcheck/fragen")
def selfcheck(request: Request) -> Response:
    """The questionnaire. Answered, it goes to the evaluation as a POST: answers never in an address."""
    return _questionnaire(request, {})


@router.post("/wissen/selbstcheck/auswertung")
async def selfcheck_result(request: Request) -> Response:
    """The evaluation: recommendations per area, the change since a previous take, and the forms to keep the
    answers under a code, to print them with three next steps, or to download them as PDF. Writes nothing."""
    form = _single(await read_form(request, max_fields=MAX_FIELDS, free_text=_FREE_TEXT))
    lang = request_lang(request)
    answers = clean_answers(form)
    previous, month = _previous(form)
    evaluation = evaluate(answers, lang, previous, month)
    return _result_page(request, evaluation, answers, previous, _code_of(form))


def _result_page(
    request: Request,
    evaluation: Evaluation,
    answers: Mapping[str, str],
    previous: Mapping[str, str],
    code: str,
) -> Response:
    return pages_of(request).render(
        request,
        "selfcheck_result.html",
        evaluation=evaluation,
        answers=answers,
        previous=previous if evaluation.previous_month else {},
        previous_month=evaluation.previous_month,
        code=code,
        steps=STEPS,
        max_step=MAX_STEP_CHARS,
        max_owner=MAX_OWNER_CHARS,
        max_note=MAX_NOTE_CHARS,
    )


# -- keeping the answers under a code ------------------------------------------------------------------------


def _code_page(request: Request, status: int, error: str = "") -> Response:
    return pages_of(request).render(request, "selfcheck_code.html", status=status, error=error)


@router.get("/wissen/selbstcheck/code")
def selfcheck_code_form(request: Request) -> Response:
    """Where a municipality types its code to take stock again (or to delete what it kept)."""
    return _code_page(request, 200)


@router.post("/wissen/selbstcheck/code")
async def selfcheck_open(request: Request) -> Response:
    """Open a kept self-check: the questionnaire again, with the newest take's answers filled in and shown
    beside each question. A wrong, unknown or mistyped code: 404 with one message for all of them."""
    runtime = runtime_of(request)
    pages = pages_of(request)
    t = Translator(request_lang(request))
    form = _single(await read_form(request, max_fields=10))
    if not pages.csrf_ok(request, form.get("csrf_token")):
        return _code_page(request, 403, f"{t('error.csrf.title')}: {t('error.csrf.message')}")
    await enforce_async(runtime, request, selfcheck_code_limit(runtime.settings))

    def open_kept() -> Opened:
        with runtime.sessions() as db:
            return runtime.selfchecks.open(db, _code_of(form))

    try:
        opened = await run_in_threadpool(open_kept)
    except NotFound:
        return _code_page(request, 404, t("selfcheck.code.invalid"))
    latest = opened.latest
    if form.get("action") == "delete":
        return pages.render(request, "selfcheck_delete.html", code=opened.code, takes=len(opened.takes))
    answers = dict(latest.answers) if latest else {}
    return _questionnaire(
        request,
        answers,
        previous=answers,
        previous_month=latest.month if latest else "",
        code=opened.code,
        notice=t("selfcheck.code.opened", n=len(opened.takes)),
        note=latest.note if latest else "",
    )


@router.post("/wissen/selbstcheck/speichern")
async def selfcheck_save(request: Request) -> Response:
    """Keep the answers: under a new code (shown once), or as a new take under the code they were opened
    with. Only this explicit choice stores anything."""
    runtime = runtime_of(request)
    pages = pages_of(request)
    lang = request_lang(request)
    t = Translator(lang)
    form_data = await read_form(request, max_fields=MAX_FIELDS, free_text=_FREE_TEXT)
    form = _single(form_data)
    answers = clean_answers(form)
    previous, month = _previous(form)
    code = _code_of(form)
    if not pages.csrf_ok(request, form.get("csrf_token")):
        return _code_page(request, 403, f"{t('error.csrf.title')}: {t('error.csrf.message')}")
    if not answers:
        # Nothing to keep: an empty take would only count a municipality that took no stock.
        return _questionnaire(request, {}, code=code, status=422, notice=t("selfcheck.keep.empty"))
    await enforce_async(runtime, request, selfcheck_code_limit(runtime.settings))
    note = _text(form_data, "note", MAX_NOTE_CHARS)
    today = _today()

    def save(db: Session) -> tuple[str, bool]:
        if code:
            return runtime.selfchecks.save_again(db, code, answers, note, today).code, False
        return runtime.selfchecks.save_new(db, answers, note, today), True

    try:
        saved_code, new = await in_transaction(request, save)
    except NotFound:
        return _code_page(request, 404, t("selfcheck.code.invalid"))
    evaluation = evaluate(answers, lang, previous, month)
    return pages.render(
        request,
        "selfcheck_saved.html",
        new=new,
        code=saved_code,
        code_groups=saved_code.split("-"),
        month=month_label(f"{today.year:04d}-{today.month:02d}", lang),
        evaluation=evaluation,
    )


@router.post("/wissen/selbstcheck/loeschen")
async def selfcheck_delete(request: Request) -> Response:
    """Delete a kept self-check for good (its answers leave the coordinators' counts too)."""
    runtime = runtime_of(request)
    pages = pages_of(request)
    t = Translator(request_lang(request))
    form = _single(await read_form(request, max_fields=10))
    if not pages.csrf_ok(request, form.get("csrf_token")):
        return _code_page(request, 403, f"{t('error.csrf.title')}: {t('error.csrf.message')}")
    await enforce_async(runtime, request, selfcheck_code_limit(runtime.settings))

    try:
        await in_transaction(request, lambda db: runtime.selfchecks.delete(db, _code_of(form)))
    except NotFound:
        return _code_page(request, 404, t("selfcheck.code.invalid"))
    return pages.render(request, "selfcheck_code.html", error="", notice=t("selfcheck.deleted"))


# -- the printable plans -------------------------------------------------------------------------------------


def _steps(form: FormData) -> tuple[tuple[str, str], ...]:
    return tuple(
        (_text(form, f"step{n}", MAX_STEP_CHARS), _text(form, f"owner{n}", MAX_OWNER_CHARS))
        for n in range(1, STEPS + 1)
    )


def _pdf_allowed(request: Request) -> None:
    """The per-client bound on PDFs, in memory (service/knowledge/plan_limit.py): 429 past it."""
    limiter: MemoryWindowLimiter | None = getattr(request.app.state, "plan_pdf_limiter", None)
    if limiter is None:
        limiter = MemoryWindowLimiter(runtime_of(request).settings.receipt_limit_per_hour)
        request.app.state.plan_pdf_limiter = limiter
    if not limiter.allow(client_address(request)):
        raise RateLimited()


def _pdf(document: bytes, stem: str) -> Response:
    name = f"{stem}-{_today().isoformat()}.pdf"
    return download(name, "application/pdf", len(document), chunks(document))


@router.post("/wissen/selbstcheck/plan")
async def selfcheck_plan(request: Request) -> Response:
    """The answers, the recommendations and the three next steps with their owners: a printable page, or a
    PDF (``format=pdf``). Made from this request's form alone; nothing stored, nothing recorded."""
    form_data = await read_form(request, max_fields=MAX_FIELDS, free_text=_FREE_TEXT)
    form = _single(form_data)
    lang = request_lang(request)
    previous, month = _previous(form)
    evaluation = evaluate(clean_answers(form), lang, previous, month, _steps(form_data))
    if form.get("format") == "pdf":
        _pdf_allowed(request)
        from service.knowledge.plan_render import render_selfcheck

        document = await run_in_threadpool(render_selfcheck, evaluation, lang, _today())
        return _pdf(document, "Selbstcheck" if lang == "de" else "Self-check")
    return pages_of(request).render(
        request, "selfcheck_plan.html", evaluation=evaluation, made=format_date(_today(), lang)
    )


def _typed_fields(form: FormData) -> dict[str, str]:
    return {
        field.id: _text(form, f"f.{field.id}", plans.MAX_FIELD_CHARS)
        for field in plans.load_safety_plan().fields
    }


def _safety_form(request: Request, answers: Mapping[str, str], typed: Mapping[str, str]) -> Response:
    lang = request_lang(request)
    spec = plans.load_safety_plan()
    return pages_of(request).render(
        request,
        "safety_plan.html",
        sections=[
            {
                "id": section.id,
                "title": section.title.get(lang, section.title["de"]),
                "questions": [
                    {"id": qid, "text": text.get(lang, text["de"]), "answer": answers.get(qid, "")}
                    for qid, text in section.questions
                ],
            }
            for section in spec.sections
        ],
        fields=[
            {"id": f.id, "label": f.label.get(lang, f.label["de"]), "value": typed.get(f.id, "")}
            for f in spec.fields
        ],
        max_field=plans.MAX_FIELD_CHARS,
        answer_labels={answer: Translator(lang)(f"selfcheck.answer.{answer}") for answer in ("yes", "no")},
    )


@router.get("/wissen/sicherheitsplan")
def safety_plan_form(request: Request) -> Response:
    """The short questionnaire of the personal safety plan."""
    return _safety_form(request, {}, {})


@router.post("/wissen/sicherheitsplan")
async def safety_plan(request: Request) -> Response:
    """The personal safety plan for these answers: a printable page, or a PDF (``format=pdf``). Stored
    nowhere, recorded nowhere: the answers and the typed lines go into this answer only."""
    form_data = await read_form(request, max_fields=40, free_text=_FREE_TEXT)
    form = _single(form_data)
    lang = request_lang(request)
    plan = plans.build(plans.answers_from(form), _typed_fields(form_data), lang)
    if form.get("format") == "pdf":
        _pdf_allowed(request)
        from service.knowledge.plan_render import render_safety_plan

        document = await run_in_threadpool(render_safety_plan, plan, lang, _today())
        return _pdf(document, "Sicherheitsplan" if lang == "de" else "Safety-plan")
    return pages_of(request).render(
        request,
        "safety_plan_print.html",
        plan=plan,
        made=format_date(_today(), lang),
        stand=format_date(plan.stand, lang),
    )
