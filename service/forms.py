"""One form pipeline for the HTML pages: refusals by stable code, one message per code, one way to answer.

A refused form comes back with every value that was typed, an error summary at the top and the message beside
each field; nothing is changed. The pieces:

- ``Refusal``: one refused field with its code (``service.validation.FormCode``), read from the error entries
  of the services (``type``), of the upload parser (``reason``) and of pydantic (by error type: our validators
  raise ``validation.refused(code, ...)``, whose type is the code; an e-mail address pydantic refuses as a
  ``value_error`` with a ``reason`` in its context). Never by the English text of a message: that is for
  the API and the logs, and it may change.
- ``message``: the one mapping from a code to its translated text (German first, English); a code without a
  text fails loudly (KeyError), it is never shown as "invalid".
- ``submit``: check the form token, run the action, redirect (303) with a notice; or render the form again
  with the errors, and the values the caller keeps, with nothing changed.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from service.errors import ValidationFailed
from service.i18n import Translator
from service.validation import FORM_CODES, FormCode
from service.web import Pages

# The translation key of each code's message.
MESSAGE_KEYS: Mapping[FormCode, str] = {
    "required": "validation.required",
    "too_long": "validation.too_long",
    "invalid": "validation.invalid",
    "invalid_code": "validation.invalid_code",
    "district_land": "validation.district_land",
    "identifier": "validation.identifier",
    "consent_matching": "validation.consent_matching",
    "date_future": "validation.date_future",
    "control_chars": "validation.control_chars",
    "email": "validation.email",
    "csrf": "error.csrf.message",
    "submission_expired": "form.submission.expired",
    "submission_unknown": "form.submission.unknown",
    "receipt_mismatch": "merge.error.receipt_mismatch",
    "merge_stale": "merge.error.merge_stale",
    "attachment_type": "validation.attachment_type",
    "attachment_size": "validation.attachment_size",
    "attachment_count": "validation.attachment_count",
    "attachment_broken": "validation.attachment_broken",
    "attachment_pixels": "validation.attachment_pixels",
    "duplicate_slug": "validation.duplicate_slug",
    "length": "support.error.length",
    "https_only": "support.error.https",
}

# Error types (pydantic's and the services' own) that are not a code by their name.
_TYPE_CODES: Mapping[str, FormCode] = {
    "missing": "required",
    "string_too_short": "required",
    "too_short": "required",
    "string_too_long": "too_long",
    "duplicate": "invalid",
    "invalid_identifier": "identifier",
    "consent_required": "consent_matching",
    "invalid_choice": "invalid_code",
}


@dataclass(frozen=True)
class Refusal:
    """One refused field: its form field, why (a stable code), and for a file its position in the form."""

    field: str
    code: FormCode
    # The position in the list a refused item was sent in (``perpetrator_identifiers[1]``), when it was.
    index: int | None = None
    # A refused file, by its position ("Datei 2"), never by the name it was sent with.
    position: int | None = None
    # A text too long or too short, with the most it may have ("1 bis {max} Zeichen").
    limit: int | None = None


@dataclass(frozen=True)
class FieldError:
    """A refusal as the page shows it: in the summary (a link to the field) and beside the field."""

    field: str
    message: str


@dataclass(frozen=True)
class FormErrors:
    """What a refused form shows: the summary in order, one message per field."""

    summary: tuple[FieldError, ...] = ()
    by_field: Mapping[str, str] = field(default_factory=dict)


class FormRefused(Exception):
    """Raised by an action of ``submit``: the form comes back with these refusals, nothing changed."""

    def __init__(self, refusals: Sequence[Refusal], status: int = 422) -> None:
        super().__init__(", ".join(f"{item.field}: {item.code}" for item in refusals))
        self.refusals = tuple(refusals)
        self.status = status


# One error entry of any of the three sources: a service's ``ErrorDetail``, an entry of the upload parser
# (``field``, ``reason``, ``position``) or pydantic's ``ErrorDetails``. Each is read by its known keys, each
# value checked for its type, so one signature takes all three.
ErrorEntry = Mapping[str, object]


def code_of(error: ErrorEntry) -> FormCode:
    """The code of one error entry (service, upload parser or pydantic), read from its type and context."""
    reason = error.get("reason")
    if isinstance(reason, str) and reason in FORM_CODES:
        return cast(FormCode, reason)
    kind = str(error.get("type", ""))
    if kind == "value_error":
        # pydantic's EmailStr refuses with the reason email-validator gave in the context.
        ctx = error.get("ctx")
        return "email" if isinstance(ctx, Mapping) and "reason" in ctx else "invalid"
    if kind in _TYPE_CODES:
        return _TYPE_CODES[kind]
    if kind in FORM_CODES:
        return cast(FormCode, kind)
    return "invalid"


def refusal_of(error: ErrorEntry) -> Refusal:
    """One error entry as a refusal: ``field`` wins over ``loc`` (whose "body" is dropped)."""
    where = error.get("loc")
    # A list (ErrorDetail) or a tuple (pydantic's), of field names and list positions.
    loc = [part for part in where if part != "body"] if isinstance(where, list | tuple) else []
    named = error.get("field")
    position = error.get("position")
    return Refusal(
        field=str(named or (loc[0] if loc else "")),
        code=code_of(error),
        index=loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None,
        position=int(position) if isinstance(position, int | str) and str(position).isdigit() else None,
    )


def refusals(errors: Iterable[ErrorEntry]) -> list[Refusal]:
    return [refusal_of(error) for error in errors]


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Mapping[str, object]) -> tuple[M | None, list[Refusal]]:
    """The model, or None and its refusals (mapped by pydantic's error type and context)."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, refusals(exc.errors())


def message(code: FormCode, t: Translator, **params: object) -> str:
    """The one text of a code in the page's language. A code without one is a bug: KeyError, loudly."""
    if code not in MESSAGE_KEYS:
        raise KeyError(f"form code without a message: {code!r}")
    return t(MESSAGE_KEYS[code], **params)


def text_of(refusal: Refusal, t: Translator) -> str:
    """The message of a refusal; a refused file is named by its position ("Datei 2"), never its name."""
    if refusal.position is not None:
        return message(refusal.code, t, name=t("upload.file_n", n=refusal.position))
    if refusal.limit is not None:
        return message(refusal.code, t, max=refusal.limit)
    return message(refusal.code, t)


def field_label(t: Translator) -> Callable[[str], str]:
    """The label of a form field as the reporter's pages name it (``field.<name>``)."""
    return lambda name: t(f"field.{name}")


def form_errors(
    items: Iterable[Refusal],
    t: Translator,
    label: Callable[[str], str] | None = None,
    default_field: str = "",
) -> FormErrors:
    """The page's errors, "Label: message", the first refusal of each field only; a refusal of the whole
    form (no field) is shown at ``default_field``."""
    named = label or field_label(t)
    summary: list[FieldError] = []
    by_field: dict[str, str] = {}
    for item in items:
        name = item.field or default_field
        if name in by_field:
            continue
        text = f"{named(name)}: {text_of(item, t)}"
        by_field[name] = text
        summary.append(FieldError(name, text))
    return FormErrors(tuple(summary), by_field)


Render = Callable[[FormErrors, int], Response]


async def submit(
    request: Request,
    pages: Pages,
    t: Translator,
    *,
    token: object,
    csrf_field: str,
    action: Callable[[], str | Response] | Callable[[], Awaitable[str | Response]],
    render: Render,
    label: Callable[[str], str] | None = None,
    default_field: str = "",
) -> Response:
    """Check the form token, run ``action`` (off the event loop), and answer.

    ``action`` returns where to go (a 303 redirect, the notice in its query) or a response of its own; it
    raises ``FormRefused`` (or the service's ``ValidationFailed``) before it changes anything. Then, and on
    a bad form token (403, at ``csrf_field``), ``render`` shows the form again with the errors; the values
    it shows are the caller's, as typed. An ``async`` action is awaited on the event loop instead: it puts
    its database work in ``service.deps.in_transaction`` (the request's unit of work, in the thread pool),
    so that everything it changes commits or rolls back as one."""

    def again(items: Sequence[Refusal], status: int) -> Response:
        return render(form_errors(items, t, label, default_field), status)

    if not pages.csrf_ok(request, token if isinstance(token, str) else None):
        return await run_in_threadpool(again, [Refusal(csrf_field, "csrf")], 403)
    try:
        if inspect.iscoroutinefunction(action):
            target = await action()
        else:
            target = await run_in_threadpool(action)
    except FormRefused as exc:
        return await run_in_threadpool(again, exc.refusals, exc.status)
    except ValidationFailed as exc:
        return await run_in_threadpool(again, refusals(exc.detail), 422)
    if isinstance(target, Response):
        return target
    return RedirectResponse(target, status_code=303)
