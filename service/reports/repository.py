"""Queries the intake and the reporter pages need; only this module builds them."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlalchemy import Insert, Table, func, insert, select
from sqlalchemy.orm import Session

from service.cases.models import Attachment, Case, CaseKeyGrant, Incident
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
