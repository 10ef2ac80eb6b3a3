"""What a filing is made of and how an attempt ends: the draft, the demo's marks, the answer, and the
three ways an attempt is decided beyond its rows (one statement or a transaction; a grant refused on a fresh
read; a connection lost with the statement in flight). The filing itself is ``service.py``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from service.cases.deadlines import ComplaintDeadline
from service.cases.repository import KeyHolder
from service.crypto import new_data_key
from service.db import NewRow, new_id
from service.errors import ServiceBusy
from service.reports import repository
from service.reports.repository import StaleGrant
from service.reports.schemas import ReportCreate
from service.reports.submissions import SubmissionClaim

log = logging.getLogger("rueckhalt.intake")
T = TypeVar("T")


@dataclass(frozen=True)
class CaseDraft:
    """Identity and key of a case about to be filed; uploads are encrypted under it before the commit."""

    case_id: str
    data_key: bytes

    @classmethod
    def new(cls) -> CaseDraft:
        return cls(case_id=new_id(), data_key=new_data_key())


@dataclass(frozen=True)
class DemoFiling:
    """A case the demo files (service/demo.py, service/demo_year.py): marked ``demo`` on the case row.

    ``at``: filed as if at that moment, for the demo's synthetic year. Every time the filing writes (the
    case, its grants, the statistics row's receipt month, the acknowledgement deadline) is then ``at``, and
    nobody is told of it: a case of last spring announced today would be a false alarm."""

    at: datetime | None = None

    @property
    def announced(self) -> bool:
        return self.at is None


@dataclass(frozen=True)
class Filed:
    receipt: str
    case_id: str
    routed_to: list[str]
    ack_deadline_minutes: int
    type_codes: list[str]
    # The Strafantrag deadline of the reported incident, for the receipt (never stored in clear).
    complaint: ComplaintDeadline
    # The urgency the case was filed with: the reporter's, or "high" for a Strafantrag deadline days away.
    urgency: str
    # Every organisation that now holds the case key, read from the grant rows this filing wrote.
    key_holders: list[KeyHolder]


# A filing's answer and its outbox rows, kept from just before its one statement is sent.
InFlight = tuple[Filed, list[NewRow]]


def single_statement(
    session: Session, data: ReportCreate, claim: SubmissionClaim | None, demo: DemoFiling | None
) -> bool:
    """True if this filing writes exactly one statement: on PostgreSQL every row of a report goes in one
    ``INSERT … WITH`` (``repository.insert_new``), unless a form's token is claimed first, the perpetrator
    identifiers are registered after it, or the demo files it (alongside its own work). What it reads before
    (the organisations, a key not seen yet) needs no transaction either: each statement reads committed
    rows, as it would in one."""
    return (
        session.get_bind().dialect.name == "postgresql"
        and claim is None
        and demo is None
        and not (data.consent_matching and data.perpetrator_identifiers)
    )


def busy_if_stale(filing: Callable[[], T]) -> T:
    """``filing`` on a fresh read: a grant refused there met a change in the same instant (a 503 that asks
    to send again; nothing was stored)."""
    try:
        return filing()
    except StaleGrant:
        log.warning("intake: an organisation changed while a report was filed; asked to send again")
        raise ServiceBusy() from None


def stored_after_all(
    session: Session,
    in_flight: InFlight,
    lost: sa_exc.DBAPIError,
    announce: Callable[[list[NewRow]], None],
) -> Filed:
    """The connection was lost while a report's one statement was in flight: PostgreSQL may have committed
    it before the answer was lost. Asked on a new connection; if the case is there (all of it: the statement
    is atomic), the reporter gets the receipt (sending again would file the report twice), and its
    notifications go out (``announce``) as after a commit.

    If it is not there, or the database cannot be asked, the 503 stands. It cannot promise that nothing
    will be stored: a server process that has not noticed the lost connection (waiting for a lock) may still
    commit the statement after this look, as a COMMIT in flight could before."""
    filed, announced = in_flight
    session.rollback()
    try:
        stored = repository.case_by_id(session, filed.case_id) is not None
        session.rollback()
    except (sa_exc.DBAPIError, sa_exc.TimeoutError):
        raise lost from None
    if not stored:
        raise lost
    log.warning("intake: the connection was lost after a report's statement, which was stored")
    announce(announced)
    return filed
