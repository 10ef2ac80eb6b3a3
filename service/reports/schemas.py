"""Request and response shapes of the intake.

Structure and sizes are checked here; codes are checked against the taxonomy in the service, because the
taxonomy is operator data. Unknown fields are refused (``extra="forbid"``): a client can never send a list
of recipients, or anything else we would silently ignore.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from service.cases.proceedings import Proceedings
from service.matching.schemas import PerpetratorIdentifier as PerpetratorIdentifier
from service.validation import FREE_TEXT_FIELDS as FREE_TEXT_FIELDS
from service.validation import Code, no_control_characters, past_day
from service.validation import is_control as is_control

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)]

DESCRIPTION_EXAMPLE = (
    "Nach der Ratssitzung am Dienstag erhielt ich drei E-Mails, in denen mir und meiner Familie "
    "Gewalt angedroht wurde. Der Absender nennt meine Wohnadresse."
)


class IncidentFields(BaseModel):
    """What happened: one incident. A case file collects several (repeated harassment is the normal case)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type_codes: list[Code] = Field(min_length=1, max_length=10, description="Incident type codes (taxonomy)")
    type_other: ShortText | None = Field(default=None, description="Free text for 'other' (encrypted)")
    description: LongText = Field(min_length=1, description="The account of what happened (encrypted)")
    occurred_on: date | None = Field(default=None, description="Date of the incident (encrypted; month kept)")
    channel: Code = Field(description="Channel or setting code (taxonomy)")
    place: ShortText | None = Field(default=None, description="Exact place (encrypted)")
    platform: ShortText | None = Field(default=None, description="Platform, for online incidents (encrypted)")
    url: ShortText | None = Field(default=None, description="Link to the content (encrypted)")
    perpetrator_familiarity: Code | None = None
    perpetrator_residence: Code | None = None
    perpetrator_number: Code | None = None
    perpetrator_details: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)] | None = (
        Field(default=None, description="What is known about the perpetrator (encrypted)")
    )
    urgency: Code = Field(default="normal", description="acute | high | normal")
    perpetrator_known_on: date | None = Field(
        default=None,
        description="Since when the reporter knows who the perpetrator is (encrypted): the three months for "
        "a Strafantrag start then (§ 77b Abs. 2 StGB)",
    )

    @field_validator(
        "type_other", "description", "place", "platform", "url", "perpetrator_details", mode="after"
    )
    @classmethod
    def _text_is_clean(cls, value: str | None) -> str | None:
        return no_control_characters(value)

    @field_validator("occurred_on", "perpetrator_known_on", mode="after")
    @classmethod
    def _not_in_future(cls, value: date | None) -> date | None:
        return past_day(value)


# At most this many perpetrator identifiers per case (the form offers one of each kind at a time).
MAX_IDENTIFIERS = 10


class MatchingConsent(BaseModel):
    """Perpetrator identifiers with the consent to match them; identifiers without the consent are refused
    (never stored: not as tokens, not sealed), so that nothing is kept for a purpose nobody agreed to."""

    perpetrator_identifiers: list[PerpetratorIdentifier] = Field(
        default_factory=list,
        max_length=MAX_IDENTIFIERS,
        description="Identifiers of the perpetrator for the repeat-perpetrator matching (needs "
        "consent_matching)",
    )
    consent_matching: bool = Field(
        default=False,
        validate_default=True,
        description="The identifiers may be compared, as keyed tokens, with those of other reports; the "
        "holders of a matching case are told that it shares an identifier, never with whom",
    )

    @field_validator("consent_matching", mode="after")
    @classmethod
    def _consent_given(cls, value: bool, info: ValidationInfo) -> bool:
        if info.data.get("perpetrator_identifiers") and not value:
            raise PydanticCustomError(
                "consent_required", "perpetrator identifiers are matched only with consent_matching"
            )
        return value


class IdentifiersAdd(MatchingConsent):
    """Identifiers added on /fall (with the consent, again)."""

    model_config = ConfigDict(extra="forbid")


class ReportCreate(IncidentFields, MatchingConsent):
    """A new report: the first incident plus who was targeted, where, and what the reporter agrees to."""

    land: Annotated[str, StringConstraints(pattern=r"^(0[1-9]|1[0-6])$")] = Field(
        description="Land code, first two digits of the AGS"
    )
    district_ags: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")] | None = Field(
        default=None, description="District (5-digit AGS); readable, never the municipality"
    )
    municipality: ShortText | None = Field(default=None, description="Municipality (encrypted)")
    targets: list[Code] = Field(default_factory=lambda: ["self"], min_length=1, max_length=10)
    office: Code | None = Field(
        default=None, description="Office or mandate held by the person affected (taxonomy)"
    )
    reported_by: Code = Field(
        default="self",
        description="Who reports: self (the person affected), someone_else (for a family member or a "
        "colleague) or administration (for its staff). Sealed with the case; routing rules may use it",
    )
    support_needs: list[Code] = Field(default_factory=list, max_length=12)
    # The KoMo-comparable questions, all optional and multi-select (taxonomy: motives, bias, triggers,
    # consequences). Sealed with the case; the statistics row keeps their top-level codes (clear-columns.md).
    motives: list[Code] = Field(default_factory=list, max_length=12, description="Presumed motive")
    bias: list[Code] = Field(default_factory=list, max_length=10, description="Identity-based bias")
    triggers: list[Code] = Field(default_factory=list, max_length=8, description="Trigger topic")
    consequences: list[Code] = Field(
        default_factory=list, max_length=20, description="Consequences, e.g. considered_resigning"
    )
    consent_counselling: bool = Field(default=True, description="Support organisations may contact me")
    consent_police: bool = Field(default=False, description="A police liaison may be involved")
    contact_name: ShortText | None = Field(default=None, description="Encrypted")
    contact_email: EmailStr | None = Field(default=None, description="Encrypted")
    contact_phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = Field(
        default=None, description="Encrypted"
    )
    notify_email: EmailStr | None = Field(
        default=None,
        description="Optional: told 'there is a new message for you' and nothing else (stored encrypted)",
    )

    @field_validator("municipality", "contact_name", "contact_phone", mode="after")
    @classmethod
    def _short_text_is_clean(cls, value: str | None) -> str | None:
        return no_control_characters(value)

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "land": "09",
                    "district_ags": "09162",
                    "municipality": "München",
                    "type_codes": ["A3a"],
                    "description": DESCRIPTION_EXAMPLE,
                    "occurred_on": "2026-11-03",
                    "channel": "email",
                    "targets": ["self", "partner"],
                    "office": "mayor_volunteer",
                    "reported_by": "self",
                    "urgency": "high",
                    "consequences": ["psychological.sleep", "considered_resigning"],
                    "consent_counselling": True,
                    "consent_police": False,
                }
            ]
        },
    )


class IncidentCreate(IncidentFields):
    """A further incident added by the reporter to an existing case file."""

    receipt: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The receipt code (sent in the body, never in a URL)"
    )


class ReceiptLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipt: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class KeyHolderRead(BaseModel):
    """An organisation that holds the key to the case: it can read it, now or when its access opens."""

    name: str
    role: str = Field(
        description="target, escalation (a stand-in that opens the case if unacknowledged) or referral"
    )
    active: bool = Field(description="Sees the case now")
    escalation_after_minutes: int | None = Field(
        description="A stand-in: opens the case this long after filing if nobody acknowledged it"
    )


class ReportCreated(BaseModel):
    receipt: str = Field(description="Keep this code: it is the only key to your case file")
    routed_to: list[str] = Field(description="Display names of the organisations that received the case")
    key_holders: list[KeyHolderRead] = Field(
        description="Every organisation that holds the case key from now on, stand-ins included"
    )
    ack_deadline_minutes: int = Field(
        description="The target: within this time someone acknowledges the report"
    )


class IncidentSummary(BaseModel):
    seq: int
    type_codes: list[str]
    channel: str
    created_at: str
    description: str
    occurred_on: str | None
    attachments: int


class FileForReporter(BaseModel):
    id: str = Field(description="Download with POST /api/v1/reports/attachments/{id} and the receipt")
    filename: str
    content_type: str
    size_bytes: int


class MessageForReporter(BaseModel):
    direction: str = Field(description="to_reporter (from the counselling organisation) or from_reporter")
    organisation: str | None
    created_at: str
    body: str
    attachments: list[FileForReporter] = []


class CaseForReporter(BaseModel):
    status: str
    created_at: str
    acknowledged_on: str | None = Field(description="The day a counsellor acknowledged the report")
    first_reply_on: str | None = Field(description="The day of the first message to the reporter")
    organisations: list[str] = Field(description="The organisations that see the case now")
    key_holders: list[KeyHolderRead] = Field(description="Every organisation that holds the case key")
    incidents: list[IncidentSummary]
    messages: list[MessageForReporter]
    notify: bool = Field(description="Whether an address is told (content-free) of new messages")


class NotifyAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notify_email: EmailStr | None = Field(description="The address to tell of new messages; null removes it")


class PerpetratorKnown(BaseModel):
    """The reporter's "perpetrator known since" for one incident of their case (/fall); null takes it back."""

    model_config = ConfigDict(extra="forbid")
    seq: int = Field(ge=1, le=10_000)
    perpetrator_known_on: date | None = None

    @field_validator("perpetrator_known_on", mode="after")
    @classmethod
    def _not_in_future(cls, value: date | None) -> date | None:
        return past_day(value)


class IncidentAdded(BaseModel):
    seq: int


class ReceiptNotify(NotifyAddress):
    receipt: Annotated[str, StringConstraints(min_length=1, max_length=64)]


# -- the reporter's follow-up over the API (the receipt in the body, never in a URL) ------------------------
_Receipt = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ReceiptIdentifiers(IdentifiersAdd):
    receipt: _Receipt


class IdentifiersSaved(BaseModel):
    registered: bool = Field(
        description="Compared now; false: kept sealed and compared when the hourly budget allows (at the "
        "next sign-in or by a counselling organisation)"
    )


class ReceiptPerpetratorKnown(PerpetratorKnown):
    receipt: _Receipt


class ReceiptProceedings(Proceedings):
    receipt: _Receipt
    seq: int = Field(ge=1, le=10_000, description="The number of the incident in the case")
