"""A report filed on the event loop with no session around its one statement: the JSON intake's common case.

What it stores is what ``IntakeService.file_report`` stores for a filing that is one statement
(``filing.single_statement``): the rows composed by the same code (``IntakeService.compose``) from the
organisations read up to a second ago, sent as the same ``INSERT … WITH`` in autocommit (committed when
PostgreSQL answers, so before the 201), the notifications handed to the dispatcher once it is stored. What
it leaves out is the session, its transaction and SQLAlchemy's asyncio bridge around that one statement,
which cost the api more CPU than the statement itself (docs/intake-cost.md, session 16).

Anything beyond that takes the way with a session (``None`` is returned and nothing was written):
- a report with perpetrator identifiers to register (more than one statement);
- the organisations or a public key to be read afresh: the composition gets a session bound to no database,
  so that any read it would make raises ``UnboundExecutionError`` instead (once a second, when the cache of
  the organisations has aged, and for a key this process has not met);
- a grant refused by its guard because an organisation changed since it was read (the statement fails as a
  whole, ``repository.refused_grant``): the cache is dropped, and the other way routes the report on a fresh
  read.

Reports of one process that are ready while its statements in flight are busy go together in the next
statement (``service.group_commit``): each is stored whole or not at all and answered after the commit, as
alone; a statement refused for one report's rows is sent again one report at a time.
"""

from __future__ import annotations

import functools
import logging
from typing import cast

import psycopg
from sqlalchemy import Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from service.cases.models import Case
from service.db import POOL_TIMEOUT_SECONDS, NewRow, after_stored, make_async_sessionmaker, utcnow
from service.db_raw import execute_on_loop
from service.group_commit import GroupCommit
from service.reports import repository
from service.reports.filing import CaseDraft, Filed, stored_after_all
from service.reports.repository import StaleGrant
from service.reports.schemas import ReportCreate
from service.reports.service import IntakeService

log = logging.getLogger("rueckhalt.intake")

_CASES = cast(Table, Case.__table__)

# Reports in one statement at most: a plain report binds about a hundred values (PostgreSQL takes 65,535).
MOST_REPORTS_PER_STATEMENT = 32
# Statements of reports in flight at a time per process. More than one, so that one held up (a lock an
# organisation's key rotation holds, a connection that hangs) does not hold up every report of the process.
STATEMENTS_AT_ONCE = 2


class LoopStatements:
    """The statements of the reports filed on one event loop (one per served process, made in its lifespan):
    each report's rows, sent together with those of the reports ready at the same time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.group: GroupCommit[list[NewRow]] = GroupCommit(
            self._send,
            one_by_one=_refused_for_its_rows,
            most=MOST_REPORTS_PER_STATEMENT,
            at_once=STATEMENTS_AT_ONCE,
            # As long as a request waits for a connection of the pool before its 503.
            wait_at_most=POOL_TIMEOUT_SECONDS,
            overdue=lambda: sa_exc.TimeoutError("no statement was free for the report in time"),
        )

    async def _send(self, reports: list[list[NewRow]]) -> None:
        query, params = repository.one_statement(self.engine.dialect, repository.together(reports))
        try:
            await execute_on_loop(self.engine, query, params)
        except sa_exc.DBAPIError as error:
            if not error.connection_invalidated or len(reports) == 1:
                raise  # a report alone looks for itself (``file_on_loop``)
            await self._look_once(reports, error)

    async def _look_once(self, reports: list[list[NewRow]], lost: sa_exc.DBAPIError) -> None:
        """A group's connection was lost with its statement in flight: one look on a new connection tells
        for all of it (the statement is atomic), rather than one look per report, up to 64 at once on a
        database that has just failed. Stored: returns, as after a commit (each report gets its receipt and
        hands over its notifications). Not stored: ``GroupNotStored``, the 503. Cannot be asked: the lost
        error, and each report looks for itself."""
        case_id = next(row.values["id"] for row in reports[0] if row.table is _CASES)
        try:
            async with make_async_sessionmaker(self.engine)() as session:
                stored = await session.run_sync(lambda sync: repository.case_by_id(sync, str(case_id)))
        except (sa_exc.DBAPIError, sa_exc.TimeoutError):
            raise lost from None
        if stored is None:
            raise GroupNotStored(None, None, lost.orig or lost) from None
        log.warning("intake: the connection was lost after a group's statement, which was stored")


class GroupNotStored(sa_exc.OperationalError):
    """A group's connection was lost in flight and its statement was not stored: the 503 for each report
    of it (nothing of it will be stored by this process; see ``filing.stored_after_all`` for what a server
    process that has not noticed the loss may still do)."""


def _refused_for_its_rows(error: Exception) -> bool:
    """PostgreSQL refused the statement, so it stored nothing: for what one of its rows holds (a grant's
    guard, a constraint, a value: SQLSTATE classes 23 and 22), or rolled it back for a deadlock or a
    serialization failure (class 40). The reports are sent again one at a time, each with its own fate. Not
    a connection lost in flight (the statement may have been stored), nor a server out of reach."""
    if isinstance(error, sa_exc.IntegrityError | sa_exc.DataError):
        return True
    if not isinstance(error, sa_exc.DBAPIError) or error.connection_invalidated:
        return False
    sqlstate = error.orig.sqlstate if isinstance(error.orig, psycopg.Error) else None
    return (sqlstate or "").startswith("40")


async def file_on_loop(
    intake: IntakeService, statements: LoopStatements, data: ReportCreate, draft: CaseDraft
) -> Filed | None:
    """The filed report, or ``None`` if it needs the way with a session (see the module); raises before
    anything is written if the report is refused (``ValidationFailed``)."""
    if data.consent_matching and data.perpetrator_identifiers:
        return None
    intake.refuse_invalid(data)
    without_database = Session()
    try:
        filed, rows, announced = intake.compose(without_database, data, draft, [], None, utcnow(), True)
    except (sa_exc.UnboundExecutionError, StaleGrant):
        return None  # something to read first (a key not met yet comes before any StaleGrant here)
    finally:
        without_database.close()
    try:
        await statements.group.store(rows + announced)
    except sa_exc.IntegrityError as error:
        if not repository.refused_grant(error):
            raise
        intake.forget_receivers()
        log.info("intake: an organisation changed since it was read; routed again with a fresh read")
        return None
    except sa_exc.DBAPIError as error:
        if not error.connection_invalidated:
            raise
        lost = error
        # The statement was in flight when the connection was lost: it may have been stored all the same.
        async with make_async_sessionmaker(statements.engine)() as session:
            return await session.run_sync(
                lambda sync: stored_after_all(sync, (filed, announced), lost, intake.announce)
            )
    after_stored(functools.partial(intake.announce, announced))
    return filed
