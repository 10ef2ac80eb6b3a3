"""Queries on organisations, their members and key epochs; nothing else builds them."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Dialect, delete, event, func, select
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from service.db_raw import fetch_raw
from service.identity.models import MemberKeyGrant, Membership, Organisation, OrganisationKeyEpoch, StaffUser


def by_slug(session: Session, slug: str) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.slug == slug))


def all_organisations(session: Session) -> Sequence[Organisation]:
    return session.scalars(select(Organisation).order_by(Organisation.slug)).all()


@dataclass(frozen=True)
class Receiver:
    id: str
    slug: str
    display_name: str
    kind: str
    # The key epoch of the public key below (recorded with each case key grant).
    epoch: int
    # SHA-256 of the organisation's public key, computed by the database: the intake finds the parsed key
    # in its cache by this digest and reads the key bytes only for a key it has not seen (``PublicKeys``).
    key_digest: bytes


# Built once: the intake runs it for every report (the active flag is read fresh each time all the same).
_RECEIVERS = select(
    Organisation.id,
    Organisation.slug,
    Organisation.display_name,
    Organisation.kind,
    Organisation.current_epoch,
    func.sha256(Organisation.public_key).label("key_digest"),
).where(Organisation.active.is_(True), Organisation.public_key.is_not(None))


def receivers(session: Session) -> dict[str, Receiver]:
    """Organisations that can receive a case now: active and holding a public key.

    The intake reads them through ``ReceiverCache`` (at most once a second; every grant is checked by its
    insert). Without the key bytes: a digest names each key (SQLite gets ``sha256`` from ``service.db``). On
    PostgreSQL through psycopg's raw cursor (``fetch_raw``): twenty plain tuples need none of SQLAlchemy's
    result machinery, which cost more than the query. An organisation whose row reads as it did on the last
    report is the same ``Receiver`` object as then (``_known``): nothing is built for it.
    """
    connection = session.connection()
    rows: Iterable[_ReceiverRow]
    if connection.dialect.name == "postgresql":
        rows = cast(list[_ReceiverRow], fetch_raw(session, _receivers_sql(connection.dialect)))
    else:
        rows = (cast(_ReceiverRow, tuple(row)) for row in connection.execute(_RECEIVERS))
    found: dict[str, Receiver] = {}
    for row in rows:
        receiver = _known.get(row)
        if receiver is None:
            receiver = _remember(row)
        found[receiver.slug] = receiver
    return found


# How long the intake may route with the organisations it read last. Safe for any age: every grant it
# writes is checked against the organisation's row in the same statement (``reports.repository``), and a
# grant to one disabled or re-keyed since is refused there and filed again with a fresh read. What the age
# bounds is how late an organisation that newly has a key (or was enabled, or renamed) is seen: a second.
RECEIVERS_MAX_AGE = 1.0


class ReceiverCache:
    """The intake's last read of ``receivers``, reused for up to ``RECEIVERS_MAX_AGE`` seconds.

    Reading them on every report cost a round trip and, in PostgreSQL, every organisation's key read out of
    line to hash it: a fifth of the database's time per report (docs/intake-cost.md, session 13). Reuse is
    sound because nothing the cache could get wrong reaches a case: a grant to an organisation disabled or
    re-keyed since the read fails in the insert itself (``StaleGrant``), and the intake then reads afresh.
    An organisation changed by this process (a page, the CLI, a test) is seen at once: its commit makes the
    next read fresh (``_OrganisationChanges``).
    """

    def __init__(
        self, max_age: float = RECEIVERS_MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_age = max_age
        self._clock = clock
        # (read at, change generation when the read began, receivers), replaced whole: threads read it bare.
        self._last: tuple[float, int, dict[str, Receiver]] | None = None

    def read(self, session: Session, *, fresh: bool = False) -> tuple[dict[str, Receiver], bool]:
        """The receivers, and True if they are the cached read (not read in this transaction)."""
        last = self._last
        now = self._clock()
        if (
            not fresh
            and last is not None
            and now - last[0] < self._max_age
            and last[1] == _OrganisationChanges.generation
        ):
            return last[2], True
        # Taken before the read: a change committed while it runs makes the next call read again.
        generation = _OrganisationChanges.generation
        found = receivers(session)
        if not session.info.get(_CHANGED):
            # Not a read beside this session's own uncommitted change of an organisation: it may roll back.
            self._last = (now, generation, found)
        return found, False

    def forget(self) -> None:
        self._last = None


class _OrganisationChanges:
    """Counts commits of this process that changed an organisation's row (any ``ReceiverCache`` then reads
    afresh). Bumped after the commit, not at the flush: a read between the two would see the old row."""

    generation = 0
    _lock = threading.Lock()

    @classmethod
    def bump(cls) -> None:
        with cls._lock:
            cls.generation += 1


_CHANGED = "rueckhalt.organisation_changed"


@event.listens_for(Session, "after_flush")
def _note_organisation_change(session: Session, _context: Any) -> None:
    if any(isinstance(obj, Organisation) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_organisation_statement(state: ORMExecuteState) -> None:
    # An UPDATE, INSERT or DELETE statement on the table (a bulk change, a test's or a migration's).
    if (state.is_update or state.is_delete or state.is_insert) and any(
        mapper.class_ is Organisation for mapper in state.all_mappers
    ):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _organisations_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the change is not stored until the outer transaction commits
    if session.info.pop(_CHANGED, False):
        _OrganisationChanges.bump()


@event.listens_for(Session, "after_soft_rollback")
def _organisations_rolled_back(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction, not a savepoint within it
        session.info.pop(_CHANGED, None)


# A row of ``_RECEIVERS``: id, slug, display name, kind, key epoch, key digest.
_ReceiverRow = tuple[str, str, str, str, int, bytes]

# The Receivers of the rows read last, by the row as read (every column, the key digest included: a row
# that changed in any of them is a new entry). Bounded: a process never holds more than a few hundred.
_known: dict[_ReceiverRow, Receiver] = {}
_KNOWN_MAX = 512


def _remember(row: _ReceiverRow) -> Receiver:
    id_, slug, display_name, kind, epoch, digest = row
    receiver = Receiver(
        id=id_, slug=slug, display_name=display_name, kind=kind, epoch=epoch, key_digest=bytes(digest)
    )
    if len(_known) >= _KNOWN_MAX:
        _known.clear()
    _known[row] = receiver
    return receiver


@functools.lru_cache(maxsize=4)
def _receivers_sql(dialect: Dialect) -> str:
    """``_RECEIVERS`` as PostgreSQL's SQL (it has no parameters: the conditions are literals)."""
    compiled = _RECEIVERS.compile(dialect=dialect)
    if compiled.params:
        raise ValueError("the receivers query has no parameters")
    return str(compiled)


def public_keys(session: Session, organisation_ids: Collection[str]) -> dict[str, bytes]:
    rows = session.execute(
        select(Organisation.id, Organisation.public_key).where(Organisation.id.in_(list(organisation_ids)))
    ).all()
    return {row.id: row.public_key for row in rows if row.public_key is not None}


# -- memberships ------------------------------------------------------------------------------------------


def membership(session: Session, user_id: str, organisation_id: str) -> Membership | None:
    return session.scalar(
        select(Membership).where(Membership.user_id == user_id, Membership.organisation_id == organisation_id)
    )


def memberships_of(session: Session, user_id: str) -> Sequence[tuple[Membership, Organisation]]:
    """A user's memberships with their organisations, by organisation name (for pages and the CLI)."""
    rows = session.execute(
        select(Membership, Organisation)
        .join(Organisation, Organisation.id == Membership.organisation_id)
        .where(Membership.user_id == user_id)
        .order_by(Organisation.slug)
    ).all()
    return [(row[0], row[1]) for row in rows]


def delete_membership(session: Session, user_id: str, organisation_id: str) -> bool:
    result = session.execute(
        delete(Membership).where(Membership.user_id == user_id, Membership.organisation_id == organisation_id)
    )
    return bool(getattr(result, "rowcount", 0))


def delete_memberships_of(session: Session, user_id: str) -> int:
    result = session.execute(delete(Membership).where(Membership.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def is_member_of_any(session: Session, user_id: str, organisation_ids: Collection[str]) -> bool:
    """Whether an enabled account belongs to one of these organisations (who may be given a case)."""
    if not organisation_ids:
        return False
    found = session.scalar(
        select(Membership.user_id)
        .join(StaffUser, StaffUser.id == Membership.user_id)
        .where(
            Membership.user_id == user_id,
            Membership.organisation_id.in_(list(organisation_ids)),
            StaffUser.disabled.is_(False),
        )
        .limit(1)
    )
    return found is not None


def members(session: Session, organisation_ids: Collection[str]) -> list[tuple[str, str]]:
    """(user id, display name) of the enabled members of these organisations, by name, each once."""
    if not organisation_ids:
        return []
    rows = session.execute(
        select(StaffUser.id, StaffUser.display_name)
        .join(Membership, Membership.user_id == StaffUser.id)
        .where(Membership.organisation_id.in_(list(organisation_ids)), StaffUser.disabled.is_(False))
        .distinct()
        .order_by(StaffUser.display_name, StaffUser.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def members_of(session: Session, organisation_id: str) -> list[tuple[Membership, StaffUser]]:
    """Memberships of an organisation with their accounts, by name (the lead's page)."""
    rows = session.execute(
        select(Membership, StaffUser)
        .join(StaffUser, StaffUser.id == Membership.user_id)
        .where(Membership.organisation_id == organisation_id)
        .order_by(StaffUser.display_name, StaffUser.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def members_holding_epoch(session: Session, organisation_id: str, epoch: int) -> set[str]:
    """User ids holding a grant of this epoch of the organisation key."""
    return set(
        session.scalars(
            select(MemberKeyGrant.user_id).where(
                MemberKeyGrant.organisation_id == organisation_id, MemberKeyGrant.epoch == epoch
            )
        )
    )


def lead_ids(session: Session, organisation_id: str) -> set[str]:
    """The user ids of the organisation's leads who hold its current key (a lead in name only does not
    count: they could grant nobody)."""
    organisation = session.get(Organisation, organisation_id)
    epoch = organisation.current_epoch if organisation is not None else 0
    return set(
        session.scalars(
            select(Membership.user_id)
            .join(
                MemberKeyGrant,
                (MemberKeyGrant.user_id == Membership.user_id)
                & (MemberKeyGrant.organisation_id == Membership.organisation_id)
                & (MemberKeyGrant.epoch == epoch),
            )
            .where(Membership.organisation_id == organisation_id, Membership.role == "lead")
        )
    )


def epoch_public_key(session: Session, organisation_id: str, epoch: int) -> bytes:
    key = session.scalar(
        select(OrganisationKeyEpoch.public_key).where(
            OrganisationKeyEpoch.organisation_id == organisation_id, OrganisationKeyEpoch.epoch == epoch
        )
    )
    if key is None:
        raise LookupError("no such key epoch")
    return bytes(key)
