"""/wissen: the Handlungsempfehlungen (German first, English by ?lang=en), search, coordinators' edits."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import forms
from service.auth.deps import CoordinatorDep, open_subject, pages_of
from service.deps import in_transaction, runtime_of
from service.errors import CsrfFailed, ValidationFailed
from service.forms import FieldError
from service.i18n import Translator
from service.knowledge.plain import easy_page, easy_pages, glossary
from service.knowledge.service import DIALOGUE_PREFIX, ArticleView
from service.web import BodyKind, StrictRoute, body, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)


@router.get("/wissen")
def knowledge_list(request: Request) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    query = request.query_params.get("q", "")[:200]
    subject = open_subject(request, runtime) if request.cookies else None
    coordinator = subject is not None and subject.is_coordinator and not subject.must_change_password
    with runtime.sessions() as db:
        articles = runtime.knowledge.articles(db, lang, query)
        pending = runtime.knowledge.pending(db, lang) if coordinator else []
    return pages_of(request).render(
        request, "knowledge_list.html", articles=articles, query=query, pending=pending
    )


def _new_page(request: Request, values: dict[str, str], errors: list[FieldError], status: int) -> Response:
    return pages_of(request).render(
        request,
        "knowledge_new.html",
        status=status,
        values=values,
        errors=errors,
        field_errors={e.field: e.message for e in errors if e.field},
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
        errors = [FieldError("", f"{t('error.csrf.title')}: {t('error.csrf.message')}")]
        return _new_page(request, values, errors, 403)
    slug = values["slug"].strip().lower()

    def save(db: Session) -> None:
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
        await in_transaction(request, save)
    except ValidationFailed as exc:
        return _new_page(request, values, _errors(exc, t), 422)
    suffix = "?created=1&lang=en" if lang == "en" else "?created=1"
    return RedirectResponse(f"/wissen/{slug}{suffix}", status_code=303)


def _errors(exc: ValidationFailed, t: Translator) -> list[FieldError]:
    # An unknown incident-type code is typed here, not chosen from a list: "not valid", not "choose".
    refused = [
        replace(item, code="invalid") if item.code == "invalid_code" else item
        for item in forms.refusals(exc.detail)
    ]
    return list(forms.form_errors(refused, t, lambda field: t(f"knowledge.field.{field}")).summary)


@router.get("/glossar")
def glossary_page(request: Request) -> Response:
    """The legal words the pages use, in plain words, each with its anchor for links from the articles."""
    lang = request_lang(request)
    checked, terms = glossary()
    return pages_of(request).render(
        request,
        "glossary.html",
        checked=checked,
        terms=[
            {
                "id": t.id,
                "term": t.term.get(lang, t.term["de"]),
                "text": t.text.get(lang, t.text["de"]),
                "source": t.source,
            }
            for t in terms
        ],
    )


@router.get("/leichte-sprache")
def easy_index(request: Request) -> Response:
    """The pages in Leichte Sprache (German only; the English page says so)."""
    return pages_of(request).render(request, "easy_index.html", pages=easy_pages())


@router.get("/leichte-sprache/{page}")
def easy_article(page: str, request: Request) -> Response:
    return pages_of(request).render(request, "easy_page.html", page=easy_page(page[:80]))


@router.get("/wissen/{slug}")
def knowledge_article(slug: str, request: Request) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    # A signed-in coordinator sees where to edit and review, and a new article awaiting review; everyone else
    # sees the published article only (a pending one is a 404, like one that does not exist).
    subject = open_subject(request, runtime) if request.cookies else None
    can_edit = subject is not None and subject.is_coordinator and not subject.must_change_password
    with runtime.sessions() as db:
        article = runtime.knowledge.article(db, slug[:80], lang, include_pending=can_edit)
        dialogue = runtime.knowledge.dialogue_links(db, lang) if slug.startswith(DIALOGUE_PREFIX) else []
    can_review = can_edit and not (
        article.awaiting_review and subject is not None and article.author_id == subject.user_id
    )
    return pages_of(request).render(
        request,
        "knowledge_article.html",
        article=article,
        can_edit=can_edit,
        can_review=can_review,
        dialogue=[link for link in dialogue if link["slug"] != article.slug],
    )


@router.post("/wissen/{slug}/pruefen")
async def knowledge_review(slug: str, request: Request, subject: CoordinatorDep) -> Response:
    """A coordinator marks the facts as checked; for a new article, a second coordinator publishes it."""
    runtime = runtime_of(request)
    lang = request_lang(request)
    form = await read_form(request, max_fields=2)

    def exists() -> None:
        with runtime.sessions() as db:
            runtime.knowledge.article(db, slug[:80], lang, include_pending=True)

    await run_in_threadpool(exists)  # an address that names nothing is a 404 before the token counts
    if not pages_of(request).csrf_ok(request, str(form.get("csrf_token") or "")):
        raise CsrfFailed()

    try:
        await in_transaction(request, lambda db: runtime.knowledge.review(db, subject, slug[:80], lang))
    except ValidationFailed:
        return RedirectResponse(f"/wissen/{slug[:80]}?own=1{'&lang=en' if lang == 'en' else ''}", 303)
    return RedirectResponse(f"/wissen/{slug[:80]}?reviewed=1{'&lang=en' if lang == 'en' else ''}", 303)


def _edit_page(
    request: Request, article: ArticleView, values: dict[str, str], errors: list[FieldError], status: int
) -> Response:
    return pages_of(request).render(
        request,
        "knowledge_edit.html",
        status=status,
        article=article,
        values=values,
        errors=errors,
        field_errors={e.field: e.message for e in errors if e.field},
    )


@router.get("/wissen/{slug}/bearbeiten")
def knowledge_edit_form(slug: str, request: Request, subject: CoordinatorDep) -> Response:
    runtime = runtime_of(request)
    with runtime.sessions() as db:
        article = runtime.knowledge.article(db, slug[:80], request_lang(request), include_pending=True)
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
            return runtime.knowledge.article(db, slug[:80], lang, include_pending=True)

    article = await run_in_threadpool(current)
    if not pages_of(request).csrf_ok(request, str(form.get("csrf_token") or "")):
        errors = [FieldError("", f"{t('error.csrf.title')}: {t('error.csrf.message')}")]
        return _edit_page(request, article, values, errors, 403)

    def save(db: Session) -> None:
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
        await in_transaction(request, save)
    except ValidationFailed as exc:
        errors = _errors(exc, t)
        return _edit_page(request, article, values, errors, 422)
    suffix = "&lang=en" if lang == "en" else ""
    return RedirectResponse(f"/wissen/{article.slug}?saved=1{suffix}", status_code=303)
