"""Merging a case filed again after a lost receipt into the reporter's earlier case (issue 18).

A counsellor who holds both cases proposes it (``CaseService.propose_merge``); nothing moves until the
reporter confirms from the newer case on /fall, signed in with the newer receipt, typing that receipt again.

Which receipt survives: the newer one. The reporter lost the older receipt (that is why there are two cases);
keeping it would lock them out of the merged case, and a lost receipt that turns up in someone else's
hands afterwards opens nothing. Which case survives: the older one, with its id, history, holders,
acknowledgement and assignee (what the counsellors work with); the newer case's incidents, messages, notes
and files move into it,
re-sealed under the older case's key, and the newer case is deleted. The older case's reporter key is wrapped
anew for the newer receipt, and the receipt's look-up moves with it: the code the reporter has opens the
merged case, and /fall says so.

Where the older key comes from: the proposal sealed it under the newer case's key, and every organisation
holding the newer case must hold the older one (checked when proposing and again here), so that key reaches
nobody who could not open the older case already, except the reporter, whose case it is.

One transaction, the caller's (the reporter's page commits it, with the reporter's session moved to the
merged case): the files are encrypted anew into new blobs before the commit; a failure anywhere rolls the
database back and deletes the new blobs, so both cases are as they were. Only after the commit are the old
blobs deleted (a crash in between leaves blobs no row names, which the retention sweep removes). Which of the
two happens is decided by how the caller's transaction ends (``_when_ended``), not by the merge itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.cases import events, repository
from service.cases.contact import open_address, seal_address
from service.cases.identifiers import open_typed, seal_typed
from service.cases.links import merge_key_context
from service.cases.models import (
    Case,
    CaseMessage,
    CaseNote,
    CaseStatus,
    Incident,
    MergeProposal,
    ReminderLog,
    RoutingRecord,
)
from service.cases.repository import granted_organisation_ids
from service.crypto import (
    Context,
    DecryptionError,
    InvalidReceipt,
    StreamSealer,
    constant_time_equal,
    keyed_hash,
    new_salt,
    normalize_receipt,
    open_sealed,
    open_stream,
    receipt_lookup,
    seal,
    wrap_for_reporter,
)
from service.db import after_commit, after_rollback, utcnow
from service.errors import NotFound, ValidationFailed
from service.evidence.blobs import BlobStore
from service.evidence.models import Attachment
from service.extract.models import StatisticsExtract
from service.extract.service import answers_of
from service.taxonomy.loader import ANSWER_KINDS, more_urgent
from service.validation import public_error


@dataclass(frozen=True)
class PendingMerge:
    """What the reporter of the newer case is shown before confirming: when the earlier report was filed
    and which organisations hold it (the same that hold this one, or more)."""

    older_created_at: str
    holders: list[str]


@dataclass(frozen=True)
class Merged:
    case_id: str
    data_key: bytes
    incidents: int


def _carry_answers(moved: StatisticsExtract, first: StatisticsExtract | None) -> None:
    """One report, one set of KoMo answers: the merged report's answers join the first row of the case it
    joins (each code once), and its own rows become further incidents' (None: not asked). Left on both,
    one reporter's answers would count twice in the catalogue and the release, which bound each reporter's
    contribution by their answers on one row."""
    for kind in ANSWER_KINDS:
        theirs: list[str] | None = getattr(moved, kind)
        if theirs is None:
            continue
        if first is not None:
            ours: list[str] | None = getattr(first, kind)
            setattr(first, kind, answers_of([*(ours or []), *theirs]))
        setattr(moved, kind, None)


def _reseal(old: bytes, new: bytes, sealed: bytes, old_context: Context, new_context: Context) -> bytes:
    return seal(new, open_sealed(old, sealed, old_context), new_context)


class CaseMerger:
    def __init__(
        self,
        audit: AuditLog,
        lookup_pepper: bytes,
        statistics_key: bytes,
        notification_key: bytes,
        blobs: BlobStore,
    ) -> None:
        self.audit = audit
        self._pepper = lookup_pepper
        self._statistics_key = statistics_key
        self._notification_key = notification_key
        self.blobs = blobs

    def pending(self, session: Session, newer_case_id: str) -> PendingMerge | None:
        proposal = session.get(MergeProposal, newer_case_id)
        if proposal is None:
            return None
        older = session.get(Case, proposal.older_case_id)
        if older is None:
            return None
        return PendingMerge(
            older_created_at=older.created_at.isoformat(),
            holders=repository.active_holder_names(session, older.id),
        )

    def decline(self, session: Session, newer_case_id: str) -> bool:
        """The reporter says no: the proposal goes, audited without content."""
        proposal = session.get(MergeProposal, newer_case_id)
        if proposal is None:
            return False
        session.delete(proposal)
        self.audit.append(
            session,
            actor_kind="reporter",
            actor_id=None,
            action="case.merge_declined",
            object_type="case",
            object_id=newer_case_id,
            details=None,
        )
        return True

    def confirm(self, session: Session, newer_case_id: str, newer_key: bytes, receipt_text: str) -> Merged:
        """Merge the newer case into the older one in the caller's transaction, which commits it; NotFound
        when nothing is proposed (any more), ValidationFailed for a receipt that is not this case's or a
        proposal that no longer holds.

        The blobs follow the caller's transaction: committed, the old ones are deleted; rolled back (here or
        by a later step of the caller), the new ones. The caller rolls back when this raises."""
        written: list[str] = []
        replaced: list[str] = []

        def committed() -> None:
            for name in replaced:
                self.blobs.delete(name)

        def rolled_back() -> None:
            for name in written:
                self.blobs.delete(name)

        after_commit(session, committed)
        after_rollback(session, rolled_back)
        merged, old_blobs = self._merge(session, newer_case_id, newer_key, receipt_text, written)
        replaced.extend(old_blobs)
        return merged

    def _check_receipt(self, newer: Case, receipt_text: str) -> str:
        try:
            receipt = normalize_receipt(receipt_text)
        except InvalidReceipt:
            receipt = None
        if receipt is None or not constant_time_equal(
            receipt_lookup(self._pepper, receipt), newer.lookup_hash
        ):
            raise ValidationFailed([public_error(["receipt"], "receipt_mismatch", "not this case's receipt")])
        return receipt

    def _merge(
        self, session: Session, newer_id: str, newer_key: bytes, receipt_text: str, written: list[str]
    ) -> tuple[Merged, list[str]]:
        proposal = session.get(MergeProposal, newer_id)
        if proposal is None:
            raise NotFound()
        older_id = proposal.older_case_id
        # Both locked until the commit (the retention purge and a further incident lock them too), in one
        # order, so that two merges of the same pair cannot wait for each other.
        locked = {case_id: repository.lock_case(session, case_id) for case_id in sorted((older_id, newer_id))}
        newer, older = locked[newer_id], locked[older_id]
        if newer is None or older is None:
            raise NotFound()
        receipt = self._check_receipt(newer, receipt_text)
        try:
            older_key = open_sealed(newer_key, proposal.older_key, merge_key_context(newer_id, older_id))
        except DecryptionError:
            raise NotFound() from None
        if not granted_organisation_ids(session, newer_id) <= granted_organisation_ids(session, older_id):
            # An organisation came to hold the newer case since the proposal: it must not get the older key.
            # Committed although the answer is an error: the stale proposal must go for good, not with this
            # request's rollback (the reporter would be asked again). Nothing of the merge is written yet, and
            # the reporter's page writes nothing before it calls this.
            session.delete(proposal)
            session.commit()
            raise ValidationFailed([public_error(["receipt"], "merge_stale", "the proposal no longer holds")])

        def moved(purpose: str, sealed: bytes, record_id: str = "") -> bytes:
            return _reseal(
                newer_key,
                older_key,
                sealed,
                Context(purpose, case_id=newer_id, record_id=record_id),
                Context(purpose, case_id=older_id, record_id=record_id),
            )

        pseudonym = keyed_hash(self._statistics_key, "reporter-pseudonym", older_id.encode()).hex()
        seq = int(session.scalar(select(func.max(Incident.seq)).where(Incident.case_id == older_id)) or 0)
        incidents = list(
            session.scalars(select(Incident).where(Incident.case_id == newer_id).order_by(Incident.seq))
        )
        first = session.scalar(
            select(Incident).where(Incident.case_id == older_id).order_by(Incident.seq).limit(1)
        )
        first_extract = events.extract_of(session, older_key, first) if first is not None else None
        for incident in incidents:
            # The statistics row first, while the sealed reference still opens under the newer case.
            extract = events.extract_of(session, newer_key, incident)
            if extract is not None:
                extract.reporter_pseudonym = pseudonym  # one reporter: counted once among persons affected
                _carry_answers(extract, first_extract)
            seq += 1
            incident.payload = moved("incident", incident.payload, incident.id)
            incident.extract_ref = moved("extract_ref", incident.extract_ref, incident.id)
            if incident.proceedings is not None:
                incident.proceedings = moved("proceedings", incident.proceedings, incident.id)
            incident.case_id = older_id
            incident.seq = seq
        for message in session.scalars(select(CaseMessage).where(CaseMessage.case_id == newer_id)):
            message.ciphertext = moved("message", message.ciphertext, message.id)
            message.case_id = older_id
        for note in session.scalars(select(CaseNote).where(CaseNote.case_id == newer_id)):
            note.ciphertext = moved("note", note.ciphertext, note.id)
            note.case_id = older_id
        replaced = []
        attachments = list(session.scalars(select(Attachment).where(Attachment.case_id == newer_id)))
        for attachment in attachments:
            replaced.append(attachment.blob_name)
            attachment.blob_name = self._reencrypt(attachment, newer_key, older_key, older_id, written)
            attachment.meta_ciphertext = moved("attachment_meta", attachment.meta_ciphertext, attachment.id)
            attachment.case_id = older_id
        for record in session.scalars(select(RoutingRecord).where(RoutingRecord.case_id == newer_id)):
            record.case_id = older_id
        # Reminders already sent for its incidents and messages stay sent; the case-wide ones are the older
        # case's own.
        session.execute(delete(ReminderLog).where(ReminderLog.case_id == newer_id, ReminderLog.ref == ""))
        for log in session.scalars(select(ReminderLog).where(ReminderLog.case_id == newer_id)):
            log.case_id = older_id
        self._case_fields(older, newer, older_key, newer_key)
        counts = {"incidents": len(incidents), "attachments": len(attachments)}
        session.flush()
        # The receipt's lookup moves with the pepper it was made under, so a pepper rotation counts it.
        lookup, lookup_key_id = newer.lookup_hash, newer.lookup_key_id
        session.expunge(newer)
        repository.delete_case_rows(session, newer_id)
        session.flush()
        salt = new_salt()
        older.lookup_hash = lookup
        older.lookup_key_id = lookup_key_id
        older.reporter_salt = salt
        older.reporter_wrapped_key = wrap_for_reporter(
            older_key, receipt, salt, Context("reporter_key", case_id=older_id)
        )
        older.updated_at = utcnow()
        session.flush()
        # Last before the commit, as AuditLog asks.
        self.audit.append(
            session,
            actor_kind="reporter",
            actor_id=None,
            action="case.merge",
            object_type="case",
            object_id=older_id,
            details={"merged_case_id": newer_id, **counts},
        )
        return Merged(older_id, older_key, len(incidents)), replaced

    def _reencrypt(
        self, attachment: Attachment, newer_key: bytes, older_key: bytes, older_id: str, written: list[str]
    ) -> str:
        """The file under the older case's key, as a new blob (the old one stays until the commit)."""
        name = self.blobs.new_name()
        written.append(name)
        source_context = Context("attachment", case_id=attachment.case_id, record_id=attachment.id)
        target_context = Context("attachment", case_id=older_id, record_id=attachment.id)
        with self.blobs.open(attachment.blob_name) as source, self.blobs.open_temp(name) as sink:
            sealer = StreamSealer(older_key, target_context, sink)
            for chunk in open_stream(newer_key, source_context, source):
                sealer.write(chunk)
            sealer.close()
        self.blobs.commit(name)
        return name

    def _case_fields(self, older: Case, newer: Case, older_key: bytes, newer_key: bytes) -> None:
        """What of the newer case's own fields the merged case takes: contact details where the older case
        has none, the perpetrator identifiers of both, the notification address the reporter chose last,
        the higher urgency and severity; a closed older case opens again if the newer one is open (its
        incidents are live)."""
        if older.contact_ciphertext is None and newer.contact_ciphertext is not None:
            older.contact_ciphertext = _reseal(
                newer_key,
                older_key,
                newer.contact_ciphertext,
                Context("contact", case_id=newer.id),
                Context("contact", case_id=older.id),
            )
        if newer.perpetrator_ciphertext is not None:
            # The identifiers the reporter gave with consent in either case: the newer case's tokens point at
            # a case that is gone (they never match again), so the merged case holds them as waiting, and
            # they are looked up again at the reporter's next sign-in or by a holder (docs/matching.md).
            typed = open_typed(older_key, older.id, older.perpetrator_ciphertext)
            for item in open_typed(newer_key, newer.id, newer.perpetrator_ciphertext):
                if item not in typed:
                    typed.append(item)
            older.perpetrator_ciphertext = seal_typed(older_key, older.id, typed)
        if newer.notify_ciphertext is not None:
            address = open_address(self._notification_key, newer.id, newer.notify_ciphertext)
            older.notify_ciphertext = seal_address(self._notification_key, older.id, address)
        older.urgency = more_urgent(older.urgency, newer.urgency)
        older.severity = min(older.severity, newer.severity)
        if older.status == CaseStatus.closed.value and newer.status != CaseStatus.closed.value:
            older.status = newer.status
            older.outcome = None
            older.closed_at = None
            # The open case's clock: its acknowledgement deadline (past or not) and whether it was
            # acknowledged, not the closed case's long-expired one, which would escalate at once. Unopened
            # escalation steps count from the reopening, as for a further incident.
            older.ack_deadline_at = newer.ack_deadline_at
            older.acknowledged_at = newer.acknowledged_at
            older.reopened_at = utcnow()
