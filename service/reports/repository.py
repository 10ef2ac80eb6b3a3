"""Queries the intake and the reporter pages need; only this module builds them."""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

import psycopg
from sqlalchemy import Dialect, Insert, LargeBinary, Table, bindparam, func, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from service.audit import chain_held
from service.cases.models import Case, CaseMessage, Incident, MessageDirection
from service.db import NewRow
from service.db_raw import execute_raw, in_autocommit, pipelined
from service.evidence.models import Attachment
from service.identity.models import CaseKeyGrant, Organisation
from service.reports.models import SubmissionToken
from service.reports.submissions import SubmissionClaim


def claim_submission(session: Session, claim: SubmissionClaim) -> bool:
    """Record a submission token as used; False if it already was (nothing is changed then).

    One statement that inserts or finds the row, so the decision is the database's: on PostgreSQL a second
    transaction with the same token waits for the first at the unique index and then inserts nothing (or
    inserts, if the first rolled back); SQLite lets one writer at a time. Call it first in the transaction
    that files, so that a refused filing (rolled back) leaves the token unused."""
    values = {"token_hash": claim.token_hash, "expires_at": claim.expires_at}
    statement = (
        postgresql.insert(SubmissionToken)
        if session.get_bind().dialect.name == "postgresql"
        else sqlite.insert(SubmissionToken)
    )
    # RETURNING rather than the row count, which psycopg does not report for this statement.
    inserted = session.execute(
        statement.values(**values)
        .on_conflict_do_nothing(index_elements=["token_hash"])
        .returning(SubmissionToken.token_hash)
    ).first()
    return inserted is not None


def keep_answer(session: Session, token_hash: bytes, sealed: bytes, until: datetime) -> None:
    """Beside a token claimed in this transaction: the sealed receipt page (answer_again.py) and the minute
    its time ends."""
    session.execute(
        update(SubmissionToken)
        .where(SubmissionToken.token_hash == token_hash)
        .values(answer=sealed, answer_until=until)
    )


def kept_answer(session: Session, token_hash: bytes) -> bytes | None:
    return session.execute(
        select(SubmissionToken.answer).where(SubmissionToken.token_hash == token_hash)
    ).scalar_one_or_none()


def forget_answer(session: Session, token_hash: bytes) -> None:
    session.execute(
        update(SubmissionToken)
        .where(SubmissionToken.token_hash == token_hash)
        .values(answer=None, answer_until=None)
    )


def forget_answers_due(session: Session, now: datetime) -> int:
    """Erase every kept answer whose time has ended; how many."""
    erased = session.execute(
        update(SubmissionToken)
        .where(SubmissionToken.answer_until <= now)
        .values(answer=None, answer_until=None)
    )
    return int(getattr(erased, "rowcount", 0))


def claimed_hashes(session: Session, token_hashes: list[bytes]) -> set[bytes]:
    """Which of these tokens were used before."""
    found = session.scalars(
        select(SubmissionToken.token_hash).where(SubmissionToken.token_hash.in_(token_hashes))
    )
    return set(found.all())


def case_by_id(session: Session, case_id: str) -> Case | None:
    return session.get(Case, case_id)


def case_by_lookup(session: Session, lookup_hash: bytes) -> Case | None:
    return session.scalar(select(Case).where(Case.lookup_hash == lookup_hash))


def unopened_escalations(session: Session, case_id: str) -> list[tuple[CaseKeyGrant, str]]:
    """The escalation grants of a case not opened yet, with their organisation's slug."""
    rows = session.execute(
        select(CaseKeyGrant, Organisation.slug)
        .join(Organisation, Organisation.id == CaseKeyGrant.organisation_id)
        .where(
            CaseKeyGrant.case_id == case_id,
            CaseKeyGrant.active.is_(False),
            CaseKeyGrant.escalation_after_minutes.is_not(None),
        )
    ).all()
    return [(row[0], row[1]) for row in rows]


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
    """Insert complete rows, parents first (the order given), inside the session's transaction.

    The ORM's unit of work (and even its bulk path) spends more time sorting and tracking the ten rows of a
    report than the database spends storing them, so they go to their tables as Core inserts on the
    session's connection. On PostgreSQL they go as one statement: each table's rows in a data-modifying
    ``WITH`` of a single ``INSERT`` (the foreign keys are checked at the end of the statement, when every
    row is in). Each statement cost the api process about a tenth of a millisecond in the driver and in
    SQLAlchemy, and PostgreSQL a parse-bind-execute; six became one. SQLite has no round trips to save.
    """
    if any(row.table is _GRANTS for row in rows) and chain_held(session):
        # A grant's guard holds its organisation's row shared: before the audit chain or not at all
        # (``identity.grants.lock_organisation`` says why).
        raise RuntimeError("a case key grant was to be written after the audit chain's lock")
    connection = session.connection()
    groups = by_table(rows)
    dialect = connection.dialect
    try:
        if dialect.name == "postgresql" and len(groups) > 1:
            execute_raw(session, *one_statement(dialect, groups))
            return
        if in_autocommit(session):
            # Rows in several statements would each commit on their own: a filing in autocommit must be
            # the one statement above (``filing.single_statement``).
            raise RuntimeError("rows inserted in autocommit must go in one statement")
        with pipelined(session):
            for table, batch in groups:
                values = [
                    {**row.values, **_guard_values(row)} if table is _GRANTS else row.values for row in batch
                ]
                connection.execute(_insert(table), values)
    except sa_exc.IntegrityError as error:
        if refused_grant(error):
            raise StaleGrant() from None
        raise


def by_table(rows: Sequence[NewRow]) -> list[tuple[Table, list[NewRow]]]:
    """The rows in runs of the same table, in the order given (parents first)."""
    groups: list[tuple[Table, list[NewRow]]] = []
    for row in rows:
        if groups and groups[-1][0] is row.table:
            groups[-1][1].append(row)
        else:
            groups.append((row.table, [row]))
    return groups


def together(reports: Sequence[Sequence[NewRow]]) -> list[tuple[Table, list[NewRow]]]:
    """The rows of several reports for one statement (``service.group_commit``): each table's rows together,
    the tables in the order they first come; the grants by organisation, the order in which a filing locks
    the organisations' rows (``FilingRows``), so that two statements never wait for each other in a circle.
    For one report, ``by_table``. The foreign keys are checked at the end of the statement, when every row
    is in, so a child's row may come before its parent's."""
    if len(reports) == 1:
        return by_table(reports[0])
    tables: dict[Table, list[NewRow]] = {}
    for rows in reports:
        for row in rows:
            tables.setdefault(row.table, []).append(row)
    if _GRANTS in tables:
        tables[_GRANTS].sort(key=lambda row: str(row.values["organisation_id"]))
    return list(tables.items())


def one_statement(dialect: Dialect, groups: list[tuple[Table, list[NewRow]]]) -> tuple[str, list[object]]:
    """The PostgreSQL statement that inserts every row of ``groups`` (``by_table``), and its parameters."""
    sql, processors = _one_statement(dialect, tuple((table, len(batch)) for table, batch in groups))
    parameters: list[object] = []
    for table, batch in groups:
        for row in batch:
            for key, process in processors[table]:
                value = row.values[key] if key in row.values else row.guard[key]
                parameters.append(value if process is None else process(value))
    return sql, parameters


class StaleGrant(Exception):
    """A case key grant named an organisation that is, when the row is written, disabled, gone or on
    another key epoch than the grant's: the routing read it before that change. Nothing was written (the
    statement failed and the transaction must be rolled back); the intake routes the report again."""


_GRANTS = cast(Table, CaseKeyGrant.__table__)
# What a grant's row carries for its guard beside its columns (``NewRow.guard``): the SHA-256 of the public
# key its case key was wrapped to.
GRANT_KEY_DIGEST = "key_digest"
_GUARD_ORGANISATION = "guard_organisation_id"
_GUARD_EPOCH = "guard_epoch"
_GUARD_DIGEST = "guard_key_digest"


def _guarded_epoch(organisation: Any, epoch: Any, key_digest: Any) -> Any:
    """A grant's ``epoch`` as written: the organisation's current epoch if the organisation is active, its
    current key is the one the case key was wrapped to (by digest) and its epoch the grant's; else NULL,
    which the column refuses (NOT NULL), failing the whole insert.

    So the statement that stores a case key wrapped to an organisation's key is the one that checks that
    the key is still the organisation's: a routing decision read a moment (or a cached second) earlier
    cannot hand a case to an organisation disabled since, nor to a key retired since (a removed member may
    hold the old one), nor to a key replaced without a new epoch. On PostgreSQL the row is read FOR SHARE:
    a rotation or a disabling that has changed the row but not yet committed is waited for, and the row
    is then checked as it was committed (READ COMMITTED re-reads a locked row that changed); a rotation
    that starts later waits for this filing's commit."""
    return (
        select(Organisation.current_epoch)
        .where(
            Organisation.id == organisation,
            Organisation.active.is_(True),
            Organisation.current_epoch == epoch,
            func.sha256(Organisation.public_key) == key_digest,
        )
        .with_for_update(read=True)
        .scalar_subquery()
    )


def _guard_values(grant: NewRow) -> dict[str, Any]:
    return {
        _GUARD_ORGANISATION: grant.values["organisation_id"],
        _GUARD_EPOCH: grant.values["epoch"],
        _GUARD_DIGEST: grant.guard[GRANT_KEY_DIGEST],
    }


def refused_grant(error: sa_exc.IntegrityError) -> bool:
    """True if ``error`` is the NOT NULL refusal of a grant's guarded epoch (and not any other failure)."""
    orig = error.orig
    if isinstance(orig, psycopg.errors.NotNullViolation):
        return orig.diag.table_name == _GRANTS.name and orig.diag.column_name == "epoch"
    refusal = f"NOT NULL constraint failed: {_GRANTS.name}.epoch"
    return isinstance(orig, sqlite3.IntegrityError) and str(orig) == refusal


Processor = Callable[[Any], Any] | None


@functools.lru_cache(maxsize=64)
def _one_statement(
    dialect: Dialect, shape: tuple[tuple[Table, int], ...]
) -> tuple[str, dict[Table, list[tuple[str, Processor]]]]:
    """The SQL of one INSERT with a WITH per table before the last, for rows of this shape (table, number
    of rows), and each table's columns with their types' conversion for the driver.

    Sent as the driver's SQL: executing the statement through SQLAlchemy would walk its hundred parameters
    for a cache key on every report, which cost more than the five statements it replaces. Put together
    from each table's one row as SQLAlchemy compiled it (``_row_of``): compiling a whole statement took 20
    ms for one report and 140 ms for 32 (a group of reports, ``together``; their shapes vary with each
    report's grants), on the event loop; putting it together takes a few hundredths of that.
    """
    parts: list[str] = []
    number = 0  # parameters placed so far
    for table, count in shape:
        head, pieces = _row_of(dialect, table)
        width = len(_parameters_of(table))
        rows = []
        for _ in range(count):
            rows.append("".join(p if isinstance(p, str) else f"${number + p + 1}" for p in pieces))
            number += width
        parts.append(head + ", ".join(rows))
    *firsts, last = parts
    withs = ", ".join(f"w{group} AS ({part})" for group, part in enumerate(firsts))
    sql = f"WITH {withs} {last}" if withs else last
    processors = {
        table: [
            (key, cast(Processor, type_.dialect_impl(dialect).bind_processor(dialect)))
            for key, type_ in _parameters_of(table)
        ]
        for table, _ in shape
    }
    return sql, processors


@functools.cache
def _row_of(dialect: Dialect, table: Table) -> tuple[str, tuple[str | int, ...]]:
    """The head of ``table``'s INSERT (``INSERT INTO t (a, b) VALUES ``) and one row's values, compiled by
    SQLAlchemy: the text between the parameters, and for each parameter its place in ``_parameters_of``
    (a name used again, a grant's guard, has the place of its first use)."""
    row: dict[str, Any] = {
        column.key: bindparam(f"p_{column.key}", type_=column.type) for column in table.columns
    }
    if table is _GRANTS:
        # Two of the row's parameters again and its key digest.
        row["epoch"] = _guarded_epoch(
            bindparam("p_organisation_id", type_=table.c.organisation_id.type),
            bindparam("p_epoch", type_=table.c.epoch.type),
            bindparam(f"p_{GRANT_KEY_DIGEST}", type_=LargeBinary()),
        )
    compiled = str(insert(table).values(row).compile(dialect=dialect))
    head, values = compiled.split(" VALUES ", 1)
    # Compiled with the dialect's named placeholders, each in the order of its first place; PostgreSQL's own
    # numbered ones replace them when a statement is put together.
    split = re.split(r"%\((p_\w+)\)s", values)
    names = split[1::2]
    keys = [key for key, _ in _parameters_of(table)]
    if list(dict.fromkeys(names)) != [f"p_{key}" for key in keys] or not (
        values.startswith("(") and values.endswith(")")
    ):
        raise RuntimeError("the intake's insert did not compile to its values in the order they are sent")
    places = {f"p_{key}": place for place, key in enumerate(keys)}
    pieces = tuple(
        piece.replace("%%", "%") if index % 2 == 0 else places[piece] for index, piece in enumerate(split)
    )
    return f"{head} VALUES ", pieces


def _parameters_of(table: Table) -> list[tuple[str, TypeEngine[Any]]]:
    """A row's parameters in the order of their first place in the statement: its columns, and for a grant
    its key digest right after its epoch (the guard, in the epoch's place, names it first)."""
    parameters: list[tuple[str, TypeEngine[Any]]] = []
    for column in table.columns:
        parameters.append((column.key, column.type))
        if table is _GRANTS and column.key == "epoch":
            parameters.append((GRANT_KEY_DIGEST, LargeBinary()))
    return parameters


@functools.cache
def _insert(table: Table) -> Insert:
    # Built once per table: a statement is immutable, and building it anew for every report costs time.
    if table is _GRANTS:
        # The other columns come from each row's values, the epoch from the guard (its two parameters
        # are added to each row: ``_guard_values``).
        return insert(table).values(
            epoch=_guarded_epoch(
                bindparam(_GUARD_ORGANISATION, type_=table.c.organisation_id.type),
                bindparam(_GUARD_EPOCH, type_=table.c.epoch.type),
                bindparam(_GUARD_DIGEST, type_=LargeBinary()),
            )
        )
    return insert(table)
