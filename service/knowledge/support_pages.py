"""The support directory's pages: /wissen/unterstuetzung for everyone (filtered by Land, without JavaScript),
and /intern/unterstuetzung for the coordinators who keep it (create, edit, review, retire; all audited)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from service import forms
from service.auth.deps import CoordinatorDep, pages_of
from service.auth.subject import Subject
from service.deps import in_transaction, runtime_of
from service.errors import CsrfFailed, ValidationFailed
from service.forms import FieldError
from service.i18n import Translator, pick
from service.knowledge.support import (
    FIELDS,
    LIMITS,
    NATIONWIDE,
    SupportEntryView,
    SupportKind,
    SupportValues,
)
from service.runtime import Runtime
from service.validation import public_error
from service.web import StrictRoute, read_form, request_lang

router = APIRouter(include_in_schema=False, route_class=StrictRoute)

_STAFF_PAGE = "/intern/unterstuetzung"
_NOTICES = ("created", "saved", "reviewed", "published", "own", "retired", "restored")


# -- presenter -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeOption:
    """One choice of a select (``code_select`` in _fields.html prints ``pick(label, lang)``)."""

    code: str
    label: Mapping[str, str]  # language -> text


def land_options(runtime: Runtime, lang: str) -> list[CodeOption]:
    """The 16 Länder in the order of their codes, "bundesweit" first: the choices of both forms."""
    t = Translator(lang)
    nationwide = CodeOption(NATIONWIDE, {"de": t("support.land.bund"), "en": t("support.land.bund")})
    return [nationwide] + [
        CodeOption(land.code, {"de": pick(land.name, "de"), "en": pick(land.name, "en")})
        for land in runtime.districts.lands
    ]


def _land_label(runtime: Runtime, code: str, lang: str) -> str:
    if code == NATIONWIDE:
        return Translator(lang)("support.land.bund")
    land = runtime.districts.land(code)
    return pick(land.name, lang) if land else code


def kind_options(lang: str) -> list[CodeOption]:
    t = Translator(lang)
    return [CodeOption(kind.value, {lang: t(f"support.kind.{kind.value}")}) for kind in SupportKind]


@dataclass(frozen=True, slots=True)
class _Shown:
    """An entry as the pages print it: Land, kind and state in the page's language."""

    id: str
    name: str
    land: str
    kind: str
    description: str
    url: str
    source: str
    source_url: str
    reviewed_on: str
    review_due: bool
    awaiting_review: bool
    retired: bool
    status: str
    status_code: str


def _shown(runtime: Runtime, entry: SupportEntryView, lang: str) -> _Shown:
    t = Translator(lang)
    return _Shown(
        id=entry.id,
        name=entry.name,
        land=_land_label(runtime, entry.land, lang),
        kind=t(f"support.kind.{entry.kind}") if entry.kind in SupportKind.__members__ else entry.kind,
        description=entry.description(lang),
        url=entry.url,
        source=entry.source,
        source_url=entry.source_url,
        reviewed_on=entry.reviewed_on,
        review_due=entry.review_due,
        awaiting_review=entry.awaiting_review,
        retired=entry.retired,
        status=t(f"support.status.{_status(entry)}"),
        status_code=_status(entry),
    )


def _status(entry: SupportEntryView) -> str:
    if entry.retired:
        return "retired"
    if entry.awaiting_review:
        return "awaiting"
    return "due" if entry.review_due else "published"


@dataclass(frozen=True, slots=True)
class _Group:
    code: str  # the Land's code, or NATIONWIDE
    heading: str
    entries: list[_Shown] = field(default_factory=list)


def _groups(runtime: Runtime, entries: list[SupportEntryView], lang: str) -> list[_Group]:
    """Entries under one heading per Land (in the list's order: the Länder, then nationwide)."""
    groups: list[_Group] = []
    for entry in entries:
        if not groups or groups[-1].code != entry.land:
            groups.append(_Group(entry.land, _land_label(runtime, entry.land, lang)))
        groups[-1].entries.append(_shown(runtime, entry, lang))
    return groups


def _errors(exc: ValidationFailed, t: Translator) -> list[FieldError]:
    """The service's errors in the page's language, each naming its field (nothing of what was sent)."""
    refused = [
        replace(item, limit=LIMITS.get(item.field, 0)) if item.code == "length" else item
        for item in forms.refusals(exc.detail)
    ]
    return list(forms.form_errors(refused, t, lambda field: t(f"support.field.{field}")).summary)


def _csrf_error(t: Translator) -> list[FieldError]:
    return [FieldError("", f"{t('error.csrf.title')}: {t('error.csrf.message')}")]


def _suffix(lang: str, first: bool) -> str:
    if lang != "en":
        return ""
    return "?lang=en" if first else "&lang=en"


# -- the public page -----------------------------------------------------------------------------------------


@router.get("/wissen/unterstuetzung")
def support_directory(request: Request) -> Response:
    """Everyone: the directory, for one Land (its entries and the nationwide ones) or for all. A Land that
    is not in the list is refused with a message, and the whole directory is shown."""
    runtime = runtime_of(request)
    lang = request_lang(request)
    t = Translator(lang)
    land = request.query_params.get("land", "")[:8]
    errors: list[FieldError] = []
    if land and land not in runtime.support.lands:
        errors = [FieldError("land", f"{t('support.field.land')}: {t('support.error.choice')}")]
        land = ""
    with runtime.sessions() as db:
        entries = runtime.support.public(db, land)
    return pages_of(request).render(
        request,
        "knowledge_support.html",
        status=422 if errors else 200,
        lands=land_options(runtime, lang),
        values={"land": land},
        selected=_land_label(runtime, land, lang) if land else "",
        groups=_groups(runtime, entries, lang),
        count=len(entries),
        errors=errors,
        field_errors={e.field: e.message for e in errors},
    )


# -- the coordinators' pages ---------------------------------------------------------------------------------


@router.get(_STAFF_PAGE)
def support_staff_list(request: Request, subject: CoordinatorDep) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    with runtime.sessions() as db:
        entries = runtime.support.all(db)
    return pages_of(request).render(
        request,
        "staff_support.html",
        entries=[_shown(runtime, entry, lang) for entry in entries],
        due=sum(1 for entry in entries if entry.review_due),
    )


def _form_page(
    request: Request,
    name: str,
    *,
    values: dict[str, str],
    errors: list[FieldError],
    status: int,
    entry: _Shown | None = None,
    can_review: bool = False,
    notice: str = "",
) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    return pages_of(request).render(
        request,
        name,
        status=status,
        values=values,
        errors=errors,
        field_errors={e.field: e.message for e in errors if e.field},
        lands=land_options(runtime, lang),
        kinds=kind_options(lang),
        limits=LIMITS,
        entry=entry,
        can_review=can_review,
        notice=notice,
    )


def _values(form: FormData) -> dict[str, str]:
    return {name: str(form.get(name) or "") for name in FIELDS}


@router.get(_STAFF_PAGE + "/neu")
def support_new_form(request: Request, subject: CoordinatorDep) -> Response:
    return _form_page(request, "staff_support_new.html", values={}, errors=[], status=200)


@router.post(_STAFF_PAGE + "/neu")
async def support_new(request: Request, subject: CoordinatorDep) -> Response:
    """A new entry, waiting for a second coordinator's review; a refused form stores nothing."""
    runtime = runtime_of(request)
    lang = request_lang(request)
    t = Translator(lang)
    form = await read_form(request, max_fields=12)
    values = _values(form)
    if not pages_of(request).csrf_ok(request, str(form.get("csrf_token") or "")):
        return _form_page(request, "staff_support_new.html", values=values, errors=_csrf_error(t), status=403)

    try:
        entry_id = await in_transaction(
            request, lambda db: runtime.support.create(db, subject, SupportValues.of(values))
        )
    except ValidationFailed as exc:
        return _form_page(
            request, "staff_support_new.html", values=values, errors=_errors(exc, t), status=422
        )
    return RedirectResponse(f"{_STAFF_PAGE}/{entry_id}?notice=created{_suffix(lang, False)}", 303)


def _entry(request: Request, entry_id: str) -> SupportEntryView:
    runtime = runtime_of(request)
    with runtime.sessions() as db:
        return runtime.support.entry(db, entry_id[:36])


def _edit_page(
    request: Request,
    subject: Subject,
    entry: SupportEntryView,
    values: dict[str, str],
    errors: list[FieldError],
    status: int,
) -> Response:
    runtime = runtime_of(request)
    lang = request_lang(request)
    notice = request.query_params.get("notice", "")
    return _form_page(
        request,
        "staff_support_entry.html",
        values=values,
        errors=errors,
        status=status,
        entry=_shown(runtime, entry, lang),
        # The author of a new entry cannot publish it: a second coordinator reviews it.
        can_review=not (entry.awaiting_review and entry.author_id == subject.user_id),
        notice=Translator(lang)(f"support.notice.{notice}") if notice in _NOTICES else "",
    )


@router.get(_STAFF_PAGE + "/{entry_id}")
def support_entry_form(entry_id: str, request: Request, subject: CoordinatorDep) -> Response:
    entry = _entry(request, entry_id)
    values = {
        "land": entry.land,
        "kind": entry.kind,
        "name": entry.name,
        "description_de": entry.description_de,
        "description_en": entry.description_en,
        "url": entry.url,
        "source": entry.source,
        "source_url": entry.source_url,
    }
    return _edit_page(request, subject, entry, values, [], 200)


@router.post(_STAFF_PAGE + "/{entry_id}")
async def support_entry_edit(entry_id: str, request: Request, subject: CoordinatorDep) -> Response:
    """A coordinator's correction (whoever saves it has checked it: "geprüft am" becomes today)."""
    runtime = runtime_of(request)
    lang = request_lang(request)
    t = Translator(lang)
    form = await read_form(request, max_fields=12)
    values = _values(form)
    entry = await run_in_threadpool(_entry, request, entry_id)  # a 404 before the token counts
    if not pages_of(request).csrf_ok(request, str(form.get("csrf_token") or "")):
        return _edit_page(request, subject, entry, values, _csrf_error(t), 403)

    try:
        await in_transaction(
            request, lambda db: runtime.support.edit(db, subject, entry.id, SupportValues.of(values))
        )
    except ValidationFailed as exc:
        return _edit_page(request, subject, entry, values, _errors(exc, t), 422)
    return RedirectResponse(f"{_STAFF_PAGE}/{entry.id}?notice=saved{_suffix(lang, False)}", 303)


@router.post(_STAFF_PAGE + "/{entry_id}/pruefen")
async def support_entry_review(entry_id: str, request: Request, subject: CoordinatorDep) -> Response:
    """Checked against the source today; for a new entry, the second coordinator's review publishes it."""
    runtime = runtime_of(request)
    lang = request_lang(request)
    form = await read_form(request, max_fields=2)
    entry = await run_in_threadpool(_entry, request, entry_id)
    if not pages_of(request).csrf_ok(request, str(form.get("csrf_token") or "")):
        raise CsrfFailed()

    try:
        published = await in_transaction(request, lambda db: runtime.support.review(db, subject, entry.id))
    except ValidationFailed:
        return RedirectResponse(f"{_STAFF_PAGE}/{entry.id}?notice=own{_suffix(lang, False)}", 303)
    notice = "published" if published else "reviewed"
    return RedirectResponse(f"{_STAFF_PAGE}/{entry.id}?notice={notice}{_suffix(lang, False)}", 303)


@router.post(_STAFF_PAGE + "/{entry_id}/zurueckziehen")
async def support_entry_retire(entry_id: str, request: Request, subject: CoordinatorDep) -> Response:
    """Takes an entry off the public page (action=retire) or puts it back (action=restore)."""
    runtime = runtime_of(request)
    lang = request_lang(request)
    form = await read_form(request, max_fields=3)
    entry = await run_in_threadpool(_entry, request, entry_id)
    if not pages_of(request).csrf_ok(request, str(form.get("csrf_token") or "")):
        raise CsrfFailed()
    action = str(form.get("action") or "")
    if action not in ("retire", "restore"):
        raise ValidationFailed([public_error(["action"], "invalid_choice", "retire or restore")])
    retire = action == "retire"

    await in_transaction(request, lambda db: runtime.support.retire(db, subject, entry.id, retired=retire))
    notice = "retired" if retire else "restored"
    return RedirectResponse(f"{_STAFF_PAGE}/{entry.id}?notice={notice}{_suffix(lang, False)}", 303)
