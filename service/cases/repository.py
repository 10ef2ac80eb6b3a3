"""Case queries for staff. Every read takes the organisations of the subject: a case is visible only
through an active key grant to one of them, so a case the subject may not see is simply not found (404).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from string import ascii_lowercase

from sqlalchemy import (
    ColumnElement,
    Delete,
    Select,
    case,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session, selectinload

from service.audit.models import AuditEvent
from service.cases.models import (
    Case,
    CaseMessage,
    CaseNote,
    EventLink,
    GrantRole,
    Incident,
    MergeProposal,
    ReminderLog,
    RoutingRecord,
)
from service.evidence.models import Attachment
from service.identity.models import CaseKeyGrant, Organisation, StaffUser
from service.taxonomy import parse_type_code


@dataclass(frozen=True)
class CaseFilters:
    status: str | None = None
    urgency: str | None = None
    land: str | None = None
    type_code: str | None = None
    assignee_id: str | None = None
    limit: int = 200


def _visible(organisation_ids: Collection[str]) -> Select[Case]:
    granted = exists().where(
        CaseKeyGrant.case_id == Case.id,
        CaseKeyGrant.active.is_(True),
        CaseKeyGrant.organisation_id.in_(list(organisation_ids)),
    )
    return select(Case).where(granted)


def visible_cases(
    session: Session, organisation_ids: Collection[str], filters: CaseFilters
) -> Sequence[Case]:
    """At most ``filters.limit`` cases, oldest acknowledgement deadline first; every filter runs in SQL
    before the limit, so a filtered list is the first cases that match, not the matches among the first."""
    if not organisation_ids:
        return []
    stmt = _visible(organisation_ids).options(selectinload(Case.incidents))
    if filters.status:
        stmt = stmt.where(Case.status == filters.status)
    if filters.urgency:
        stmt = stmt.where(Case.urgency == filters.urgency)
    if filters.land:
        stmt = stmt.where(Case.land == filters.land)
    if filters.assignee_id:
        stmt = stmt.where(Case.assignee_id == filters.assignee_id)
    if filters.type_code:
        stmt = stmt.where(_has_type(session, filters.type_code))
    stmt = stmt.order_by(Case.ack_deadline_at.asc(), Case.id).limit(filters.limit)
    return session.scalars(stmt).all()


def _has_type(session: Session, selector: str) -> ColumnElement[bool]:
    """An incident of the case has a type code that ``selector`` covers (``type_code_matches``' rule).

    Type codes are clear JSON arrays on the incidents (the inbox decrypts nothing). Each database has its
    own set-returning function to read such an array as rows: ``json_each`` in SQLite,
    ``json_array_elements_text`` in PostgreSQL (the column is ``json`` there); both may refer to the
    incident they are joined to.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    expand = func.json_array_elements_text if postgres else func.json_each
    codes = expand(Incident.type_codes).table_valued("value").alias("code")
    return exists(
        select(1)
        .select_from(Incident)
        .join(codes, true())
        .where(Incident.case_id == Case.id, _code_covered(codes.c.value, selector))
    )


def _code_covered(code: ColumnElement[str], selector: str) -> ColumnElement[bool]:
    """SQL for ``type_code_matches(code, selector)`` on codes of the grammar (the intake stores no other):
    a group covers every code with its letter, a type itself and its sub-types (``A3``: ``A3``, ``A3a``,
    not ``A30``), a sub-type only itself. A selector outside the grammar covers nothing."""
    wanted = parse_type_code(selector)
    if wanted is None:
        return false()
    if wanted.number is None:
        return func.substr(code, 1, 1) == wanted.group
    if wanted.sub is None:
        return code.in_([selector, *(selector + sub for sub in ascii_lowercase)])
    return code == selector


def visible_case(session: Session, organisation_ids: Collection[str], case_id: str) -> Case | None:
    if not organisation_ids:
        return None
    return session.scalar(_visible(organisation_ids).where(Case.id == case_id))


def visible_case_by_ref(session: Session, organisation_ids: Collection[str], ref: str) -> Case | None:
    """A case of the subject named by its id or by the reference pages show (the id's first 8 characters);
    None when no case or more than one of the subject's matches (also for a case of others: 404)."""
    ref = ref.strip().lower()
    if not organisation_ids or not (_REF.match(ref) or _FULL_ID.match(ref)):
        return None
    found = session.scalars(_visible(organisation_ids).where(Case.id.startswith(ref)).limit(2)).all()
    return found[0] if len(found) == 1 else None


_REF = re.compile(r"^[0-9a-f]{8}$")
_FULL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def granted_organisation_ids(session: Session, case_id: str) -> set[str]:
    """Every organisation holding the case key, whether its access is open or not (escalation steps)."""
    return set(session.scalars(select(CaseKeyGrant.organisation_id).where(CaseKeyGrant.case_id == case_id)))


def merge_proposal_of(session: Session, case_id: str) -> MergeProposal | None:
    """The pending merge the case is part of, as the newer or the older case."""
    return session.scalar(
        select(MergeProposal)
        .where(or_(MergeProposal.newer_case_id == case_id, MergeProposal.older_case_id == case_id))
        .limit(1)
    )


def delete_merge_proposals(session: Session, case_id: str) -> None:
    """Every pending merge naming the case, as the newer or the older one."""
    session.execute(
        delete(MergeProposal).where(
            or_(MergeProposal.newer_case_id == case_id, MergeProposal.older_case_id == case_id)
        )
    )


def active_grants(
    session: Session, case_id: str, organisation_ids: Collection[str]
) -> Sequence[CaseKeyGrant]:
    return session.scalars(
        select(CaseKeyGrant).where(
            CaseKeyGrant.case_id == case_id,
            CaseKeyGrant.active.is_(True),
            CaseKeyGrant.organisation_id.in_(list(organisation_ids)),
        )
    ).all()


# The grants of one filing share their time: targets first, then the escalation chain in its order.
_GRANT_ORDER = (
    CaseKeyGrant.granted_at,
    case(
        (CaseKeyGrant.role == GrantRole.target.value, 0),
        (CaseKeyGrant.role == GrantRole.escalation.value, 1),
        else_=2,
    ),
    CaseKeyGrant.escalation_after_minutes,
    CaseKeyGrant.organisation_id,
)


def holders(session: Session, case_id: str) -> Sequence[tuple[Organisation, CaseKeyGrant]]:
    rows = session.execute(
        select(Organisation, CaseKeyGrant)
        .join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
        .where(CaseKeyGrant.case_id == case_id)
        .order_by(*_GRANT_ORDER)
    ).all()
    return [(row[0], row[1]) for row in rows]


def active_holder_names(session: Session, case_id: str) -> list[str]:
    """The display names of the organisations that see the case now (a neutral label for a linked case)."""
    return list(
        session.scalars(
            select(Organisation.display_name)
            .join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
            .where(CaseKeyGrant.case_id == case_id, CaseKeyGrant.active.is_(True))
            .order_by(Organisation.display_name)
        )
    )


def routing_records(session: Session, case_id: str) -> Sequence[RoutingRecord]:
    return session.scalars(
        select(RoutingRecord).where(RoutingRecord.case_id == case_id).order_by(RoutingRecord.created_at)
    ).all()


def messages(session: Session, case_id: str) -> Sequence[CaseMessage]:
    return session.scalars(
        select(CaseMessage)
        .where(CaseMessage.case_id == case_id)
        .order_by(CaseMessage.created_at, CaseMessage.id)
    ).all()


def notes(session: Session, case_id: str) -> Sequence[CaseNote]:
    return session.scalars(
        select(CaseNote).where(CaseNote.case_id == case_id).order_by(CaseNote.created_at, CaseNote.id)
    ).all()


def history(session: Session, case_id: str) -> Sequence[AuditEvent]:
    return session.scalars(
        select(AuditEvent)
        .where(AuditEvent.object_type == "case", AuditEvent.object_id == case_id)
        .order_by(AuditEvent.seq)
    ).all()


def grant_of(session: Session, case_id: str, organisation_id: str) -> CaseKeyGrant | None:
    return session.scalar(
        select(CaseKeyGrant).where(
            CaseKeyGrant.case_id == case_id, CaseKeyGrant.organisation_id == organisation_id
        )
    )


# -- work of the beat schedule (no subject: the service itself acts, and audits as "system") ------------


def pending_escalations(session: Session) -> Sequence[tuple[Case, CaseKeyGrant]]:
    """Escalation grants not yet opened, of cases that nobody has acknowledged."""
    rows = session.execute(
        select(Case, CaseKeyGrant)
        .join(CaseKeyGrant, CaseKeyGrant.case_id == Case.id)
        .where(
            Case.acknowledged_at.is_(None),
            Case.status == "new",
            CaseKeyGrant.active.is_(False),
            CaseKeyGrant.escalation_after_minutes.is_not(None),
        )
        .order_by(Case.created_at, CaseKeyGrant.escalation_after_minutes)
    ).all()
    return [(row[0], row[1]) for row in rows]


def overdue_unacknowledged(session: Session, now: datetime) -> Sequence[Case]:
    return session.scalars(
        select(Case).where(Case.acknowledged_at.is_(None), Case.status == "new", Case.ack_deadline_at < now)
    ).all()


def active_holder_ids(session: Session, case_id: str) -> list[str]:
    return list(
        session.scalars(
            select(CaseKeyGrant.organisation_id)
            .where(CaseKeyGrant.case_id == case_id, CaseKeyGrant.active.is_(True))
            .order_by(*_GRANT_ORDER)
        )
    )


def open_cases_with_reporter_messages(session: Session, before: datetime) -> Sequence[tuple[str, str]]:
    """(case id, message id) of the last message of each open case, where that message is the reporter's
    and older than ``before``: the reporter is waiting for an answer."""
    last = (
        select(CaseMessage.case_id, func.max(CaseMessage.created_at).label("last_at"))
        .group_by(CaseMessage.case_id)
        .subquery()
    )
    rows = session.execute(
        select(CaseMessage.case_id, CaseMessage.id)
        .join(last, (last.c.case_id == CaseMessage.case_id) & (last.c.last_at == CaseMessage.created_at))
        .join(Case, Case.id == CaseMessage.case_id)
        .where(
            CaseMessage.direction == "from_reporter",
            CaseMessage.created_at < before,
            Case.status != "closed",
        )
    ).all()
    return [(row[0], row[1]) for row in rows]


def complaint_reminders(session: Session, today: date) -> Sequence[tuple[Incident, Case]]:
    """Incidents of open cases whose Strafantrag reminders have begun and whose deadline week is not over
    (the first reminder's Monday within the last three weeks, ``ReminderWeek``)."""
    rows = session.execute(
        select(Incident, Case)
        .join(Case, Case.id == Incident.case_id)
        .where(
            Incident.complaint_reminder_on.is_not(None),
            Incident.complaint_reminder_on <= today,
            Incident.complaint_reminder_on > today - timedelta(days=21),
        )
        .where(Case.status != "closed")
    ).all()
    return [(row[0], row[1]) for row in rows]


def reminder_sent(session: Session, case_id: str, kind: str, ref: str) -> bool:
    return (
        session.scalar(
            select(ReminderLog.id).where(
                ReminderLog.case_id == case_id, ReminderLog.kind == kind, ReminderLog.ref == ref
            )
        )
        is not None
    )


def lock_case(session: Session, case_id: str) -> Case | None:
    """The case, read anew and locked until the transaction ends (None: it is gone, say purged).

    As the retention purge's lock (service/retention/repository.py): FOR UPDATE on PostgreSQL; on SQLite,
    which ignores it, an UPDATE that matches nothing takes the database's write lock first."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Case)
            .where(false())
            .values(status=Case.status)
            .execution_options(synchronize_session=False)
        )
    return session.scalar(
        select(Case).where(Case.id == case_id).with_for_update().execution_options(populate_existing=True)
    )


def _deleted(session: Session, statement: Delete) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


# Children before parents, so that no step relies on ON DELETE CASCADE: attachments point at incidents and
# messages, routing records at incidents, everything at the case. The cascades stay as a second line.
_CASE_CHILDREN = (
    ("attachments", Attachment),
    ("messages", CaseMessage),
    ("notes", CaseNote),
    ("routing_records", RoutingRecord),
    ("key_grants", CaseKeyGrant),
    ("incidents", Incident),
)


def delete_case_rows(session: Session, case_id: str) -> dict[str, int]:
    """Delete every row of the case and the case row itself (with the reporter-wrapped key in it).

    Returns the number of rows per kind; ``case`` is 1 unless the row vanished in between.
    """
    # Rows that point at the case without a case_id of their own: its incidents' event links (the other
    # incidents of an event keep theirs) and merge proposals naming it either way.
    session.execute(
        delete(EventLink).where(
            EventLink.incident_id.in_(select(Incident.id).where(Incident.case_id == case_id))
        )
    )
    delete_merge_proposals(session, case_id)
    counts = {
        name: _deleted(session, delete(model).where(model.case_id == case_id))
        for name, model in _CASE_CHILDREN
    }
    counts["case"] = _deleted(session, delete(Case).where(Case.id == case_id))
    return counts


@dataclass(frozen=True)
class KeyHolder:
    """An organisation that holds the case key: one row of ``case_key_grant``, as the reporter is shown it.

    The receipt and /fall list these and nothing else, so that what a reporter is told about who can read
    the case is the data that grants the key, never a second computation that could drift from it."""

    name: str
    role: str  # GrantRole
    # Sees the case now (a target, an escalation step that was opened, a referral).
    active: bool
    # An escalation step: opened this long after filing if nobody acknowledged.
    escalation_after_minutes: int | None


def key_holders(session: Session, case_id: str) -> list[KeyHolder]:
    rows = session.execute(
        select(
            Organisation.display_name,
            CaseKeyGrant.role,
            CaseKeyGrant.active,
            CaseKeyGrant.escalation_after_minutes,
        )
        .join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
        .where(CaseKeyGrant.case_id == case_id)
        .order_by(CaseKeyGrant.granted_at, Organisation.display_name)
    ).all()
    return [KeyHolder(str(name), str(role), bool(active), minutes) for name, role, active, minutes in rows]


def staff_names(session: Session, user_ids: Collection[str]) -> dict[str, str]:
    """Display names of staff accounts by id (the case page names assignees, authors and actors)."""
    if not user_ids:
        return {}
    rows = session.execute(
        select(StaffUser.id, StaffUser.display_name).where(StaffUser.id.in_(list(user_ids)))
    )
    return {row[0]: row[1] for row in rows}


def organisation_names(session: Session, ids: Collection[str], slugs: Collection[str]) -> dict[str, str]:
    """Display names by id and by slug (routing decisions name organisations by slug)."""
    if not ids and not slugs:
        return {}
    rows = session.execute(
        select(Organisation.id, Organisation.slug, Organisation.display_name).where(
            or_(Organisation.id.in_(list(ids)), Organisation.slug.in_(list(slugs)))
        )
    )
    names: dict[str, str] = {}
    for org_id, slug, name in rows:
        names[org_id] = name
        names[slug] = name
    return names
