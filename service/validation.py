"""Checks on what a person types that several features share, and the shape of one 422 error entry.

Shared infrastructure, like ``errors`` and ``display``: the reporter's form (``reports``), the counsellors'
forms (``cases``), the upload parser (``evidence``), the letters (``dossier``) and the knowledge pages all
refuse control characters the same way and answer with the same error entries, and none of them should have
to import another feature for it.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal, get_args

from pydantic import StringConstraints
from pydantic_core import PydanticCustomError

from service.errors import ErrorDetail
from service.i18n import service_today

# A taxonomy code as a client sends it; the service checks it against the taxonomy (operator data).
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]


# What a form can refuse, by a stable code (never by the English text of a message): the error entries of the
# services and the upload parser name them in ``type`` (or ``reason``), pydantic's errors are mapped to them
# by their type (service/forms.py), and the pages translate each with one message (German first).
FormCode = Literal[
    "required",
    "too_long",
    "invalid",
    "invalid_code",
    "district_land",
    "identifier",
    "consent_matching",
    "date_future",
    "control_chars",
    "email",
    "csrf",
    "submission_expired",
    "submission_unknown",
    "receipt_mismatch",
    "merge_stale",
    "attachment_type",
    "attachment_size",
    "attachment_count",
    "attachment_broken",
    "attachment_pixels",
    "duplicate_slug",
    "length",
    "https_only",
]
FORM_CODES: frozenset[str] = frozenset(get_args(FormCode))


def refused(code: FormCode, message: str) -> PydanticCustomError:
    """A validator's refusal with its stable code: pydantic reports it with ``type`` = the code (the pages
    map it to their message by that, never by the English ``message``, which is for the API and the logs)."""
    return PydanticCustomError(code, message)


# The form fields of free text: their validators refuse control characters (NUL among them) at the field,
# so a page can say so there and keep what was typed.
FREE_TEXT_FIELDS = frozenset(
    {
        "description",
        "type_other",
        "place",
        "platform",
        "url",
        "perpetrator_details",
        "municipality",
        "contact_name",
        "contact_phone",
        "message",
    }
)

# C0 controls but tab and newlines, DEL and the C1 controls (0x80-0x9F: no keyboard types them; 0x9B opens
# a terminal escape like ESC [ does). Refused in free text: they drive terminals and cannot all be stored.
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# In a file name also the bidi embeddings, overrides and isolates that disguise it ("invoice\u202eFDP.exe"):
# a name is used for the download, so its characters are replaced (uploads.py display_name).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def is_control(char: str) -> bool:
    """A character a file name must not keep (control or bidi control)."""
    return _CONTROL.match(char) is not None


def no_control_characters(value: str | None) -> str | None:
    """Refuse free text with control characters (``_TEXT_CONTROL``).

    Bidi and format characters (U+200E/F, U+202A-202E, U+2066-2069, U+200B-200D, U+FEFF) are NOT refused:
    messaging apps put them around names, and a threat pasted from a chat must be accepted as sent, not
    retyped (that would also alter the evidence). The text is sealed verbatim; where it is shown it is
    isolated so that it cannot reorder the page around it (service/display.py).
    """
    if value is not None and _TEXT_CONTROL.search(value):
        raise refused("control_chars", "contains control characters")
    return value


def past_day(value: date | None) -> date | None:
    if value is not None and (value > service_today() or value.year < 1990):
        raise refused("date_future", "date must not lie in the future")
    return value


def public_error(loc: list[str | int], kind: str, message: str) -> ErrorDetail:
    """One entry of a 422 answer: where and what, never the offending value."""
    return {"loc": loc, "type": kind, "msg": message}
