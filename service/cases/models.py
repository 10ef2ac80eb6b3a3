"""Case files, their incidents, wrapped keys and routing decisions (the attachment row: service/evidence).

Readable columns are only what routing, deadlines and statistics need (docs/security.md, "What stays
readable"); everything a reporter wrote is ciphertext under the case data key.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import ID_TYPE, MINUTE, SECOND, Base, UTCDateTime, new_id, utcnow
from service.identity.models import CaseKeyGrant
from service.routing.engine import StoredDecision


class CaseStatus(StrEnum):
    new = "new"
    acknowledged = "acknowledged"
    in_progress = "in_progress"
    referred = "referred"
    waiting_for_reporter = "waiting_for_reporter"
    closed = "closed"


class CaseOutcome(StrEnum):
    """Why a case was closed (a closed case needs one; the retention periods depend on it)."""

    supported = "supported"
    referred_elsewhere = "referred_elsewhere"
    no_contact = "no_contact"
    withdrawn = "withdrawn"
    duplicate = "duplicate"
    other = "other"


class CaseLabel(StrEnum):
    """The counsellors' labels of a case (for their own filtering, never for the reporter)."""

    follow_up = "follow_up"
    legal = "legal"
    press = "press"
    police = "police"
    security = "security"
    psychosocial = "psychosocial"
    online = "online"
    repeat = "repeat"


class GrantRole(StrEnum):
    target = "target"
    escalation = "escalation"
    referral = "referral"


class Case(Base):
    __tablename__ = "case_file"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    # HMAC(pepper, receipt): the only way from a receipt to its case; useless without the pepper.
    lookup_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # Which lookup pepper ``lookup_hash`` is under (pepper_id, hex): during a rotation the cases still under
    # the previous one are counted by it (`rueckhalt secrets status`). NULL: written before it was recorded,
    # under the pepper in force then (a rotation names it before it begins).
    lookup_key_id: Mapped[str | None] = mapped_column(String(8), nullable=True)
    reporter_salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    reporter_wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(32), default=CaseStatus.new.value)
    urgency: Mapped[str] = mapped_column(String(16))
    severity: Mapped[int] = mapped_column(Integer)
    land: Mapped[str] = mapped_column(String(2))
    district_ags: Mapped[str | None] = mapped_column(String(5), nullable=True)
    office: Mapped[str | None] = mapped_column(String(64), nullable=True)
    consent_counselling: Mapped[bool] = mapped_column(Boolean, default=True)
    consent_police: Mapped[bool] = mapped_column(Boolean, default=False)
    # Filed by the demo loader (embedded mode only, service/demo.py): a made-up case, never a reporter's.
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    # Municipality, targets, who reports, support needs and the optional KoMo answers, sealed with the
    # case key.
    details_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # Optional contact details (name, mail, phone), sealed with the case key.
    contact_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The reporter's optional address for "there is a new message for you", sealed with the service's
    # notification key (not the case key): the worker that sends the mail holds no case key.
    notify_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The perpetrator identifiers the reporter gave for the repeat-perpetrator matching, as typed, sealed with
    # the case key; NULL without consent or after its withdrawal (service/matching, docs/matching.md).
    perpetrator_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    ack_deadline_at: Mapped[datetime] = mapped_column(MINUTE)
    acknowledged_at: Mapped[datetime | None] = mapped_column(MINUTE, nullable=True)
    assignee_id: Mapped[str | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # Free labels chosen by counsellors from a short code list (never free text: they stay readable).
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(MINUTE, nullable=True)
    # When a further incident last opened the closed case again: its escalation timers count from here
    # instead of from ``created_at`` (the same minute as that incident's own ``created_at``).
    reopened_at: Mapped[datetime | None] = mapped_column(MINUTE, nullable=True)
    created_at: Mapped[datetime] = mapped_column(MINUTE, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(MINUTE, default=utcnow)

    incidents: Mapped[list[Incident]] = relationship(
        back_populates="case", order_by="Incident.seq", cascade="all, delete-orphan"
    )
    grants: Mapped[list[CaseKeyGrant]] = relationship(cascade="all, delete-orphan")

    __table_args__ = (Index("ix_case_file_status_land", "status", "land"),)


class Incident(Base):
    __tablename__ = "incident"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    type_codes: Mapped[list[str]] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(64))
    channel_online: Mapped[bool] = mapped_column(Boolean)
    severity: Mapped[int] = mapped_column(Integer)
    urgency: Mapped[str] = mapped_column(String(16))
    # The exact date and the Strafantrag deadline are in the sealed payload only. For a complaint-only offence
    # with a deadline still ahead, this is the Monday of the week in which the first reminder is due: what the
    # beat needs to remind without a key, a week wide on purpose (service/cases/deadlines.py).
    complaint_reminder_on: Mapped[date | None] = mapped_column(Date, nullable=True, index=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # The id of this incident's statistics row, sealed with the case key (see the intake).
    extract_ref: Mapped[bytes] = mapped_column(LargeBinary)
    # The criminal proceedings of this incident (Strafanzeige, Strafantrag, Aktenzeichen, § 406d StPO,
    # outcome), sealed with the case key; None until someone records them (service/cases/proceedings.py).
    # A recorded Strafantrag leaves no clear trace but one: ``complaint_reminder_on`` is NULL (nothing to
    # remind of), as for a deadline that has passed.
    proceedings: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(MINUTE, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="incidents")

    __table_args__ = (UniqueConstraint("case_id", "seq", name="uq_incident_case_seq"),)


# Relationships below exist so that the unit of work inserts parents before children in a single flush
# (it orders by relationships, not by foreign keys alone); intake code sets the id columns directly.


class RoutingRecord(Base):
    """The routing decision with its reasons, kept with the case (which rule, which condition)."""

    __tablename__ = "routing_record"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    incident_id: Mapped[str | None] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), nullable=True
    )
    policy_version: Mapped[str] = mapped_column(String(64))
    fallback_used: Mapped[bool] = mapped_column(Boolean)
    # Written only by RoutingDecision.to_dict (service/routing/engine.py), in its stored format.
    decision: Mapped[StoredDecision] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(MINUTE, default=utcnow)

    case: Mapped[Case] = relationship()
    incident: Mapped[Incident | None] = relationship()


class MessageDirection(StrEnum):
    to_reporter = "to_reporter"
    from_reporter = "from_reporter"


class CaseMessage(Base):
    """The anonymous two-way channel: sealed with the case key, readable by the reporter and the holders."""

    __tablename__ = "case_message"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    # Who wrote it on the staff side (None for the reporter) and for which organisation.
    author_id: Mapped[str | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL"), nullable=True
    )
    organisation_id: Mapped[str | None] = mapped_column(ForeignKey("organisation.id"), nullable=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # To the second, not the minute: the conversation is ordered by it, and the reporter-waiting reminder
    # looks for each case's last message.
    # Full precision: the conversation is shown in this order, and two messages within one second (a reply
    # sent at once, a file with its note) must not swap places. ``read_at`` needs only the second.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(SECOND, nullable=True)


class CaseNote(Base):
    """Internal notes of the holding organisations; the reporter never sees them."""

    __tablename__ = "case_note"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL"), nullable=True
    )
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(MINUTE, default=utcnow)


class ReminderLog(Base):
    """Which reminder went out for which case: each is sent once, however often the beat task runs."""

    __tablename__ = "reminder_log"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    # What the reminder is about within the case (an incident, a message, an organisation).
    ref: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(MINUTE, default=utcnow)

    __table_args__ = (UniqueConstraint("case_id", "kind", "ref"),)


class EventLink(Base):
    """An incident that counsellors declared the same event as incidents of other cases (one council
    meeting, one posting seen by many): the incidents sharing an ``event_id`` are one event.

    Clear, and only this: which incidents belong together (docs/clear-columns.md). No time, no author (the
    audit log has both), no case id (the incident row has it). The statistics rows of the incidents carry a
    keyed token of ``event_id`` that a thief of the database cannot join to it (service/cases/events.py).
    """

    __tablename__ = "event_link"

    incident_id: Mapped[str] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[str] = mapped_column(ID_TYPE, index=True)


class MergeProposal(Base):
    """A counsellor holding both cases proposes that a newer case (filed again after a lost receipt) be
    merged into an older one; nothing moves until the reporter confirms from the newer case (/fall).

    ``older_key`` is the older case's data key sealed under the newer case's key: whoever holds the newer
    case's key can then do the merge, and that is the reporter (the receipt) and the holders of the newer
    case, each of whom also holds the older case (checked when proposing, and again when confirming;
    service/cases/merge.py). One proposal per newer case; deleted with either case.
    """

    __tablename__ = "merge_proposal"

    newer_case_id: Mapped[str] = mapped_column(
        ForeignKey("case_file.id", ondelete="CASCADE"), primary_key=True
    )
    older_case_id: Mapped[str] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    older_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(MINUTE, default=utcnow)
