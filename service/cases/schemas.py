"""Shapes of counsellor case work: the API's bodies and answers, and the typed case file the service hands
to the pages and the API (frozen dataclasses: what crosses a module boundary is named and typed, not a
dict of whatever was decrypted). Times are ISO 8601 text, as the API has always sent them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from service.cases.events import Member
from service.cases.identifiers import TypedIdentifier
from service.cases.models import CaseOutcome, CaseStatus, GrantRole, MessageDirection
from service.cases.payload import ContactPayload, PerpetratorPayload, ReportPayload
from service.cases.proceedings import ProceedingsRecord
from service.evidence.attachments import AttachmentInfo, FileInfo
from service.routing.engine import StoredDecision
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


# A case named by another case's holder: its id, or the first characters of it (at least 8) as the case page
# shows them; a case the subject does not hold is a 404 like none.
CaseRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=36)]


class EventLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    other_case: CaseRef = Field(description="The other case (id or its first 8 characters)")
    other_seq: int = Field(ge=1, description="The number of the other case's incident")


class MergeProposalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    older_case: CaseRef = Field(
        description="The earlier case of the same reporter (id or its first 8 characters); this one is newer"
    )


# -- the typed case file ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxRow:
    """One case of the inbox: readable metadata only (nothing is decrypted to list cases)."""

    id: str
    status: CaseStatus
    urgency: str
    severity: int
    land: str
    district_ags: str | None
    type_codes: tuple[str, ...]
    incidents: int
    assignee_id: str | None
    labels: tuple[str, ...]
    created_at: str
    ack_deadline_at: str
    ack_overdue: bool
    acknowledged_at: str | None
    # The Monday of the week of the nearest Strafantrag deadline (the server keeps no exact day in clear).
    complaint_deadline_week: str | None
    reopened: bool


@dataclass(frozen=True)
class Perpetrator:
    """What the reporter said about the perpetrator of one incident (codes of the taxonomy, and text)."""

    familiarity: str | None = None
    residence: str | None = None
    number: str | None = None
    details: str | None = None
    # Since when the reporter knows who it was: the Strafantrag period starts then.
    known_on: str | None = None

    @classmethod
    def of(cls, data: PerpetratorPayload | None) -> Perpetrator:
        data = data or {}
        return cls(
            familiarity=data.get("familiarity"),
            residence=data.get("residence"),
            number=data.get("number"),
            details=data.get("details"),
            known_on=data.get("known_on"),
        )


class IncidentJson(ReportPayload):
    """An incident as the API sends it (``case_read.IncidentRead``): the clear fields beside the sealed
    record as filed, and the proceedings recorded of it."""

    id: str
    seq: int
    created_at: str
    type_codes: list[str]
    channel: str
    severity: int
    urgency: str | None
    complaint_deadline_on: str | None
    complaint_basis: str
    proceedings: ProceedingsRecord | None


@dataclass(frozen=True)
class IncidentFile:
    """One incident, decrypted. ``payload`` is the sealed record as filed (the API returns all of it);
    the fields below it are what the pages read of it."""

    id: str
    seq: int
    created_at: str
    type_codes: tuple[str, ...]
    channel: str
    severity: int
    urgency: str | None
    # The exact day, from the sealed date: the server keeps only a week of it in clear.
    complaint_deadline_on: str | None
    # What it was counted from: while the perpetrator is unknown the period has not begun.
    complaint_basis: str
    proceedings: ProceedingsRecord | None
    payload: ReportPayload

    @property
    def description(self) -> str:
        return str(self.payload.get("description") or "")

    @property
    def type_other(self) -> str:
        return str(self.payload.get("type_other") or "")

    @property
    def occurred_on(self) -> str | None:
        value = self.payload.get("occurred_on")
        return str(value) if value else None

    @property
    def place(self) -> str:
        return str(self.payload.get("place") or "")

    @property
    def platform(self) -> str:
        return str(self.payload.get("platform") or "")

    @property
    def url(self) -> str:
        return str(self.payload.get("url") or "")

    @property
    def perpetrator(self) -> Perpetrator:
        return Perpetrator.of(self.payload.get("perpetrator"))

    def as_json(self) -> IncidentJson:
        return {
            "id": self.id,
            "seq": self.seq,
            "created_at": self.created_at,
            "type_codes": list(self.type_codes),
            "channel": self.channel,
            "severity": self.severity,
            "urgency": self.urgency,
            "complaint_deadline_on": self.complaint_deadline_on,
            "complaint_basis": self.complaint_basis,
            **self.payload,
            "proceedings": self.proceedings.copy() if self.proceedings is not None else None,
        }


@dataclass(frozen=True)
class CaseMessageView:
    """One message of the two-way channel, decrypted, with the ids of the files sent with it."""

    id: str
    direction: MessageDirection
    author_id: str | None
    organisation_id: str | None
    created_at: str
    body: str
    attachment_ids: tuple[str, ...]

    @property
    def from_reporter(self) -> bool:
        return self.direction is MessageDirection.from_reporter


@dataclass(frozen=True)
class CaseNoteView:
    """An internal note, decrypted (the reporter never sees it)."""

    id: str
    author_id: str | None
    organisation_id: str | None
    created_at: str
    body: str


@dataclass(frozen=True)
class Holder:
    """An organisation holding the case key, and whether its access is open (escalation steps wait)."""

    organisation_id: str
    name: str
    role: GrantRole
    active: bool
    escalation_after_minutes: int | None


@dataclass(frozen=True)
class RoutingView:
    """One routing decision of the case: when, whether the fallback was used, and the decision as the
    engine recorded it (targets, escalation, deadline, policy version, reasons; codes only)."""

    created_at: str
    fallback_used: bool
    decision: StoredDecision

    def as_json(self) -> RoutingJson:
        return {"created_at": self.created_at, "fallback_used": self.fallback_used, **self.decision}


class RoutingJson(StoredDecision):
    """A routing decision in the API's case answer: the stored decision with the time it was made."""

    created_at: str


@dataclass(frozen=True)
class HistoryEntry:
    at: str
    action: str
    actor_id: str | None
    actor_kind: str


@dataclass(frozen=True)
class MergeView:
    """A pending merge the case is part of: as the newer case (the reporter confirms from it) or the older."""

    role: Literal["newer", "older"]
    other_case_id: str


class CaseJson(TypedDict):
    """The case as the API sends it, for ``case_read.CaseRead`` to check: the case file's fields in its
    order, the answers by kind (``ANSWER_KINDS``), tuples as lists. The records of the case's parts that are
    dataclasses here go as their fields (``dataclasses.asdict``); CaseRead names each of their keys."""

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
    reported_by: str
    support_needs: list[str]
    motives: list[str]
    bias: list[str]
    triggers: list[str]
    consequences: list[str]
    contact: ContactPayload | None
    perpetrator_identifiers: list[TypedIdentifier]
    incidents: list[IncidentJson]
    attachments: list[AttachmentInfo]
    messages: list[dict[str, object]]
    notes: list[dict[str, object]]
    holders: list[dict[str, object]]
    events: list[dict[str, object]]
    merge: dict[str, object] | None
    # The routing decision as recorded (``RoutingView.as_json``).
    routing: list[RoutingJson]
    history: list[dict[str, object]]


@dataclass(frozen=True)
class CaseFile:
    """The decrypted case as its holders see it (``CaseService.detail``, audited)."""

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
    labels: tuple[str, ...]
    outcome: CaseOutcome | None
    created_at: str
    ack_deadline_at: str
    acknowledged_at: str | None
    closed_at: str | None
    municipality: str | None
    targets: tuple[str, ...]
    # Cases filed before the question existed were filed by the person affected, as far as we know.
    reported_by: str
    support_needs: tuple[str, ...]
    # The report's answers of each kind (``ANSWER_KINDS``), as codes.
    answers: Mapping[str, tuple[str, ...]]
    contact: ContactPayload | None
    # The perpetrator identifiers the reporter gave for the matching, as typed (service/matching).
    perpetrator_identifiers: tuple[TypedIdentifier, ...]
    incidents: tuple[IncidentFile, ...]
    # service/evidence's description of each file (id, incident_id, message_id, filename, ...).
    attachments: tuple[AttachmentInfo, ...]
    messages: tuple[CaseMessageView, ...]
    notes: tuple[CaseNoteView, ...]
    holders: tuple[Holder, ...]
    # Incidents of other cases declared the same event: where they are, never what they say.
    events: tuple[Member, ...]
    merge: MergeView | None
    routing: tuple[RoutingView, ...]
    history: tuple[HistoryEntry, ...]

    def as_json(self) -> CaseJson:
        """The API's case (``CaseRead``), as it was sent before the case file was typed."""
        return {
            "id": self.id,
            "status": self.status,
            "urgency": self.urgency,
            "severity": self.severity,
            "land": self.land,
            "district_ags": self.district_ags,
            "office": self.office,
            "consent_counselling": self.consent_counselling,
            "consent_police": self.consent_police,
            "assignee_id": self.assignee_id,
            "labels": list(self.labels),
            "outcome": self.outcome,
            "created_at": self.created_at,
            "ack_deadline_at": self.ack_deadline_at,
            "acknowledged_at": self.acknowledged_at,
            "closed_at": self.closed_at,
            "municipality": self.municipality,
            "targets": list(self.targets),
            "reported_by": self.reported_by,
            "support_needs": list(self.support_needs),
            "motives": list(self.answers.get("motives", ())),
            "bias": list(self.answers.get("bias", ())),
            "triggers": list(self.answers.get("triggers", ())),
            "consequences": list(self.answers.get("consequences", ())),
            "contact": self.contact.copy() if self.contact is not None else None,
            "perpetrator_identifiers": [item.copy() for item in self.perpetrator_identifiers],
            "incidents": [incident.as_json() for incident in self.incidents],
            "attachments": [item.copy() for item in self.attachments],
            "messages": [dataclasses.asdict(message) for message in self.messages],
            "notes": [dataclasses.asdict(note) for note in self.notes],
            "holders": [dataclasses.asdict(holder) for holder in self.holders],
            "events": [dataclasses.asdict(member) for member in self.events],
            "merge": dataclasses.asdict(self.merge) if self.merge is not None else None,
            "routing": [record.as_json() for record in self.routing],
            "history": [dataclasses.asdict(entry) for entry in self.history],
        }


@dataclass(frozen=True)
class ReporterMessage:
    """A message as the reporter sees it on /fall: no staff identities, only the organisation's name."""

    direction: MessageDirection
    organisation: str | None
    created_at: str
    body: str
    attachments: tuple[FileInfo, ...]
