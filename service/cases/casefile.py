"""The typed case file read from its rows: the inbox's metadata (nothing decrypted) and the whole case
decrypted with its key (``service/cases/schemas.py``). No access checks and no audit here: CaseService
opens the case for its subject and audits every decryption."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy.orm import Session

from service.cases import events, proceedings, repository
from service.cases.deadlines import ComplaintDeadline, ReminderWeek, payload_complaint_deadline
from service.cases.identifiers import open_typed
from service.cases.models import Case, CaseOutcome, CaseStatus, GrantRole, MessageDirection
from service.cases.payload import ContactPayload, ReportPayload
from service.cases.schemas import (
    CaseFile,
    CaseMessageView,
    CaseNoteView,
    HistoryEntry,
    Holder,
    InboxRow,
    IncidentFile,
    MergeView,
    RoutingView,
)
from service.crypto import Context, open_sealed
from service.evidence import attachments as files
from service.evidence.attachments import AttachmentInfo
from service.taxonomy import Taxonomy
from service.taxonomy.loader import ANSWER_KINDS


def _ctx(purpose: str, case_id: str, record_id: str = "") -> Context:
    return Context(purpose, case_id=case_id, record_id=record_id)


def iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def incident_deadline(
    taxonomy: Taxonomy, type_codes: Sequence[str], payload: ReportPayload
) -> ComplaintDeadline:
    """The Strafantrag deadline of an incident, from its sealed dates (the incident, and since when the
    perpetrator is known) and its (clear) type codes; no day while the perpetrator is unknown."""
    return payload_complaint_deadline(taxonomy.has_complaint_only(list(type_codes)), payload)


def inbox_row(case: Case, now: datetime) -> InboxRow:
    """Readable metadata only: nothing is decrypted to list cases.

    So the Strafantrag deadline is shown as the week it falls in (from the clear reminder date), not as
    the day: decrypting every listed case would unwrap up to a page of case keys and write as many
    ``case.decrypt`` events for a glance at the list. The case page shows the exact day."""
    weeks = [
        ReminderWeek(i.complaint_reminder_on).deadline_from
        for i in case.incidents
        if i.complaint_reminder_on is not None
    ]
    return InboxRow(
        id=case.id,
        status=CaseStatus(case.status),
        urgency=case.urgency,
        severity=case.severity,
        land=case.land,
        district_ags=case.district_ags,
        type_codes=tuple(sorted({code for i in case.incidents for code in i.type_codes})),
        incidents=len(case.incidents),
        assignee_id=case.assignee_id,
        labels=tuple(case.labels or []),
        created_at=case.created_at.isoformat(),
        ack_deadline_at=case.ack_deadline_at.isoformat(),
        ack_overdue=case.acknowledged_at is None and case.ack_deadline_at < now,
        acknowledged_at=iso(case.acknowledged_at),
        complaint_deadline_week=iso(min(weeks)) if weeks else None,
        reopened=case.reopened_at is not None,
    )


def read_case_file(session: Session, case: Case, key: bytes, taxonomy: Taxonomy) -> CaseFile:
    """The case decrypted with its data key (which the caller's access check gave it); the caller audits."""
    details = json.loads(open_sealed(key, case.details_ciphertext, _ctx("case_details", case.id)))
    contact: ContactPayload | None = (
        json.loads(open_sealed(key, case.contact_ciphertext, _ctx("contact", case.id)))
        if case.contact_ciphertext
        else None
    )
    incidents = []
    for incident in case.incidents:
        payload: ReportPayload = json.loads(
            open_sealed(key, incident.payload, _ctx("incident", case.id, incident.id))
        )
        deadline = incident_deadline(taxonomy, incident.type_codes, payload)
        incidents.append(
            IncidentFile(
                id=incident.id,
                seq=incident.seq,
                created_at=incident.created_at.isoformat(),
                type_codes=tuple(incident.type_codes),
                channel=incident.channel,
                severity=incident.severity,
                urgency=incident.urgency,
                complaint_deadline_on=iso(deadline.ends_on),
                complaint_basis=deadline.basis.value,
                proceedings=proceedings.view(proceedings.read(key, incident)),
                payload=payload,
            )
        )
    attachments = files.describe(session, case.id, key)
    return CaseFile(
        id=case.id,
        status=CaseStatus(case.status),
        urgency=case.urgency,
        severity=case.severity,
        land=case.land,
        district_ags=case.district_ags,
        office=case.office,
        consent_counselling=case.consent_counselling,
        consent_police=case.consent_police,
        assignee_id=case.assignee_id,
        labels=tuple(case.labels or []),
        outcome=CaseOutcome(case.outcome) if case.outcome else None,
        created_at=case.created_at.isoformat(),
        ack_deadline_at=case.ack_deadline_at.isoformat(),
        acknowledged_at=iso(case.acknowledged_at),
        closed_at=iso(case.closed_at),
        municipality=details.get("municipality"),
        targets=tuple(details.get("targets", [])),
        reported_by=details.get("reported_by", "self"),
        support_needs=tuple(details.get("support_needs", [])),
        answers={kind: tuple(details.get(kind, [])) for kind in ANSWER_KINDS},
        contact=contact,
        perpetrator_identifiers=tuple(open_typed(key, case.id, case.perpetrator_ciphertext)),
        incidents=tuple(incidents),
        attachments=tuple(attachments),
        messages=_messages(session, case.id, key, attachments),
        notes=_notes(session, case.id, key),
        holders=tuple(
            Holder(
                organisation_id=org.id,
                name=org.display_name,
                role=GrantRole(grant.role),
                active=grant.active,
                escalation_after_minutes=grant.escalation_after_minutes,
            )
            for org, grant in repository.holders(session, case.id)
        ),
        events=tuple(events.members(session, case.id)),
        merge=merge_view(session, case.id),
        routing=tuple(
            RoutingView(
                created_at=record.created_at.isoformat(),
                fallback_used=record.fallback_used,
                decision=record.decision,
            )
            for record in repository.routing_records(session, case.id)
        ),
        history=tuple(
            HistoryEntry(
                at=event.at.isoformat(),
                action=event.action,
                actor_id=event.actor_id,
                actor_kind=event.actor_kind,
            )
            for event in repository.history(session, case.id)
        ),
    )


def _messages(
    session: Session, case_id: str, key: bytes, attachments: list[AttachmentInfo]
) -> tuple[CaseMessageView, ...]:
    return tuple(
        CaseMessageView(
            id=message.id,
            direction=MessageDirection(message.direction),
            author_id=message.author_id,
            organisation_id=message.organisation_id,
            created_at=message.created_at.isoformat(),
            body=open_sealed(key, message.ciphertext, _ctx("message", case_id, message.id)).decode(),
            attachment_ids=tuple(item["id"] for item in attachments if item["message_id"] == message.id),
        )
        for message in repository.messages(session, case_id)
    )


def _notes(session: Session, case_id: str, key: bytes) -> tuple[CaseNoteView, ...]:
    return tuple(
        CaseNoteView(
            id=note.id,
            author_id=note.author_id,
            organisation_id=note.organisation_id,
            created_at=note.created_at.isoformat(),
            body=open_sealed(key, note.ciphertext, _ctx("note", case_id, note.id)).decode(),
        )
        for note in repository.notes(session, case_id)
    )


def merge_view(session: Session, case_id: str) -> MergeView | None:
    pending = repository.merge_proposal_of(session, case_id)
    if pending is None:
        return None
    if pending.newer_case_id == case_id:
        return MergeView(role="newer", other_case_id=pending.older_case_id)
    return MergeView(role="older", other_case_id=pending.newer_case_id)
