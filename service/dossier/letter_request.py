"""The letter form, as the reporter's /fall and the counsellor's case page send it: which letter, PDF or
text, and the fields typed for it. One reading and one set of checks for both pages.

The typed values live in this request only: they are checked here, handed to the letter, and shown again
on the page if a field is refused. Nothing of them is stored, logged or audited (the audit records the kind
of letter, service/dossier/letters.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import StreamingResponse

from service.audit import AuditLog
from service.dossier.letter_parts import (
    DRAFT_FOOTER,
    FIELD_LIMITS,
    FILE_STEMS,
    HEADINGS,
    TITLES,
    LetterKind,
    Typed,
)
from service.errors import ErrorDetail
from service.pdf.output import chunks, render_letter
from service.validation import is_control
from service.web import download

# The form's fields: the typed ones, the token, the kind and the format (and room for a browser's extra).
MAX_FIELDS = len(FIELD_LIMITS) + 6
FREE_TEXT = frozenset(FIELD_LIMITS)
FORMATS = ("pdf", "txt")
# The field a refused choice of letter or format is shown at (the radio group of letters).
KIND_FIELD = "letter_kind"
_KINDS = frozenset(kind.value for kind in LetterKind)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class LetterRequest:
    kind: LetterKind
    format: str
    typed: Typed


def typed_values(form: FormData) -> dict[str, str]:
    """What was typed, as sent (line breaks made ``\\n``): to check, and to show again on a refused form."""
    values = {name: str(form.get(name) or "").replace("\r\n", "\n") for name in FIELD_LIMITS}
    kind = form.get("kind")
    values[KIND_FIELD] = kind if isinstance(kind, str) else ""
    return values


def parse(form: FormData) -> tuple[LetterRequest | None, list[ErrorDetail]]:
    """The request, or None and the errors (``loc`` names the field, as both pages' summaries expect)."""
    values = typed_values(form)
    errors: list[ErrorDetail] = []
    for name, limit in FIELD_LIMITS.items():
        value = values[name]
        if len(value) > limit:
            errors.append({"loc": [name], "type": "string_too_long", "msg": ""})
        elif any(is_control(char) for char in value.replace("\n", "")):
            errors.append({"loc": [name], "type": "control_chars", "msg": "control characters"})
    email = values["letter_email"].strip()
    if (
        email
        and not _EMAIL.fullmatch(email)
        and not any(error["loc"] == ["letter_email"] for error in errors)
    ):
        errors.append({"loc": ["letter_email"], "type": "email", "msg": "email"})
    until: date | None = None
    if values["letter_until"].strip():
        try:
            until = date.fromisoformat(values["letter_until"].strip())
        except ValueError:
            errors.append({"loc": ["letter_until"], "type": "invalid", "msg": "date"})
    wanted = form.get("format")
    if values[KIND_FIELD] not in _KINDS or wanted not in FORMATS:
        errors.append({"loc": [KIND_FIELD], "type": "invalid", "msg": ""})
    if errors:
        return None, errors
    typed = Typed(
        name=values["letter_name"],
        address=values["letter_address"],
        reference=values["letter_reference"],
        recipient=values["letter_recipient"],
        household=values["letter_household"],
        email=email,
        urls=values["letter_urls"],
        explanation=values["letter_explanation"],
        official=values["letter_official"],
        premises=values["letter_premises"],
        until=until,
    )
    assert isinstance(wanted, str)
    return LetterRequest(kind=LetterKind(values[KIND_FIELD]), format=wanted, typed=typed), []


def record_generated(
    audit: AuditLog,
    session: Session,
    kind: LetterKind,
    case_id: str,
    *,
    actor_kind: str,
    actor_id: str | None,
) -> None:
    """Audit the letter without content: who (kind and staff id), which case, which letter. Last before
    the caller's commit, as AuditLog asks."""
    audit.append(
        session,
        actor_kind=actor_kind,
        actor_id=actor_id,
        action="letter.generated",
        object_type="case",
        object_id=case_id,
        details={"kind": kind.value},
    )


def rendered(request: LetterRequest, text: str) -> bytes:
    """The letter's bytes: its text, or the same text set as a PDF (fpdf2, imported on first use)."""
    if request.format == "txt":
        return text.encode()
    return render_letter(text, TITLES[request.kind], DRAFT_FOOTER, HEADINGS)


def letter_download(request: LetterRequest, document: bytes, today: date) -> StreamingResponse:
    """The letter as a download, streamed in pieces (it exists in memory only, never as a file)."""
    stem = f"{FILE_STEMS[request.kind]}-{today.isoformat()}"
    if request.format == "txt":
        return download(f"{stem}.txt", "text/plain; charset=utf-8", len(document), chunks(document))
    return download(f"{stem}.pdf", "application/pdf", len(document), chunks(document))
