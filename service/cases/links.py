"""Two cases the subject holds both of: incidents declared the same event, and a case filed again after a
lost receipt proposed for merging into the earlier one (the merge itself: service/cases/merge.py).

A second case is named by its reference and must be one the subject can open too: a case of another
organisation looks exactly like one that does not exist (404)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.auth.subject import Subject
from service.cases import events, repository
from service.cases.models import MergeProposal
from service.cases.service import CaseService, UnlockedCase
from service.crypto import Context, seal
from service.db import new_id, utcnow
from service.errors import NotFound, ValidationFailed
from service.validation import public_error


class CaseLinks:
    def __init__(self, cases: CaseService, statistics_key: bytes) -> None:
        self.cases = cases
        # Linked events mark their statistics rows with a keyed token under it (service/cases/events.py).
        self._statistics_key = statistics_key

    # -- the same event ------------------------------------------------------------------------------------
    def _other_case(self, session: Session, subject: Subject, own: UnlockedCase, ref: str) -> UnlockedCase:
        """The second case of a link or a merge: one the subject can open too, else NotFound (a case of
        another organisation looks exactly like one that does not exist)."""
        other = repository.visible_case_by_ref(session, subject.organisation_ids, ref)
        if other is None:
            raise NotFound()
        if other.id == own.case.id:
            raise ValidationFailed([public_error(["other_case"], "same_case", "this is the same case")])
        return self.cases.unlock(session, subject, other.id)

    def link_event(
        self, session: Session, subject: Subject, case_id: str, seq: int, other_ref: str, other_seq: int
    ) -> None:
        """Declare incident ``seq`` of this case and incident ``other_seq`` of another case the subject holds
        the same event. Both holders see the link; the statistics count the event once. Linking what is
        linked already changes nothing; an incident in another event must leave it first (422)."""
        unlocked = self.cases.unlock(session, subject, case_id)
        incident = next((i for i in unlocked.case.incidents if i.seq == seq), None)
        if incident is None:
            raise NotFound()
        other = self._other_case(session, subject, unlocked, other_ref)
        other_incident = next((i for i in other.case.incidents if i.seq == other_seq), None)
        if other_incident is None:
            raise ValidationFailed([public_error(["other_seq"], "invalid", "no such incident in that case")])
        own_event = events.event_of(session, incident.id)
        if own_event is not None and own_event == events.event_of(session, other_incident.id):
            return
        if not events.link(
            session,
            self._statistics_key,
            (incident, unlocked.data_key),
            (other_incident, other.data_key),
            new_id(),
        ):
            raise ValidationFailed([public_error(["other_case"], "other_event", "already linked elsewhere")])
        self.cases.audit_case(session, subject, "case.event_link", unlocked.case.id, seq=seq)
        self.cases.audit_case(session, subject, "case.event_link", other.case.id, seq=other_seq)

    def unlink_event(self, session: Session, subject: Subject, case_id: str, seq: int) -> None:
        """Take incident ``seq`` of this case out of its event (audited); nothing to do if it is in none."""
        unlocked = self.cases.unlock(session, subject, case_id)
        incident = next((i for i in unlocked.case.incidents if i.seq == seq), None)
        if incident is None:
            raise NotFound()
        if events.unlink(session, incident, unlocked.data_key):
            self.cases.audit_case(session, subject, "case.event_unlink", unlocked.case.id, seq=seq)

    # -- merging a case filed again after a lost receipt ----------------------------------------------------
    def propose_merge(self, session: Session, subject: Subject, case_id: str, other_ref: str) -> None:
        """Propose that this case be merged into an earlier one the subject holds too. Nothing moves
        until the reporter confirms from the newer case (service/cases/merge.py). The older case's key is
        sealed under the newer case's key for that moment: so every organisation holding the newer case
        must hold the older one already (422 otherwise), or the proposal would hand it a key it never had."""
        newer = self.cases.unlock(session, subject, case_id)
        older = self._other_case(session, subject, newer, other_ref)
        # Proposed from the newer case's page (the reporter confirms from it); filed within the same minute,
        # either may be called the earlier one.
        if older.case.created_at > newer.case.created_at:
            raise ValidationFailed([public_error(["other_case"], "other_newer", "the other case is newer")])
        if not repository.granted_organisation_ids(
            session, newer.case.id
        ) <= repository.granted_organisation_ids(session, older.case.id):
            raise ValidationFailed(
                [public_error(["other_case"], "holders_differ", "the newer case has holders the older lacks")]
            )
        # One proposal per newer case: a new one replaces it (an older case may wait for several).
        replaced = session.get(MergeProposal, newer.case.id)
        if replaced is not None:
            session.delete(replaced)
            session.flush()
        session.add(
            MergeProposal(
                newer_case_id=newer.case.id,
                older_case_id=older.case.id,
                older_key=seal(
                    newer.data_key, older.data_key, merge_key_context(newer.case.id, older.case.id)
                ),
                created_at=utcnow(),
            )
        )
        self.cases.audit_case(session, subject, "case.merge_proposed", newer.case.id, role="newer")
        self.cases.audit_case(session, subject, "case.merge_proposed", older.case.id, role="older")

    def withdraw_merge(self, session: Session, subject: Subject, case_id: str) -> None:
        """Take back a pending merge of this case (as either side); nothing to do if there is none."""
        unlocked = self.cases.unlock(session, subject, case_id)
        if repository.merge_proposal_of(session, unlocked.case.id) is None:
            return
        repository.delete_merge_proposals(session, unlocked.case.id)
        self.cases.audit_case(session, subject, "case.merge_withdrawn", unlocked.case.id)


def merge_key_context(newer_case_id: str, older_case_id: str) -> Context:
    """The older case's key sealed under the newer one's, for one proposed merge of these two cases."""
    return Context("merge_key", case_id=newer_case_id, record_id=older_case_id)
