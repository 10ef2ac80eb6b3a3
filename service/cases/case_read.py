"""The decrypted case as the JSON API sends it (``GET /api/v1/cases/{id}``): every field declared, so the
OpenAPI document describes the case file and nothing reaches a client that these models do not name.
Built from the typed case file (``schemas.CaseFile.as_json``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.cases.models import CaseOutcome, CaseStatus, GrantRole, MessageDirection


class _Read(BaseModel):
    # What the API sends is exactly what is declared here: a field the case file gains without a place
    # in these models is an error in the tests, not a silent addition to (or loss from) the contract.
    model_config = ConfigDict(extra="forbid")


class PerpetratorRead(_Read):
    familiarity: str | None = None
    residence: str | None = None
    number: str | None = None
    details: str | None = None
    known_on: str | None = Field(default=None, description="Since when the reporter knows who it was")


class ProceedingsRead(_Read):
    complaint_on: str | None = None
    application_on: str | None = None
    file_number: str | None = None
    information_requested: bool = False
    information_requested_on: str | None = None
    outcome: str | None = None


class IncidentRead(_Read):
    id: str
    seq: int
    created_at: str
    type_codes: list[str]
    channel: str
    severity: int
    urgency: str | None
    complaint_deadline_on: str | None = Field(description="The Strafantrag deadline (complaint offences)")
    complaint_basis: str
    # The sealed record as filed.
    description: str = Field(description="Exactly as filed")
    type_other: str | None = None
    occurred_on: str | None = None
    place: str | None = None
    platform: str | None = None
    url: str | None = None
    perpetrator: PerpetratorRead | None = None
    proceedings: ProceedingsRead | None


class ContactRead(_Read):
    name: str | None
    email: str | None
    phone: str | None


class IdentifierRead(_Read):
    kind: str
    value: str
    platform: str | None = None


class AttachmentRead(_Read):
    id: str
    incident_id: str | None
    message_id: str | None
    filename: str
    content_type: str
    size_bytes: int
    uploaded_by: str


class MessageRead(_Read):
    id: str
    direction: MessageDirection
    author_id: str | None
    organisation_id: str | None
    created_at: str
    body: str
    attachment_ids: list[str]


class NoteRead(_Read):
    id: str
    author_id: str | None
    organisation_id: str | None
    created_at: str
    body: str


class HolderRead(_Read):
    organisation_id: str
    name: str
    role: GrantRole
    active: bool
    escalation_after_minutes: int | None


class EventMemberRead(_Read):
    incident_seq: int = Field(description="The incident of this case")
    case_id: str = Field(description="A case of the same event (one the organisation holds may open)")
    seq: int


class MergeRead(_Read):
    role: Literal["newer", "older"]
    other_case_id: str


class EscalationStepRead(_Read):
    org: str
    after_minutes: int


class ReasonRead(_Read):
    rule_id: str | None
    kind: str
    detail: str


class RoutingRead(_Read):
    created_at: str
    fallback_used: bool
    format: int
    policy_version: str
    targets: list[str]
    escalation: list[EscalationStepRead]
    ack_deadline_minutes: int
    reasons: list[ReasonRead]


class HistoryRead(_Read):
    at: str
    action: str
    actor_id: str | None
    actor_kind: str


class CaseRead(_Read):
    """The decrypted case file (audited as ``case.decrypt``). Incidents carry ``description`` exactly as
    filed; nothing of another case but where its linked incidents are."""

    id: str
    status: CaseStatus
    urgency: str
    severity: int
    land: str
    district_ags: str | None
    office: str | None
    consent_counselling: bool
    consent_police: bool
    assignee_id: str | None
    labels: list[str]
    outcome: CaseOutcome | None
    created_at: str
    ack_deadline_at: str
    acknowledged_at: str | None
    closed_at: str | None
    municipality: str | None
    targets: list[str]
    reported_by: str = Field(
        default="self", description="Who reported: self, someone_else or administration (for its staff)"
    )
    support_needs: list[str]
    motives: list[str]
    bias: list[str]
    triggers: list[str]
    consequences: list[str]
    contact: ContactRead | None
    perpetrator_identifiers: list[IdentifierRead]
    incidents: list[IncidentRead]
    attachments: list[AttachmentRead]
    messages: list[MessageRead]
    notes: list[NoteRead]
    holders: list[HolderRead]
    events: list[EventMemberRead]
    merge: MergeRead | None
    routing: list[RoutingRead]
    history: list[HistoryRead]
