"""Queries the intake and the reporter pages need; only this module builds them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from service.cases.models import Attachment, Case, CaseKeyGrant, Incident
from service.db import Base
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


def insert_new(session: Session, objects: Sequence[Base]) -> None:
    """Insert freshly built rows with one statement per table, in the order given (parents first).

    The intake writes about ten rows per report; the ORM's unit of work (and even its bulk path) spends
    more time sorting and tracking them than the database spends storing them, so they go to the table as
    Core inserts on the session's connection, inside the session's transaction. Every column value must
    be set by the caller (defaults of the models are not applied here), which the intake does anyway.
    """
    connection = session.connection()
    index = 0
    while index < len(objects):
        model = type(objects[index])
        batch = []
        while index < len(objects) and type(objects[index]) is model:
            batch.append(_row(objects[index]))
            index += 1
        connection.execute(insert(cast(Table, model.__table__)), batch)


def _row(obj: Base) -> dict[str, Any]:
    mapper = sa_inspect(type(obj))
    # Attribute names equal column names in every model (no mapped_column("other_name", ...)).
    return {attr.key: getattr(obj, attr.key) for attr in mapper.column_attrs}
