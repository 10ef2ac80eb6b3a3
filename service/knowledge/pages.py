"""/wissen: the Handlungsempfehlungen (German first, English by ?lang=en), search, coordinators' edits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from service.auth.deps import CoordinatorDep, open_subject, pages_of
from service.deps import runtime_of
from service.errors import ValidationFailed
from service.i18n import Translator
from service.knowledge.selfcheck import gaps, load_selfcheck
from service.knowledge.service import ArticleView
from service.web import BodyKind, StrictRoute, body, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)


@router.get("/wissen")
def knowledge_list(request: Request) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    query = request.query_params.get("q", "")[:200]
    with runtime.sessions() as db:
        articles = runtime.knowledge.articles(db, lang, query)
    return pages_of(request).render(request, "knowledge_list.html", articles=articles, query=query)


def _new_page(
    request: Request, values: dict[str, Any], errors: list[dict[str, str]], status: int
) -> Response:
    return pages_of(request).render(
        request,
        "knowledge_new.html",
        status=status,
        values=values,
        errors=errors,
        field_errors={e["field"]: e["message"] for e in errors if e["field"]},
    )


@router.get("/wissen/neu")
def knowledge_new_form(request: Request, subject: CoordinatorDep) -> Response:
    return _new_page(request, {}, [], 200)


@router.post("/wissen/neu")
@body(BodyKind.long_form)
async def knowledge_new(request: Request, subject: CoordinatorDep) -> Response:
    """A coordinator publishes a new article in the language of the page (German unless ?lang=en)."""
    runtime = runtime_of(request)
    lang = request_lang(request)
    t = Translator(lang)
    form = await read_form(request, max_fields=10)
    values = {name: str(form.get(name) or "") for name in ("slug", "title", "summary", "body", "codes")}
    if not pages_of(request).csrf_ok(request, str(form.get("csrf_token") or "")):
        errors = [{"field": "", "message": f"{t('error.csrf.title')}: {t('error.csrf.message')}"}]
        return _new_page(request, values, errors, 403)
    slug = values["slug"].strip().lower()

    def save() -> None:
        with runtime.sessions() as db:
            runtime.knowledge.create(
                db,
                subject,
                slug,
                lang,
                title=values["title"],
                summary=values["summary"],
                body=values["body"],
                codes=values["codes"].replace(",", " ").split(),
            )

    try:
        await run_in_threadpool(save)
    except ValidationFailed as exc:
        return _new_page(request, values, _errors(exc, t), 422)
    suffix = "?lang=en" if lang == "en" else ""
    return RedirectResponse(f"/wissen/{slug}{suffix}", status_code=303)


def _errors(exc: ValidationFailed, t: Translator) -> list[dict[str, str]]:
    errors = []
    for error in exc.detail:
        field = str(error["loc"][0])
        key = "validation.duplicate_slug" if error.get("type") == "duplicate" else "validation.invalid"
        errors.append({"field": field, "message": f"{t(f'knowledge.field.{field}')}: {t(key)}"})
    return errors


@router.get("/wissen/selbstcheck/fragen")
def selfcheck(request: Request) -> Response:
    """The questionnaire; submitted (GET, nothing stored) it shows what to do about each "no"."""
    lang = request_lang(request)
    answers = {key: value for key, value in request.query_params.items() if value in ("yes", "no")}
    sections = load_selfcheck()
    asked = {q.id for section in sections for q in section.questions}
    answers = {key: value for key, value in answers.items() if key in asked}
    found = gaps(answers) if answers else []
    suffix = "?lang=en" if lang == "en" else ""
    return pages_of(request).render(
        request,
        "knowledge_selfcheck.html",
        sections=[
            {
                "id": section.id,
                "title": section.title.get(lang, section.title["de"]),
                "questions": [
                    {"id": q.id, "text": q.text.get(lang, q.text["de"]), "answer": answers.get(q.id, "")}
                    for q in section.questions
                ],
            }
            for section in sections
        ],
        evaluated=bool(answers),
        answered=len(answers),
        total=len(asked),
        gaps=[
            {
                "text": q.text.get(lang, q.text["de"]),
                "recommendation": q.recommendation.get(lang, q.recommendation["de"]),
                "url": f"/wissen/{q.article}{suffix}",
            }
            for q in found
        ],
    )


@router.get("/wissen/{slug}")
def knowledge_article(slug: str, request: Request) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    with runtime.sessions() as db:
        article = runtime.knowledge.article(db, slug[:80], lang)
    # A signed-in coordinator sees where to edit; everyone else sees the plain article.
    subject = open_subject(request, runtime) if request.cookies else None
    can_edit = subject is not None and subject.is_coordinator and not subject.must_change_password
    return pages_of(request).render(request, "knowledge_article.html", article=article, can_edit=can_edit)


def _edit_page(
    request: Request, article: ArticleView, values: dict[str, Any], errors: list[dict[str, str]], status: int
) -> Response:
    return pages_of(request).render(
        request,
        "knowledge_edit.html",
        status=status,
        article=article,
        values=values,
        errors=errors,
        field_errors={e["field"]: e["message"] for e in errors if e["field"]},
    )


@router.get("/wissen/{slug}/bearbeiten")
def knowledge_edit_form(slug: str, request: Request, subject: CoordinatorDep) -> Response:
    runtime = runtime_of(request)
    with runtime.sessions() as db:
        article = runtime.knowledge.article(db, slug[:80], request_lang(request))
    values = {
        "title": article.title,
        "summary": article.summary,
        "body": article.body_md,
        "codes": " ".join(article.codes),
    }
    return _edit_page(request, article, values, [], 200)


@router.post("/wissen/{slug}/bearbeiten")
@body(BodyKind.long_form)
async def knowledge_edit(slug: str, request: Request, subject: CoordinatorDep) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    t = Translator(lang)
    form = await read_form(request, max_fields=10)
    values = {name: str(form.get(name) or "") for name in ("title", "summary", "body", "codes")}

    def current() -> ArticleView:
        with runtime.sessions() as db:
            return runtime.knowledge.article(db, slug[:80], lang)

    article = await run_in_threadpool(current)
    if not pages_of(request).csrf_ok(request, str(form.get("csrf_token") or "")):
        errors = [{"field": "", "message": f"{t('error.csrf.title')}: {t('error.csrf.message')}"}]
        return _edit_page(request, article, values, errors, 403)

    def save() -> None:
        with runtime.sessions() as db:
            runtime.knowledge.edit(
                db,
                subject,
                slug[:80],
                lang,
                title=values["title"],
                summary=values["summary"],
                body=values["body"],
                codes=values["codes"].replace(",", " ").split(),
            )

    try:
        await run_in_threadpool(save)
    except ValidationFailed as exc:
        errors = _errors(exc, t)
        return _edit_page(request, article, values, errors, 422)
    suffix = "&lang=en" if lang == "en" else ""
    return RedirectResponse(f"/wissen/{article.slug}?saved=1{suffix}", status_code=303)
