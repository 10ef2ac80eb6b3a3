"""The one form pipeline (service/forms.py): stable codes, one message per code, one way to answer a form.

A refusal is mapped by its code (pydantic's error type, a service's ``type``, the upload parser's ``reason``),
never by the English text of a message; every code has a German and an English text; an unknown code fails
loudly; a refused form comes back with what was typed and nothing changed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from service import forms
from service.errors import ValidationFailed
from service.forms import FormErrors, FormRefused, Refusal
from service.i18n import Translator, catalogue
from service.reports.schemas import IncidentFields, NotifyAddress, PerpetratorKnown
from service.validation import FORM_CODES

INCIDENT = {"type_codes": ["A1"], "description": "Drohung.", "channel": "email"}


@pytest.mark.parametrize("code", sorted(FORM_CODES))
def test_each_code_has_a_german_and_an_english_message(code: str) -> None:
    key = forms.MESSAGE_KEYS[code]  # type: ignore[index]
    assert key in catalogue("de"), f"{code}: {key} missing in de.yaml"
    assert key in catalogue("en"), f"{code}: {key} missing in en.yaml"
    german = forms.message(code, Translator("de"), name="Datei 1")  # type: ignore[arg-type]
    english = forms.message(code, Translator("en"), name="File 1")  # type: ignore[arg-type]
    assert german != key
    assert english != key


def test_every_message_key_is_a_code() -> None:
    assert set(forms.MESSAGE_KEYS) == FORM_CODES


def test_an_unknown_code_fails_loudly() -> None:
    with pytest.raises(KeyError, match="no_such_code"):
        forms.message("no_such_code", Translator("de"))  # type: ignore[arg-type]


def _codes(model: type[Any], data: dict[str, Any]) -> dict[str, str]:
    parsed, refused = forms.validate(model, data)
    assert parsed is None
    return {item.field: item.code for item in refused}


def test_pydantic_refusals_map_by_type_not_by_text() -> None:
    assert _codes(PerpetratorKnown, {"seq": 1, "perpetrator_known_on": "2999-01-01"}) == {
        "perpetrator_known_on": "date_future"
    }
    assert _codes(IncidentFields, {**INCIDENT, "description": "a\x1bb"}) == {"description": "control_chars"}
    assert _codes(NotifyAddress, {"notify_email": "nicht-erreichbar"}) == {"notify_email": "email"}
    assert _codes(IncidentFields, {"type_codes": ["A1"], "channel": "email"}) == {"description": "required"}
    assert _codes(IncidentFields, {**INCIDENT, "description": "x" * 20_001}) == {"description": "too_long"}


def test_the_text_of_a_message_is_never_read() -> None:
    # The words the old mappers guessed from mean nothing: only the type (or reason) counts.
    for text in ("date must not lie in the future", "contains control characters", "email", "a@b"):
        assert forms.code_of({"loc": ["x"], "type": "value_error", "msg": text}) == "invalid"
        assert forms.code_of({"loc": ["x"], "type": "something_else", "msg": text}) == "invalid"


def test_service_and_upload_entries_keep_their_codes() -> None:
    assert forms.code_of({"loc": ["office"], "type": "invalid_code", "msg": ""}) == "invalid_code"
    assert forms.code_of({"loc": ["receipt"], "type": "receipt_mismatch", "msg": ""}) == "receipt_mismatch"
    upload = {"field": "attachments", "reason": "attachment_size", "position": 2}
    refusal = forms.refusal_of(upload)
    assert refusal == Refusal("attachments", "attachment_size", position=2)
    assert forms.text_of(refusal, Translator("de")).startswith("Datei 2")


def test_form_errors_show_the_first_refusal_of_each_field_with_its_label() -> None:
    t = Translator("de")
    shown = forms.form_errors(
        [Refusal("notify_email", "email"), Refusal("notify_email", "required"), Refusal("", "invalid")],
        t,
        default_field="description",
    )
    assert [item.field for item in shown.summary] == ["notify_email", "description"]
    assert shown.by_field["notify_email"] == f"{t('field.notify_email')}: {t('validation.email')}"


class _Pages:
    def __init__(self, token_ok: bool) -> None:
        self.token_ok = token_ok

    def csrf_ok(self, request: Request, token: str | None) -> bool:
        return self.token_ok and token == "good"


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""})


Rendered = list[tuple[FormErrors, int]]


def _run(token_ok: bool, action: Any, token: object = "good") -> tuple[Response, Rendered]:
    rendered: list[tuple[FormErrors, int]] = []

    def render(errors: FormErrors, status: int) -> Response:
        rendered.append((errors, status))
        # The values as typed go back into the form.
        return HTMLResponse(f"typed: {typed['notify_email']}", status_code=status)

    typed = {"notify_email": "nicht-erreichbar"}
    response = asyncio.run(
        forms.submit(
            _request(),
            _Pages(token_ok),  # type: ignore[arg-type]
            Translator("de"),
            token=token,
            csrf_field="notify_email",
            action=action,
            render=render,
        )
    )
    return response, rendered


def test_submit_redirects_after_the_action() -> None:
    stored: list[str] = []

    def action() -> str:
        stored.append("saved")
        return "/fall?notice=notify_saved#notify"

    response, rendered = _run(True, action)
    assert response.status_code == 303
    assert response.headers["location"] == "/fall?notice=notify_saved#notify"
    assert stored == ["saved"]
    assert rendered == []


def test_a_bad_form_token_changes_nothing_and_keeps_the_values() -> None:
    stored: list[str] = []

    def action() -> str:
        stored.append("saved")
        return "/fall"

    response, rendered = _run(False, action)
    assert response.status_code == 403
    assert stored == []
    ((errors, status),) = rendered
    assert status == 403
    assert [item.field for item in errors.summary] == ["notify_email"]
    assert Translator("de")("error.csrf.message") in errors.by_field["notify_email"]
    assert b"typed: nicht-erreichbar" in bytes(response.body)


@pytest.mark.parametrize(
    "refusal",
    [
        FormRefused([Refusal("notify_email", "email")]),
        ValidationFailed([{"loc": ["notify_email"], "type": "email", "msg": "not an address"}]),
    ],
)
def test_a_refusal_changes_nothing_and_keeps_the_values(refusal: Exception) -> None:
    stored: list[str] = []

    def action() -> str:
        raise refusal

    response, rendered = _run(True, action)
    assert response.status_code == 422
    assert stored == []
    ((errors, status),) = rendered
    assert status == 422
    assert errors.by_field["notify_email"].endswith(Translator("de")("validation.email"))
    assert b"typed: nicht-erreichbar" in bytes(response.body)


def test_an_action_may_answer_itself() -> None:
    response, rendered = _run(True, lambda: HTMLResponse("eigene Antwort", status_code=201))
    assert response.status_code == 201
    assert rendered == []
