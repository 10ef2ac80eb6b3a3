"""Reading the case page's forms and naming what was refused: the fields, the checks before the service's
own, and the error summary (one line per field, the field's name first, never the value that was sent)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from service.cases.presenter import code_label
from service.errors import ErrorDetail, ValidationFailed
from service.forms import MESSAGE_KEYS, code_of
from service.i18n import Translator

# Fields of the page's forms that are shown under their own name (the letter form's come with the case
# documents, service/cases/panels.py).
FORM_FIELDS = frozenset(
    {
        "message",
        "note",
        "message_files",
        "organisation",
        "mode",
        "reporter_consent",
        "other_case",
        "other_seq",
    }
)
# Where a refused field of the service or of a schema is shown on the page ("" = in the summary only).
_FIELD_OF_LOC = {"status": "status", "outcome": "outcome", "labels": "labels", "assignee_id": "assign"}


def value_of(form: FormData, name: str) -> str:
    """The text of a form field; a file or a missing field is "" (the checks name it)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def refused(field: str, kind: str) -> ValidationFailed:
    return ValidationFailed([{"loc": [field], "type": kind, "msg": ""}])


Model = TypeVar("Model", bound=BaseModel)


def validated(
    model: type[Model], data: Mapping[str, str | list[str] | None], field: str | None = None
) -> Model:
    """The model, from the form's fields as text (a list for boxes ticked, None for one left empty), or
    ValidationFailed naming the field (``field`` replaces the schema's own name)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            [
                {
                    "loc": [field] if field else [str(part) for part in error["loc"][:1]],
                    "type": error["type"],
                    "msg": error["msg"],
                }
                for error in exc.errors()
            ]
        ) from None


def error_list(
    detail: list[ErrorDetail], t: Translator, form_fields: Collection[str] = FORM_FIELDS
) -> list[dict[str, str]]:
    """The summary: one line per field, the field's name first, never the value that was sent."""
    summary: list[dict[str, str]] = []
    seen: set[str] = set()
    for error in detail:
        loc = [str(part) for part in error.get("loc", [])]
        name = loc[0] if loc else ""
        own_field = name in form_fields or name.startswith(("types-", "proceedings-"))
        field = _FIELD_OF_LOC.get(name, name if own_field else "")
        kind = str(error.get("type", ""))
        if kind.startswith("attachment_"):
            # "Datei 2 ist zu groß": the file by its position, never by the name it was sent with.
            message = t(f"validation.{kind}", name=t("upload.file_n", n=str(error.get("position", ""))))
            summary.append(
                {"field": field, "message": f"{code_label(t, 'case_page.field', field)}: {message}"}
            )
            seen.add(field)
            continue
        if field == "outcome" and kind == "missing":
            key = "case_page.error.outcome_required"
        elif field == "reporter_consent":
            key = "case_page.error.consent_required"
        elif kind == "consent_police":
            key = "case_page.error.consent_police"
        elif field == "organisation" and kind == "invalid":
            key = "case_page.error.already_holder"
        elif kind in ("same_case", "other_event", "holders_differ", "other_newer"):
            key = f"case_page.error.{kind}"
        else:
            # By the error's stable code (service/forms.py), never by its English message.
            key = MESSAGE_KEYS[code_of(error)]
        label = code_label(t, "case_page.field", (field or name or "form").split("-")[0])
        line = f"{label}: {t(key)}"
        if (field and field in seen) or line in {entry["message"] for entry in summary}:
            continue
        seen.add(field)
        summary.append({"field": field, "message": line})
    return summary
