"""What is submitted once: a form view's single-use token, or an API client's ``Idempotency-Key`` with its
content, claimed in the transaction that stores what was sent (submissions.py says what is stored of it),
and the answer kept for a second submission of a report (answer_again.py)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from service.db import utcnow
from service.errors import AlreadySent, AlreadySubmitted
from service.reports import answer_again, repository
from service.reports.filing import Filed
from service.reports.submissions import SubmissionClaim


class SubmittedOnce:
    """Part of ``IntakeService``: the claims of form views and API keys, and the kept answers."""

    def claim(self, session: Session, claim: SubmissionClaim | None) -> None:
        """Mark a form view's token used in the transaction that stores what the view sent (first in a
        filing; after the work on the case page, for its 404); AlreadySubmitted if it was."""
        if claim is not None and not repository.claim_submission(session, claim):
            session.rollback()
            raise AlreadySubmitted()

    def claim_once(self, session: Session, claims: Sequence[SubmissionClaim]) -> None:
        """An API client's ``Idempotency-Key`` for a message or a note (``SubmissionTokens.idempotent``, one
        claim per session key, the current first): claimed in this transaction, or AlreadySent if this key
        and content were stored before, and the caller's work is rolled back with it. Called after the
        work, so that a case the caller may not see is a 404 first."""
        if claims and (
            answer_again.claimed(session, claims) is not None
            or not repository.claim_submission(session, claims[0])
        ):
            raise AlreadySent()

    # -- the answer kept for a second submission (answer_again.py) ------------------------------------------
    def answer_again(self, session: Session, claim: SubmissionClaim) -> Filed | None:
        """For a second submission (AlreadySubmitted): the first one's answer, while it may be shown."""
        return answer_again.again(session, claim, utcnow())

    def claimed(self, session: Session, claims: Sequence[SubmissionClaim]) -> SubmissionClaim | None:
        return answer_again.claimed(session, claims)

    def forget_answer(self, session: Session, claim: SubmissionClaim) -> None:
        """The reporter has noted the code ("Code notiert"): erased now, not at the end of its time."""
        repository.forget_answer(session, claim.token_hash)

    def forget_answers_due(self, session: Session) -> int:
        """The minute task: every answer whose time has ended, erased; how many."""
        return repository.forget_answers_due(session, utcnow())
