"""Queries the intake and the reporter pages need; only this module builds them."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Dialect, Insert, Table, bindparam, func, insert, select
from sqlalchemy.orm import Session

from service.cases.models import Attachment, Case, CaseKeyGrant, Incident
from service.db import NewRow, execute_raw, pipelined
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
    """Insert complete rows, parents first (the order given), inside the session's transaction.

    The ORM's unit of work (and even its bulk path) spends more time sorting and tracking the ten rows of a
    report than the database spends storing them, so they go to their tables as Core inserts on the
    session's connection. On PostgreSQL they go as one statement: each table's rows in a data-modifying
    ``WITH`` of a single ``INSERT`` (the foreign keys are checked at the end of the statement, when every
    row is in). Each statement cost the api process about a tenth of a millisecond in the driver and in
    SQLAlchemy, and PostgreSQL a parse-bind-execute; six became one. SQLite has no round trips to save.
    """
    connection = session.connection()
    groups: list[tuple[Table, list[dict[str, Any]]]] = []
    for row in rows:
        if groups and groups[-1][0] is row.table:
            groups[-1][1].append(row.values)
        else:
            groups.append((row.table, [row.values]))
    dialect = connection.dialect
    if dialect.name == "postgresql" and len(groups) > 1:
        sql, processors = _one_statement(dialect, tuple((table, len(batch)) for table, batch in groups))
        parameters: list[Any] = []
        for table, batch in groups:
            for values in batch:
                for key, process in processors[table]:
                    value = values[key]
                    parameters.append(value if process is None else process(value))
        execute_raw(session, sql, parameters)
        return
    with pipelined(session):
        for table, batch in groups:
            connection.execute(_insert(table), batch)


Processor = Callable[[Any], Any] | None


@functools.lru_cache(maxsize=128)
def _one_statement(
    dialect: Dialect, shape: tuple[tuple[Table, int], ...]
) -> tuple[str, dict[Table, list[tuple[str, Processor]]]]:
    """The SQL of one INSERT with a WITH per table before the last, for rows of this shape (table, number
    of rows), and each table's columns with their types' conversion for the driver.

    Compiled once per shape (a report has a handful: its grants and files vary) and sent as the driver's
    SQL: executing the statement through SQLAlchemy would walk its hundred parameters for a cache key on
    every report, which cost more than the five statements it replaces.
    """

    def rows_of(group: int, table: Table, count: int) -> list[dict[str, Any]]:
        return [
            {
                column.key: bindparam(f"p{group}_{index}_{column.key}", type_=column.type)
                for column in table.columns
            }
            for index in range(count)
        ]

    *firsts, (last, last_count) = shape
    withs = [
        insert(table).values(rows_of(group, table, count)).cte(f"w{group}")
        for group, (table, count) in enumerate(firsts)
    ]
    statement = insert(last).values(rows_of(len(firsts), last, last_count)).add_cte(*withs)
    processors = {
        table: [
            (column.key, cast(Processor, column.type.dialect_impl(dialect).bind_processor(dialect)))
            for column in table.columns
        ]
        for table, _ in shape
    }
    # Compiled with the dialect's named placeholders, which come in the order of the tables, rows and
    # columns above; PostgreSQL's own numbered ones replace them for the raw cursor.
    compiled = str(statement.compile(dialect=dialect))
    placeholder = re.compile(r"%\((p\d+_\d+_\w+)\)s")
    expected = [
        f"p{group}_{index}_{column.key}"
        for group, (table, count) in enumerate(shape)
        for index in range(count)
        for column in table.columns
    ]
    if placeholder.findall(compiled) != expected:
        raise RuntimeError("the intake's insert did not compile to its values in the order they are sent")
    numbers = iter(range(1, len(expected) + 1))
    sql = placeholder.sub(lambda _: f"${next(numbers)}", compiled)
    return sql.replace("%%", "%"), processors


@functools.cache
def _insert(table: Table) -> Insert:
    # Built once per table: a statement is immutable, and building it anew for every report costs time.
    return insert(table)
