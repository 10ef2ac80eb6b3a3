"""The reporter's forms as sent, read into the schemas' data, and the values shown again after an error.

A refused form comes back with every value the reporter typed (only files must be chosen again: browsers do
not let a page pre-fill file inputs).
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import BaseModel

from service.cases.identifiers import TypedIdentifier
from service.forms import Refusal

LIST_FIELDS = {"type_codes", "targets", "support_needs", "motives", "bias", "triggers", "consequences"}
BOOL_FIELDS = {"consent_counselling", "consent_police", "consent_matching"}
# The form fields of the perpetrator identifiers for the matching (service/matching), one per kind; a handle
# takes its platform from ``match_platform``.
IDENTIFIER_FIELDS = (
    ("match_name", "name"),
    ("match_handle", "handle"),
    ("match_phone", "phone"),
    ("match_email", "email"),
    ("match_plate", "plate"),
)

Fields = dict[str, list[str]]
# The values a refused form is shown again with: every value of a list field, the last of any other.
FormValues = dict[str, str | list[str]]
# A form read into the data of a schema, for pydantic to check: text, the ticked boxes, lists of codes and
# the perpetrator identifiers.
FormData = dict[str, str | bool | list[str] | list[TypedIdentifier]]


def form_values(fields: Fields) -> FormValues:
    """Values to show again after an error: exactly what was sent."""
    values: FormValues = {}
    for name, items in fields.items():
        if name in ("csrf_token", "submission_token"):
            continue
        values[name] = items if name in LIST_FIELDS else items[-1]
    return values


def identifiers_from_form(fields: Fields) -> tuple[list[TypedIdentifier], list[str]]:
    """The identifiers typed into the form (non-empty fields only), and the form field of each."""
    items: list[TypedIdentifier] = []
    names: list[str] = []
    for field, kind in IDENTIFIER_FIELDS:
        value = fields.get(field, [""])[-1]
        if not value.strip():
            continue
        item: TypedIdentifier = {"kind": kind, "value": value}
        if kind == "handle":
            item["platform"] = fields.get("match_platform", [""])[-1] or None
        items.append(item)
        names.append(field)
    return items, names


def identifier_refusals(refusals: list[Refusal], fields: Fields) -> list[Refusal]:
    """Refusals of ``perpetrator_identifiers[i]`` named after the form field the identifier was typed in."""
    _, names = identifiers_from_form(fields)
    return [
        replace(
            item,
            field=names[item.index] if item.index is not None and item.index < len(names) else "match_name",
        )
        if item.field == "perpetrator_identifiers"
        else item
        for item in refusals
    ]


def form_to_data(fields: Fields, model: type[BaseModel]) -> FormData:
    data: FormData = {}
    for name in model.model_fields:
        if name == "perpetrator_identifiers":
            identifiers, _ = identifiers_from_form(fields)
            if identifiers:
                data[name] = identifiers
        elif name in LIST_FIELDS:
            items = [item for item in fields.get(name, []) if item.strip()]
            if items or name == "type_codes":
                data[name] = items
        elif name in BOOL_FIELDS:
            data[name] = fields.get(name, [""])[-1] in ("1", "on", "true")
        else:
            value = fields.get(name, [""])[-1]
            if value.strip():
                data[name] = value
    return data
