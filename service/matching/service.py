"""The one code path that uses the matching key (docs/matching.md).

Whoever can compute a token can test a guessed name against every token stored, so the key is used here and
nowhere else, and the only way in from outside is a reporter's consent with identifiers of their own case
(intake on /melden and the JSON API, or /fall). Every identifier looked up counts against a service-wide
budget per hour (the rate limiter, shared by every process); a match that fires is audited without content
(``matching.match``: how many cases and organisations, no token, no case id). A match tells the holding
organisations that a case they hold shares an identifier (a content-free notice through the outbox) and the
case page which organisations hold the other cases; never the other reporter, case or text.

Two cases match when they share a token; two cases are two reporters (a further incident of the same
reporter is added to the same case, and shares its tokens). A token of a withdrawn or purged case is deleted
(``forget``), so it can never match again; a reference to a case that is gone is deleted when met.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, distinct, func, insert, select, text
from sqlalchemy.orm import Session, aliased

from service.audit import AuditLog
from service.cases.models import Case
from service.crypto import DecryptionError, case_reference, open_case_reference, perpetrator_token
from service.db import utcnow
from service.identity.models import CaseKeyGrant, Organisation
from service.matching.models import PerpetratorToken
from service.matching.normalise import Identifier
from service.outbox.models import OutboxMessage
from service.outbox.writer import enqueue
from service.ratelimit.service import Limit, RateLimiter

log = logging.getLogger("rueckhalt.matching")

MATCH_TOPIC = "notifications.perpetrator_match"
MATCH_ACTION = "matching.match"
# At most one match notice per case and holding organisation in this time. A reporter who withdraws the
# consent deletes the case's tokens, so adding the same identifiers again is a new match for ``register``:
# without this, a hostile reporter looping withdraw → add had the other case's counsellors mailed on every
# turn (tests/matching/test_hostile_reporter_loop.py). A match within the interval is not dropped: one
# notice is scheduled for the interval's end, so a real new match is still told, a day late at worst (the
# case page shows it at once).
MATCH_NOTICE_INTERVAL = timedelta(hours=24)
# The first key of PostgreSQL's two-key advisory locks taken per case before its match notices are decided
# (``_lock_notices``); the two-key space does not overlap the one-key locks of the tokens.
NOTICE_LOCK_SPACE = 0x6D6E  # "mn"
# The rate limiter's key for the service-wide budget: the same bucket in every process.
_BUDGET_CLIENT = "service-wide"


@dataclass(frozen=True)
class Shared:
    """What a holder of a case is shown of its matches: counts and organisation names, nothing else."""

    cases: int
    organisations: tuple[str, ...]
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class Budget:
    """Look-ups granted by ``MatchingService.reserve``, taken before the caller's transaction writes (the
    database's counter must not wait for that transaction's write lock on SQLite)."""

    granted: bool
    count: int


@dataclass(frozen=True)
class Registered:
    # False: the budget of this hour was used up; nothing was stored or looked up.
    done: bool
    # Other cases that share a newly stored token (0 when none, or when not done).
    matched_cases: int = 0


def matching_limit(per_hour: int) -> Limit:
    return Limit("matching", per_hour, 3600, per_client=False)


class MatchingService:
    def __init__(self, matching_key: bytes, audit: AuditLog, limiter: RateLimiter, limit: Limit) -> None:
        self._key = matching_key
        self._audit = audit
        self._limiter = limiter
        self._limit = limit

    # -- the reporter's consent -----------------------------------------------------------------------------
    def reserve(self, count: int) -> Budget:
        """Count ``count`` look-ups against the service-wide budget of the hour (every process shares it);
        not granted once it is used up. Call it before the transaction that registers writes anything.

        One count of ``count`` (one round trip to the shared counter, not one per identifier); nothing is
        counted for none."""
        if count <= 0:
            return Budget(granted=True, count=0)
        if not self._limiter.allow(self._limit, _BUDGET_CLIENT, count):
            log.warning("matching: the hourly budget of look-ups is used up; identifiers wait")
            return Budget(granted=False, count=count)
        return Budget(granted=True, count=count)

    def register(
        self, session: Session, case_id: str, identifiers: Sequence[Identifier], budget: Budget
    ) -> Registered:
        """Store the tokens of a case's identifiers and tell the holders of every case that now shares one.

        Runs inside the caller's transaction, last before its commit (the audit event, if a match fires, is
        appended here). Every identifier needs one look-up of ``budget`` (``reserve``); without it nothing
        is stored (``done`` False) and the caller keeps the identifiers sealed for a later try. A match
        fires only for tokens not stored for this case before, so sending the same identifiers twice tells
        nobody a second time."""
        if not identifiers:
            return Registered(done=True)
        if not budget.granted or budget.count < len(identifiers):
            return Registered(done=False)
        reference = case_reference(self._key, case_id)
        wanted = {
            perpetrator_token(self._key, item.kind.value, item.scope, item.value): item.kind.value
            for item in identifiers
        }
        self._lock(session, wanted)
        stored = set(
            session.scalars(
                select(PerpetratorToken.token).where(
                    PerpetratorToken.case_ref == reference, PerpetratorToken.token.in_(wanted)
                )
            )
        )
        new = {token: kind for token, kind in wanted.items() if token not in stored}
        if not new:
            return Registered(done=True)
        session.execute(
            insert(PerpetratorToken),
            [{"token": token, "case_ref": reference, "kind": kind} for token, kind in new.items()],
        )
        others = self._cases_of(
            session,
            set(
                session.scalars(
                    select(PerpetratorToken.case_ref).where(
                        PerpetratorToken.token.in_(new), PerpetratorToken.case_ref != reference
                    )
                )
            ),
        )
        if others:
            self._announce(session, [case_id, *sorted(others)])
        return Registered(done=True, matched_cases=len(others))

    def waiting(self, session: Session, case_id: str, identifiers: Sequence[Identifier]) -> list[Identifier]:
        """Those of a case's identifiers (opened with its case key by the caller) that have no token stored
        for it: left over by a used-up budget, or deleted by a rotation of the matching key. Reads only this
        case's rows (by its reference), so it tests no guess against other cases and costs no look-up."""
        if not identifiers:
            return []
        reference = case_reference(self._key, case_id)
        tokens = {
            perpetrator_token(self._key, item.kind.value, item.scope, item.value): item
            for item in identifiers
        }
        stored = set(
            session.scalars(
                select(PerpetratorToken.token).where(
                    PerpetratorToken.case_ref == reference, PerpetratorToken.token.in_(tokens)
                )
            )
        )
        return [item for token, item in tokens.items() if token not in stored]

    def forget(self, session: Session, case_id: str) -> int:
        """Delete every token of a case (consent withdrawn, case purged), in the caller's transaction."""
        reference = case_reference(self._key, case_id)
        result = session.execute(delete(PerpetratorToken).where(PerpetratorToken.case_ref == reference))
        return int(getattr(result, "rowcount", 0) or 0)

    def registered(self, session: Session, case_id: str) -> bool:
        """Whether the case has tokens (identifiers given and looked up, consent not withdrawn)."""
        reference = case_reference(self._key, case_id)
        return (
            session.scalar(
                select(PerpetratorToken.token).where(PerpetratorToken.case_ref == reference).limit(1)
            )
            is not None
        )

    # -- what a holder of the case is shown -----------------------------------------------------------------
    def shared_with(self, session: Session, case_id: str) -> Shared | None:
        """The other cases sharing a token with this one: how many, and the organisations that see them.

        For a caller that has already checked that its subject may read the case (the case page)."""
        reference = case_reference(self._key, case_id)
        mine = select(PerpetratorToken.token).where(PerpetratorToken.case_ref == reference)
        rows = session.execute(
            select(PerpetratorToken.case_ref, PerpetratorToken.kind).where(
                PerpetratorToken.token.in_(mine), PerpetratorToken.case_ref != reference
            )
        ).all()
        if not rows:
            return None
        others = self._cases_of(session, {row[0] for row in rows}, prune=False)
        if not others:
            return None
        names = session.scalars(
            select(Organisation.display_name)
            .distinct()
            .join(CaseKeyGrant, CaseKeyGrant.organisation_id == Organisation.id)
            .where(CaseKeyGrant.case_id.in_(others), CaseKeyGrant.active.is_(True))
            .order_by(Organisation.display_name)
        ).all()
        return Shared(
            cases=len(others), organisations=tuple(names), kinds=tuple(sorted({str(row[1]) for row in rows}))
        )

    # -- internals -----------------------------------------------------------------------------------------
    @staticmethod
    def _last_notices(session: Session, now: datetime) -> dict[tuple[str, str], datetime]:
        """When each (case, organisation) was last told of a match, or will be (a scheduled notice), for the
        notices not older than the interval. Read from the outbox, whose delivered rows are kept for weeks
        (policies/retention.yaml); matches are rare, so the rows of one interval are few."""
        rows = session.execute(
            select(OutboxMessage.payload, OutboxMessage.available_at).where(
                OutboxMessage.topic == MATCH_TOPIC,
                OutboxMessage.available_at > now - MATCH_NOTICE_INTERVAL,
            )
        ).all()
        last: dict[tuple[str, str], datetime] = {}
        for payload, available_at in rows:
            key = (str(payload.get("case_id")), str(payload.get("organisation_id")))
            last[key] = max(available_at, last.get(key, available_at))
        return last

    @staticmethod
    def _lock(session: Session, tokens: Iterable[bytes]) -> None:
        """Serialise registrations of the same token on PostgreSQL: two reports naming the same person at
        the same moment must see each other (read committed would let each miss the other's uncommitted
        row). Transaction-level advisory locks, taken in one order (no deadlock). SQLite has one writer at a
        time anyway."""
        if session.get_bind().dialect.name != "postgresql":
            return
        for token in sorted(tokens):
            number = int.from_bytes(token[:8], "big", signed=True)
            session.execute(text("SELECT pg_advisory_xact_lock(:number)"), {"number": number})

    @staticmethod
    def _lock_notices(session: Session, case_ids: Iterable[str]) -> None:
        """Serialise the notice decisions for the same case on PostgreSQL. Two reports that match one case
        through different identifiers hold different token locks; each would read the outbox without the
        other's uncommitted notice, and the case's holders would be told twice at once, which a hostile
        reporter could repeat. With a lock per case the second waits for the first one's commit, sees its
        notice and schedules its own for the end of the interval. Taken after the token locks and in one
        order, by every registration alike (no deadlock: ``register`` runs once per transaction, and nothing
        after it takes a lock that comes before); SQLite has one writer at a time anyway."""
        if session.get_bind().dialect.name != "postgresql":
            return
        # Sorted by the key locked, not by case id: two ids whose keys collide still lock in one order.
        keys = {
            int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:4], "big", signed=True)
            for case_id in case_ids
        }
        for key in sorted(keys):
            session.execute(
                text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), CAST(:key AS integer))"),
                {"space": NOTICE_LOCK_SPACE, "key": key},
            )

    def _cases_of(self, session: Session, references: set[bytes], *, prune: bool = True) -> set[str]:
        """The ids of the cases behind references that still exist; references to a case that is gone
        (or that no longer open) are deleted when ``prune`` (they can never match again): by registration,
        which commits, never by a page view, which reads only (a delete there would be rolled back and would
        take SQLite's write lock for a GET)."""
        ids: dict[bytes, str] = {}
        for reference in references:
            try:
                ids[reference] = open_case_reference(self._key, reference)
            except DecryptionError:
                log.warning("matching: a case reference that does not open under the matching key")
        existing = (
            set(session.scalars(select(Case.id).where(Case.id.in_(set(ids.values()))))) if ids else set()
        )
        stale = [reference for reference in references if ids.get(reference) not in existing]
        if stale and prune:
            session.execute(delete(PerpetratorToken).where(PerpetratorToken.case_ref.in_(stale)))
        return {case_id for case_id in ids.values() if case_id in existing}

    def _announce(self, session: Session, case_ids: list[str]) -> None:
        """A content-free notice to every organisation that sees one of the cases (one per case it holds),
        then the audit event: last before the caller's commit, as AuditLog asks."""
        holders = session.execute(
            select(CaseKeyGrant.case_id, CaseKeyGrant.organisation_id)
            .where(CaseKeyGrant.case_id.in_(case_ids), CaseKeyGrant.active.is_(True))
            .order_by(CaseKeyGrant.case_id, CaseKeyGrant.organisation_id)
        ).all()
        self._lock_notices(session, case_ids)
        now = utcnow()
        last = self._last_notices(session, now)
        for held, organisation_id in holders:
            told_at = last.get((held, organisation_id))
            if told_at is None or told_at <= now - MATCH_NOTICE_INTERVAL:
                enqueue(session, MATCH_TOPIC, case_id=held, organisation_id=organisation_id)
            elif told_at <= now:
                # Told within the interval: one more notice when it ends (none is scheduled yet, or the
                # latest notice would lie in the future).
                notice = enqueue(session, MATCH_TOPIC, case_id=held, organisation_id=organisation_id)
                notice.available_at = told_at + MATCH_NOTICE_INTERVAL
        session.flush()
        self._audit.append(
            session,
            actor_kind="system",
            actor_id=None,
            action=MATCH_ACTION,
            object_type="matching",
            object_id=None,
            details={"cases": len(case_ids), "organisations": len({org for _, org in holders})},
        )


def cases_in_clusters(session: Session) -> int:
    """How many cases share at least one token with another case (the dashboard's figure). Needs no key:
    equal tokens are equal bytes, and different references are different cases."""
    other = aliased(PerpetratorToken)
    return int(
        session.scalar(
            select(func.count(distinct(PerpetratorToken.case_ref))).where(
                select(other.token)
                .where(other.token == PerpetratorToken.token, other.case_ref != PerpetratorToken.case_ref)
                .exists()
            )
        )
        or 0
    )
