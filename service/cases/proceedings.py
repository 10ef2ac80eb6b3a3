"""Criminal proceedings of an incident, as the holders and the reporter record them (issue 18).

One record per incident (a Strafantrag is made for an act, and each act has its own deadline), sealed with
the case key (``incident.proceedings``, context ``("proceedings", case_id, record_id=incident id)``):

- ``complaint_on``: the Strafanzeige was filed on this day (§ 158 Abs. 1 StPO: with the public prosecutor,
  the police or a local court, in writing or by word of mouth).
- ``application_on``: the Strafantrag was filed on this day (§ 158 Abs. 2 StPO: in writing or on record with
  a court or the public prosecutor, in writing with another authority; within three months, § 77b StGB).
- ``file_number``: the Aktenzeichen the police or the public prosecutor gave.
- ``information_requested`` and ``information_requested_on``: the injured person asked to be told of the
  outcome (§ 406d Abs. 1 StPO: on application the dismissal, the place and time of the main hearing, the
  charges and the outcome of the court proceedings are communicated).
- ``outcome``: one of ``OUTCOMES`` (below, with the provision each one names).

The server keeps none of it in clear. What the reminders need is whether a Strafantrag was filed: that is
written as the absence of a reminder week (``incident.complaint_reminder_on`` NULL), which a passed or
reclassified deadline also leaves, so a dump does not tell which (docs/clear-columns.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, TypedDict

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.datastructures import FormData

from service.cases.deadlines import ComplaintDeadline, payload_complaint_deadline, reminder_week
from service.cases.models import Incident
from service.cases.payload import ReportPayload
from service.crypto import Context, open_sealed, seal
from service.errors import ValidationFailed
from service.i18n import LOCAL_ZONE
from service.taxonomy import Taxonomy
from service.validation import no_control_characters, past_day

# The outcome of the proceedings, as far as the reporter or the counsellor knows it.
OUTCOMES = (
    "running",  # Ermittlungsverfahren läuft (§ 160 StPO)
    "dismissed_170",  # eingestellt mangels hinreichenden Tatverdachts (§ 170 Abs. 2 StPO)
    "dismissed_153",  # eingestellt wegen Geringfügigkeit (§ 153 StPO)
    "dismissed_153a",  # eingestellt gegen Auflagen oder Weisungen (§ 153a StPO)
    "private_prosecution",  # auf den Privatklageweg verwiesen (§§ 374, 376 StPO)
    "penal_order",  # Strafbefehl (§§ 407 ff. StPO)
    "indictment",  # Anklage erhoben (§ 170 Abs. 1 StPO)
    "judgment",  # Urteil
    "unknown",  # unbekannt
)
MAX_FILE_NUMBER_CHARS = 64


class Proceedings(BaseModel):
    """What is recorded of the proceedings of one incident; every field optional."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    complaint_on: date | None = Field(default=None, description="Strafanzeige filed on (§ 158 Abs. 1 StPO)")
    application_on: date | None = Field(
        default=None, description="Strafantrag filed on (§ 158 Abs. 2 StPO); stops the deadline reminders"
    )
    file_number: Annotated[str, StringConstraints(max_length=MAX_FILE_NUMBER_CHARS)] | None = Field(
        default=None, description="Aktenzeichen"
    )
    information_requested: bool = Field(
        default=False, description="Asked to be informed of the outcome (§ 406d StPO)"
    )
    information_requested_on: date | None = None
    outcome: str | None = Field(default=None, max_length=32, description="One of the outcome codes")

    @field_validator("complaint_on", "application_on", "information_requested_on", mode="after")
    @classmethod
    def _past(cls, value: date | None) -> date | None:
        return past_day(value)

    @field_validator("file_number", mode="after")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return no_control_characters(value) or None

    @field_validator("outcome", mode="after")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in OUTCOMES:
            raise ValueError("unknown outcome code")
        return value

    @model_validator(mode="after")
    def _requested_with_day(self) -> Proceedings:
        # A day of the § 406d request means it was made.
        if self.information_requested_on is not None:
            self.information_requested = True
        return self

    @property
    def empty(self) -> bool:
        return self == Proceedings()


class ProceedingsRecord(TypedDict, total=False):
    """``Proceedings`` as JSON (the API's case, the case file the pages read): days as ISO text. ``{}``
    stands for "nothing recorded" where a page wants a record either way, so every key may be missing."""

    complaint_on: str | None
    application_on: str | None
    file_number: str | None
    information_requested: bool
    information_requested_on: str | None
    outcome: str | None


def _context(case_id: str, incident_id: str) -> Context:
    return Context("proceedings", case_id=case_id, record_id=incident_id)


def read(key: bytes, incident: Incident) -> Proceedings | None:
    """The recorded proceedings of an incident, or None."""
    if incident.proceedings is None:
        return None
    data = json.loads(open_sealed(key, incident.proceedings, _context(incident.case_id, incident.id)))
    return Proceedings.model_validate(data)


def sealed(key: bytes, case_id: str, incident_id: str, proceedings: Proceedings | None) -> bytes | None:
    if proceedings is None or proceedings.empty:
        return None
    text = proceedings.model_dump_json(exclude_defaults=True)
    return seal(key, text.encode(), _context(case_id, incident_id))


def reminder_on(deadline: ComplaintDeadline, proceedings: Proceedings | None, today: date) -> date | None:
    """The clear reminder week of an incident: none once a Strafantrag is recorded (nothing to remind of),
    else the week of its deadline's first reminder (``reminder_week``). Every writer of the column calls this,
    so a reclassification or a new "perpetrator known since" never brings back the reminders."""
    if proceedings is not None and proceedings.application_on is not None:
        return None
    return reminder_week(deadline.ends_on, today)


def store(taxonomy: Taxonomy, key: bytes, incident: Incident, record: Proceedings) -> None:
    """Seal ``record`` into the incident (an empty record removes it) and set the clear reminder week that
    follows from it: none once a Strafantrag is recorded, the deadline's again if it is taken back."""
    context = Context("incident", case_id=incident.case_id, record_id=incident.id)
    payload: ReportPayload = json.loads(open_sealed(key, incident.payload, context))
    deadline = payload_complaint_deadline(taxonomy.has_complaint_only(list(incident.type_codes)), payload)
    incident.proceedings = sealed(key, incident.case_id, incident.id, record)
    incident.complaint_reminder_on = reminder_on(deadline, record, datetime.now(LOCAL_ZONE).date())


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def view(proceedings: Proceedings | None) -> ProceedingsRecord | None:
    """The record as JSON-able values (the API's case, the pages): what ``model_dump(mode="json")`` gives,
    field by field so that its shape is checked."""
    if proceedings is None:
        return None
    return ProceedingsRecord(
        complaint_on=_iso(proceedings.complaint_on),
        application_on=_iso(proceedings.application_on),
        file_number=proceedings.file_number,
        information_requested=proceedings.information_requested,
        information_requested_on=_iso(proceedings.information_requested_on),
        outcome=proceedings.outcome,
    )


# The proceedings form's fields (the staff case page and the reporter's /fall share it).
PROCEEDINGS_FIELDS = (
    "complaint_on",
    "application_on",
    "file_number",
    "information_requested",
    "information_requested_on",
    "outcome",
)


def proceedings_from_form(form: FormData | Mapping[str, str]) -> Proceedings:
    """The proceedings form's fields (staff and /fall share it) as the model, or ValidationFailed naming the
    field ("proceedings-" + its name); an empty date field is no date."""
    data: dict[str, str | bool] = {}
    for name in PROCEEDINGS_FIELDS:
        value = form.get(name)
        text = value.strip() if isinstance(value, str) else ""
        if name == "information_requested":
            data[name] = text == "yes"
        elif text:
            data[name] = text
    try:
        return Proceedings.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            [
                {
                    "loc": [f"proceedings-{error['loc'][0] if error['loc'] else 'form'}"],
                    "type": error["type"],
                    "msg": error["msg"],
                }
                for error in exc.errors()
            ]
        ) from None
