"""Queries the intake and the reporter pages need; only this module builds them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, Table, func, insert, select
from sqlalchemy.orm import Session

from service.cases.models import Attachment, Case, CaseKeyGrant, CaseMessage, Incident, MessageDirection
from service.db import NewRow, pipelined
from service.organisations.models import Organisation


def case_by_lookup(session: Session, lookup_hash: bytes) -> Case | None:
    return session.scalar(select(Case).where(Case.lookup_hash == lookup_hash))


def next_incident_seq(session: Session, case_id: str) -> int:
    current = session.scalar(select(func.max(Incident.seq)).where(Incident.case_id == case_id))
    return int(current or 0) + 1


def granted_organisation_ids(session: Session, case_id: str) -> list[str]:
    return list(session.scalars(select(CaseKeyGrant.organisation_id).where(CaseKeyGrant.case_id == case_id)))


def active_organisation_ids(session: Session, case_id: str) -> list[str]:
    return list(
        session.scalars(
            select(CaseKeyGrant.organisation_id).where(
                CaseKeyGrant.case_id == case_id, CaseKeyGrant.active.is_(True)
            )
        )
    )


def active_organisation_names(session: Session, case_id: str) -> list[str]:
    return list(
        session.scalars(
            select(Organisation.display_name)
            .join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
            .where(CaseKeyGrant.case_id == case_id, CaseKeyGrant.active.is_(True))
            .order_by(Organisation.display_name)
        )
    )


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


def first_reply_at(session: Session, case_id: str) -> datetime | None:
    """When the first message to the reporter was written (the first answer they can read)."""
    return session.scalar(
        select(func.min(CaseMessage.created_at)).where(
            CaseMessage.case_id == case_id, CaseMessage.direction == MessageDirection.to_reporter.value
        )
    )


def attachment_counts(session: Session, case_id: str) -> dict[str, int]:
    rows = session.execute(
        select(Attachment.incident_id, func.count())
        .where(Attachment.case_id == case_id)
        .group_by(Attachment.incident_id)
    ).all()
    return {str(incident_id): int(count) for incident_id, count in rows}


def insert_new(session: Session, rows: Sequence[NewRow]) -> None:
    """Insert complete rows with one statement per table, in the order given (parents first).

    The ORM's unit of work (and even its bulk path) spends more time sorting and tracking the ten rows of a
    report than the database spends storing them, so they go to their tables as Core inserts on the
    session's connection, inside the session's transaction.
    """
    connection = session.connection()
    with pipelined(session):
        index = 0
        while index < len(rows):
            table = rows[index].table
            batch = []
            while index < len(rows) and rows[index].table is table:
                batch.append(rows[index].values)
                index += 1
            connection.execute(_insert(table), batch)


@functools.cache
def _insert(table: Table) -> Insert:
    # Built once per table: a statement is immutable, and building it anew for every report costs time.
    return insert(table)
