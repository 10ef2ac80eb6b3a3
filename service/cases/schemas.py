"""API shapes of counsellor case work."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from service.validation import no_control_characters

MessageText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


class CaseUpdate(BaseModel):
    """PATCH body: only the fields that are sent change."""

    model_config = ConfigDict(extra="forbid")

    acknowledge: bool = False
    status: str | None = Field(default=None, max_length=32)
    outcome: str | None = Field(default=None, max_length=32)
    assignee_id: str | None = Field(default=None, min_length=1, max_length=36)
    unassign: bool = False
    labels: list[Annotated[str, StringConstraints(max_length=32)]] | None = Field(default=None, max_length=16)


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: MessageText = Field(description="The message (encrypted with the case key)")

    @field_validator("body", mode="after")
    @classmethod
    def _clean(cls, value: str) -> str | None:
        return no_control_characters(value)


class ReporterMessageCreate(MessageCreate):
    receipt: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Created(BaseModel):
    id: str


class CaseSummary(BaseModel):
    id: str
    status: str
    urgency: str
    severity: int
    land: str
    district_ags: str | None
    type_codes: list[str]
    incidents: int
    assignee_id: str | None
    labels: list[str]
    created_at: str
    ack_deadline_at: str
    ack_overdue: bool
    acknowledged_at: str | None
    # The Monday of the week in which the nearest Strafantrag deadline falls: the list decrypts nothing, and
    # the server keeps no exact day in clear (the case itself has it, ``CaseRead.incidents``).
    complaint_deadline_week: str | None
    # Reopened by a further incident after it was closed (the new threat is why it is back in the inbox).
    reopened: bool = False


class CaseRead(BaseModel):
    """The decrypted case file. Incidents carry `description` exactly as filed."""

    model_config = ConfigDict(extra="allow")

    id: str
    status: str
    reported_by: str = Field(
        default="self", description="Who reported: self, someone_else or administration (for its staff)"
    )
    incidents: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    holders: list[dict[str, Any]]
    routing: list[dict[str, Any]]
    history: list[dict[str, Any]]


class Reclassification(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type_codes: list[Annotated[str, StringConstraints(max_length=16)]] = Field(min_length=1, max_length=10)


class ReferralCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organisation: str = Field(max_length=64, description="Slug of the receiving organisation")
    transfer: bool = Field(default=False, description="True: hand over and end our own access")
    reporter_consent: bool = Field(
        description="The reporter agreed to this referral (recorded in the audit log)"
    )
