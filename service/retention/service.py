"""The retention purge: closed cases past their period are crypto-shredded, delivered outbox rows dropped.

A case file is readable only through its data key, and that key exists only wrapped: once per organisation
(``case_key_grant``) and once for the reporter (``case_file.reporter_wrapped_key``). A purge deletes every
wrapped copy together with every ciphertext, in one transaction per case, so a case is either complete or
gone — never a key without its data or data whose key survives somewhere in the database.

Attachment files are outside the database and cannot share its transaction. They are deleted only after
the commit: a crash in between leaves blob files whose key no longer exists anywhere (unreadable), and
``sweep_orphan_blobs`` removes them on a later run. Deleting them first would instead leave a live case
whose evidence is gone.

Before that, a reporter who left a notification address is told (``purge_notice_days`` ahead, once per
closure, through the outbox like every reminder): a neutral mail that something on /fall needs attention
before a date, where the dossier and the files can still be downloaded. A case whose purge is nearer than
that when the run first sees it (a shorter period for its outcome, a re-closure) is told at once; one that is
already due is purged in the same run, and a notice then could only arrive after the address is gone.

What stays: the statistics extract (it holds no case id and must outlive the case, docs/statistics.md),
and the audit log, where each purge is one ``case.purged`` event with identifiers, codes and counts.

The same daily run also drops rows that are past their use: delivered outbox messages, used submission
tokens past their expiry, and sessions that no cookie can open any more.

Services here commit, unlike elsewhere: each case is its own transaction, so one case that fails is rolled
back alone and the run goes on with the next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth import sessions
from service.auth.sessions import REPORTER_SESSION
from service.cases import repository as case_rows
from service.cases.models import CaseStatus, ReminderLog
from service.evidence.blobs import BlobStore, StoredBlob
from service.i18n import LOCAL_ZONE
from service.identity.custody import KeyCustody, unneeded_epochs
from service.outbox.writer import enqueue
from service.reports.submissions import USED_KEPT_AFTER_EXPIRY
from service.retention import repository
from service.retention.policy import RetentionPolicy

log = logging.getLogger(__name__)

PURGED_ACTION = "case.purged"
# The reporter's notice before the purge: its reminder_log kind and its outbox topic.
NOTICE_KIND = "purge_notice"
NOTICE_TOPIC = "reminders.reporter_purge"
DEFAULT_NOTICE_DAYS = 14
# A blob is written before its attachment row commits. Younger unreferenced files may belong to an upload
# in progress; an hour is far beyond any upload's last write before its commit.
ORPHAN_MIN_AGE = timedelta(hours=1)
# Names per reference query in the sweep: bounded memory and bounded IN lists, however many blobs exist.
_SWEEP_BATCH = 500


class CaseResult(StrEnum):
    purged = "purged"
    # Re-opened (or re-closed later, or gone) since ``due`` listed it: kept, looked at again next run.
    not_due = "not_due"
    failed = "failed"


@dataclass(frozen=True)
class PurgeCandidate:
    case_id: str
    closed_at: datetime
    outcome: str | None
    due_since: datetime


@dataclass(frozen=True)
class CasePurge:
    candidate: PurgeCandidate
    result: CaseResult
    # The exception's class name only: a message could quote a value from the case.
    error: str | None = None
    # Blob files of the purged case that could not be deleted after the commit; the sweep retries them.
    leftover_blobs: int = 0


@dataclass(frozen=True)
class PurgeReport:
    now: datetime
    dry_run: bool
    # What ``due`` listed at the start of the run; on a dry run, exactly what a purge would remove.
    candidates: tuple[PurgeCandidate, ...]
    # One entry per candidate, in the same order; empty on a dry run.
    cases: tuple[CasePurge, ...]
    # Deleted, or on a dry run that would be deleted.
    outbox_messages: int
    orphan_blobs: int
    # Organisation key epochs destroyed because no remaining case needs them (docs/key-custody.md).
    key_epochs: int = 0
    # Used submission tokens past their expiry (a token that old is refused as expired anyway).
    submission_tokens: int = 0
    # Staff and reporter sessions past their absolute end or idle too long (no cookie opens them any more).
    expired_sessions: int = 0
    # Reporters told (on a dry run: who would be told) that their case will be purged soon.
    notices: int = 0

    def _with(self, result: CaseResult) -> tuple[CasePurge, ...]:
        return tuple(case for case in self.cases if case.result is result)

    @property
    def purged(self) -> tuple[CasePurge, ...]:
        return self._with(CaseResult.purged)

    @property
    def not_due(self) -> tuple[CasePurge, ...]:
        return self._with(CaseResult.not_due)

    @property
    def failed(self) -> tuple[CasePurge, ...]:
        return self._with(CaseResult.failed)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("retention needs a timezone-aware 'now'")
    return now


class RetentionService:
    def __init__(
        self,
        policy: RetentionPolicy,
        audit: AuditLog,
        blobs: BlobStore,
        *,
        notice_days: int = DEFAULT_NOTICE_DAYS,
        forget_tokens: Callable[[Session, str], int] | None = None,
    ) -> None:
        self.policy = policy
        self.audit = audit
        self.blobs = blobs
        self.notice_days = notice_days
        # The matching service's ``forget``: a purged case's perpetrator tokens go with it (they name the
        # case only under the matching key, so no foreign key can cascade; docs/matching.md).
        self.forget_tokens = forget_tokens

    def due(self, session: Session, now: datetime) -> list[PurgeCandidate]:
        """Closed cases whose period has passed at ``now``, oldest closure first. Reads only."""
        cutoffs, default_cutoff = self.policy.closed_before(_aware(now))
        return [
            PurgeCandidate(
                case_id=row.id,
                closed_at=row.closed_at,
                outcome=row.outcome,
                due_since=self.policy.due_since(row.outcome, row.closed_at),
            )
            for row in repository.closed_cases_due(session, cutoffs, default_cutoff)
            if row.closed_at is not None
        ]

    def purge(self, session: Session, now: datetime, *, dry_run: bool) -> PurgeReport:
        """Purge every due case, then delivered outbox rows and orphan blobs past their periods.

        ``now`` must be the wall clock in production: the orphan sweep's upload guard is measured from it.
        A dry run lists and counts the same things and changes nothing.

        Each case is purged in a transaction of its own (``purge_case``), and each notice is sent in one
        (``notify_reporters``): one that fails does not undo the others. What follows (outbox rows, used
        submission tokens, dead sessions, unneeded key epochs) is left to the caller's commit: the task or
        the command is that transaction.
        """
        now = _aware(now)
        candidates = tuple(self.due(session, now))
        if dry_run:
            return PurgeReport(
                now=now,
                dry_run=True,
                candidates=candidates,
                notices=len(self.notices_due(session, now)),
                cases=(),
                outbox_messages=self.purge_outbox(session, now, dry_run=True),
                orphan_blobs=self.sweep_orphan_blobs(session, now, dry_run=True),
                key_epochs=len(unneeded_epochs(session, now)),
                submission_tokens=self.purge_submission_tokens(session, now, dry_run=True),
                expired_sessions=self.purge_sessions(session, now, dry_run=True),
            )
        notices = self.notify_reporters(session, now)
        cases = tuple(self.purge_case(session, candidate, now) for candidate in candidates)
        # The sweep first: it ends its read transaction (a rollback), which must not drop the deletions below.
        orphan_blobs = self.sweep_orphan_blobs(session, now, dry_run=False)
        outbox_messages = self.purge_outbox(session, now, dry_run=False)
        submission_tokens = self.purge_submission_tokens(session, now, dry_run=False)
        expired_sessions = self.purge_sessions(session, now, dry_run=False)
        # Stored before the key epochs go (like each case above, a transaction of its own): a failure there
        # must not keep expired sessions, which hold sealed keys, for another day.
        session.commit()
        # Last: it appends to the audit log, whose chain lock is then held until the caller commits.
        key_epochs = self.destroy_key_epochs(session, now)
        return PurgeReport(
            now=now,
            dry_run=False,
            candidates=candidates,
            notices=len(notices),
            cases=cases,
            outbox_messages=outbox_messages,
            orphan_blobs=orphan_blobs,
            key_epochs=key_epochs,
            submission_tokens=submission_tokens,
            expired_sessions=expired_sessions,
        )

    def notices_due(self, session: Session, now: datetime) -> list[tuple[str, datetime, datetime]]:
        """(case id, closing time, purge time) of every case whose reporter is to be told now: closed, due
        within ``notice_days`` but not yet, with a notification address, not told of this closure. Reads
        only (and ends its read transaction)."""
        now = _aware(now)
        cutoffs, default_cutoff = self.policy.closed_before(now + timedelta(days=self.notice_days))
        rows = repository.closed_cases_to_notify(session, cutoffs, default_cutoff, NOTICE_KIND)
        session.rollback()
        due = []
        for row in rows:
            assert row.closed_at is not None
            purge_at = self.policy.due_since(row.outcome, row.closed_at)
            if purge_at > now:
                due.append((row.id, row.closed_at, purge_at))
        return due

    def notify_reporters(self, session: Session, now: datetime) -> list[str]:
        """Tell the reporters of ``notices_due`` through the outbox, each closure once: the reminder_log row
        and the outbox row commit together (one transaction per case), and a second worker's insert of the
        same row fails on its unique key and sends nothing. The payload holds the case id and the day before
        which to look, nothing else; the address is opened only when the mail is sent."""
        told = []
        for case_id, closed_at, purge_at in self.notices_due(session, now):
            # Locked and read again, as the purge does: a reporter whose case was re-opened since (a new
            # threat) must not be told it is about to be destroyed.
            current = repository.lock_case(session, case_id)
            if current is None or current.status != CaseStatus.closed.value or current.closed_at != closed_at:
                session.rollback()
                continue
            try:
                session.add(
                    ReminderLog(case_id=case_id, kind=NOTICE_KIND, ref=repository.closure_ref(closed_at))
                )
                # The day before which to act, in German time: the purge may run at any hour of that day.
                enqueue(
                    session,
                    NOTICE_TOPIC,
                    case_id=case_id,
                    purge_on=purge_at.astimezone(LOCAL_ZONE).date().isoformat(),
                )
                session.commit()
            except IntegrityError:
                session.rollback()
                continue
            told.append(case_id)
        if told:
            log.info("retention: %d reporters told of the coming purge", len(told))
        return told

    def destroy_key_epochs(self, session: Session, now: datetime) -> int:
        """After the purges: destroy every retired organisation key epoch that no case needs any more, so
        that crypto-shredding also reaches the organisation keys. The caller commits (it audits: call it
        last before the commit)."""
        destroyed = KeyCustody(self.audit).destroy_unneeded_epochs(session, now)
        return len(destroyed)

    def purge_case(self, session: Session, candidate: PurgeCandidate, now: datetime) -> CasePurge:
        """Crypto-shred one case in its own transaction; commits, or rolls back and reports the failure.

        The case is locked and checked again first: ``due`` ran earlier, and a counsellor may have re-opened
        the case since. Only a case that is still closed and still past its period is purged.
        """
        now = _aware(now)
        case_id = candidate.case_id
        try:
            current = repository.lock_case(session, case_id)
            if (
                current is None
                or current.status != CaseStatus.closed.value
                or current.closed_at is None
                or self.policy.due_since(current.outcome, current.closed_at) > now
            ):
                session.rollback()
                return CasePurge(candidate, CaseResult.not_due)
            blob_names = repository.blob_names_of(session, case_id)
            if self.forget_tokens is not None:
                self.forget_tokens(session, case_id)
            counts = case_rows.delete_case_rows(session, case_id)
            if counts.pop("case") != 1:
                # Cannot happen under the lock; if it does, commit nothing rather than a partial purge.
                raise RuntimeError("case row not deleted")
            # A reporter signed in now holds the case key sealed in a session: it ends with the case.
            counts["reporter_sessions"] = sessions.destroy_all_of(session, REPORTER_SESSION, case_id)
            # Last before the commit, as AuditLog asks: from here on every other appender waits for us.
            self.audit.append(
                session,
                actor_kind="system",
                actor_id=None,
                action=PURGED_ACTION,
                object_type="case",
                object_id=case_id,
                details={
                    "outcome": current.outcome,
                    "retention_days": self.policy.retention_days(current.outcome),
                    "policy_sha256": self.policy.sha256,
                    **counts,
                },
            )
            session.commit()
        except Exception as exc:
            session.rollback()
            # The class name only, in the log as in the report: messages can carry SQL parameters.
            log.warning("retention: purge of case %s failed (%s); rolled back", case_id, type(exc).__name__)
            return CasePurge(candidate, CaseResult.failed, error=type(exc).__name__)
        return CasePurge(candidate, CaseResult.purged, leftover_blobs=self._delete_blobs(blob_names))

    def _delete_blobs(self, names: Iterable[str]) -> int:
        """Delete a purged case's files; returns how many could not be deleted (the sweep gets them)."""
        leftover = 0
        for name in names:
            try:
                self.blobs.delete(name)
            # ValueError: a name that is no blob name (a row written past the service); the case is gone
            # either way, and the run must go on.
            except (OSError, ValueError) as exc:
                leftover += 1
                log.warning("retention: blob of a purged case left for the sweep (%s)", type(exc).__name__)
        return leftover

    def purge_outbox(self, session: Session, now: datetime, *, dry_run: bool) -> int:
        """Delete (or count) outbox rows completed before their period. The caller commits."""
        cutoff = self.policy.outbox_completed_before(_aware(now))
        if dry_run:
            return repository.count_completed_outbox(session, cutoff)
        return repository.delete_completed_outbox(session, cutoff)

    def purge_submission_tokens(self, session: Session, now: datetime, *, dry_run: bool) -> int:
        """Delete (or count) used submission tokens a day past their lifetime. The caller commits.

        Kept until then so that a second submission of the same form view is recognised, also one sent just
        after the token's end (``USED_KEPT_AFTER_EXPIRY``); after it, the row is only a trace of a form
        sent."""
        cutoff = _aware(now) - USED_KEPT_AFTER_EXPIRY
        if dry_run:
            return repository.count_expired_submission_tokens(session, cutoff)
        return repository.delete_expired_submission_tokens(session, cutoff)

    def purge_sessions(self, session: Session, now: datetime, *, dry_run: bool) -> int:
        """Delete (or count) the sessions no cookie can open any more. The caller commits.

        ``resume`` deletes a dead session only when its cookie comes back; a browser closed for good never
        brings it, and its row would keep the sealed case key or staff key for ever."""
        now = _aware(now)
        if dry_run:
            return sessions.count_expired(session, now)
        return sessions.purge_expired(session, now)

    def sweep_orphan_blobs(self, session: Session, now: datetime, *, dry_run: bool = False) -> int:
        """Delete (or count) blob files that no attachment row references and that are older than an hour.

        Catches what a crash between a purge's commit and its file deletion left behind, and files of
        uploads whose transaction never committed. Each batch of files is listed (with its age) before the
        references are read: a file younger than the guard is never touched, and an older one either has
        its row committed by the time of the read or will never get one.
        """
        cutoff = _aware(now) - ORPHAN_MIN_AGE
        removed = 0
        for batch in _batches(blob for blob in self.blobs.stored() if blob.modified_at <= cutoff):
            referenced = repository.referenced_among(session, {blob.name for blob in batch})
            for blob in batch:
                if blob.name in referenced:
                    continue
                if not dry_run:
                    try:
                        self.blobs.delete_stored(blob)
                    except OSError as exc:
                        log.warning("retention: orphan blob not deleted (%s)", type(exc).__name__)
                        continue
                removed += 1
        # End the read transaction rather than leave the caller's connection idle in one.
        session.rollback()
        return removed


def _batches(blobs: Iterable[StoredBlob]) -> Iterator[list[StoredBlob]]:
    batch: list[StoredBlob] = []
    for blob in blobs:
        batch.append(blob)
        if len(batch) == _SWEEP_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
