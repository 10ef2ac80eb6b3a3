"""Perpetrator identifiers for the repeat-perpetrator matching (service/matching, docs/matching.md).

Given with the report or later on /fall, with the reporter's consent: sealed with the case key as typed, and
registered as keyed tokens within the hour's budget of look-ups; the rest wait, sealed, for the next sign-in.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.cases import repository as case_rows
from service.cases.identifiers import open_typed, seal_typed
from service.cases.models import (
    Case,
)
from service.db import utcnow
from service.errors import NotFound, ValidationFailed
from service.matching.normalise import Identifier
from service.matching.service import MatchingService
from service.reports import repository
from service.reports.opened import OpenedCase
from service.reports.schemas import (
    MAX_IDENTIFIERS,
    MatchingConsent,
    PerpetratorIdentifier,
)
from service.validation import public_error


class PerpetratorIdentifiers:
    """The identifier methods of ``IntakeService`` (service.py), which holds the matching service. They run
    in the caller's transaction and never commit it (the page is the transaction)."""

    matching: MatchingService

    @staticmethod
    def _seal_identifiers(data_key: bytes, case_id: str, items: list[PerpetratorIdentifier]) -> bytes | None:
        """The identifiers as the reporter typed them, sealed with the case key; None for none."""
        return seal_typed(data_key, case_id, [item.typed() for item in items])

    @staticmethod
    def identifiers_of(case: Case, data_key: bytes) -> list[PerpetratorIdentifier]:
        """The identifiers a case holds (sealed, as typed); empty without consent or after its withdrawal."""
        typed = open_typed(data_key, case.id, case.perpetrator_ciphertext)
        return [PerpetratorIdentifier.model_validate(item) for item in typed]

    def add_identifiers(self, session: Session, opened: OpenedCase, data: MatchingConsent) -> bool:
        """The reporter gives identifiers on /fall (with consent): they join those already given (the same
        identity once), are sealed anew and registered, together with any that waited for the budget.
        Returns False when the hour's budget of look-ups was used up (the identifiers wait, sealed)."""
        if not data.consent_matching or not data.perpetrator_identifiers:
            return True
        # Checked before the budget is touched: a refused request spends no look-up.
        given = self._joined(self.identifiers_of(opened.case, opened.data_key), data.perpetrator_identifiers)
        # Reserved before the transaction writes: one look-up for each identifier without a token of this
        # case (new, or waiting for an earlier budget). Those stored already cost nothing: a client sending
        # the same identifiers again must not spend the service-wide budget that every reporter shares.
        unseen = self.matching.waiting(session, opened.case.id, [item.normalised() for item in given])
        budget = self.matching.reserve(len(unseen))
        case = case_rows.lock_case(session, opened.case.id)
        if case is None:
            raise NotFound()
        kept = self._joined(self.identifiers_of(case, opened.data_key), data.perpetrator_identifiers)
        case.perpetrator_ciphertext = self._seal_identifiers(opened.data_key, case.id, kept)
        case.updated_at = utcnow()
        session.flush()
        # Last before the caller's commit, as the matching asks (a match's audit event is then the last row).
        # Only the identifiers without a token are looked up; more than were reserved (another request added
        # some meanwhile) and none is, the identifiers wait sealed as with a used-up budget.
        waiting = self.matching.waiting(session, case.id, [item.normalised() for item in kept])
        return self.matching.register(session, case.id, waiting, budget).done

    @staticmethod
    def _joined(
        held: list[PerpetratorIdentifier], sent: list[PerpetratorIdentifier]
    ) -> list[PerpetratorIdentifier]:
        """The case's identifiers with those sent, the same identity once; refused above the maximum (before
        anything is written: the caller's transaction rolls back and frees the lock)."""
        items: dict[Identifier, PerpetratorIdentifier] = {}
        for item in [*held, *sent]:
            items.setdefault(item.normalised(), item)
        if len(items) > MAX_IDENTIFIERS:
            raise ValidationFailed(
                [public_error(["perpetrator_identifiers"], "too_long", "too many identifiers for one case")]
            )
        return list(items.values())

    def resume_matching(self, session: Session, case_id: str, data_key: bytes) -> bool:
        """Register the identifiers of a case that wait (the hour's budget was used up when they came, or a
        rotation of the matching key deleted every token), from the sealed ones: nobody types them again.
        For where the case key is at hand: the reporter's sign-in and a holder's button on the case page.

        A case without sealed identifiers (none given, or the consent withdrawn, which deletes them) has
        nothing to register, ever. Only the waiting identifiers count against the budget, reserved before
        the transaction writes; it runs in the caller's transaction, which commits (a match fires and is
        audited as for a report). False when the budget is used up: they wait on, sealed."""
        case = repository.case_by_id(session, case_id)
        if case is None:
            raise NotFound()
        missing = self.matching.waiting(session, case_id, self._normalised_identifiers(case, data_key))
        if not missing:
            return True
        budget = self.matching.reserve(len(missing))
        if not budget.granted:
            return False
        case = case_rows.lock_case(session, case_id)
        if case is None:
            raise NotFound()
        # Read anew under the case's lock: a withdrawal in between has deleted the sealed identifiers, and
        # then nothing is registered.
        missing = self.matching.waiting(session, case_id, self._normalised_identifiers(case, data_key))
        return self.matching.register(session, case_id, missing, budget).done

    def _normalised_identifiers(self, case: Case, data_key: bytes) -> list[Identifier]:
        return [item.normalised() for item in self.identifiers_of(case, data_key)]

    def withdraw_matching(self, session: Session, opened: OpenedCase) -> None:
        """The reporter withdraws the consent: the tokens go at once, and the identifiers as typed too (they
        were given for the matching; what the reporter wrote about the perpetrator elsewhere stays)."""
        case = case_rows.lock_case(session, opened.case.id)
        if case is None:
            raise NotFound()
        self.matching.forget(session, case.id)
        case.perpetrator_ciphertext = None
        case.updated_at = utcnow()
