"""Intake: a new report filed, a further incident added.

The intake is the one place where plaintext from a reporter meets the database, so it is written as one
straight line: validate, route on the server, encrypt, store everything in one transaction, commit, answer.
The reporter's way back into the case file is in reporter_case.py, the identifiers for the matching in
identifiers.py, the rows a filing writes in rows.py.
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.cases import repository as case_rows
from service.cases.contact import seal_address
from service.cases.models import (
    Case,
    CaseStatus,
)
from service.cases.payload import ContactPayload
from service.crypto import (
    new_receipt,
    new_salt,
    open_sealed,
    pepper_id,
    receipt_lookup,
    seal,
    wrap_for_reporter,
)
from service.db import NewRow, after_commit, holds_work, new_row, utcnow
from service.db_raw import AUTOCOMMIT
from service.errors import AlreadySubmitted, NoRecipient, NotFound, ValidationFailed
from service.evidence.uploads import EncryptedUpload
from service.extract.service import answers_of
from service.identity.repository import Receiver, ReceiverCache
from service.matching.service import Budget, MatchingService
from service.organisations.keys import PublicKeys
from service.outbox import writer as outbox
from service.outbox.dispatch import Dispatcher
from service.outbox.writer import enqueue
from service.reports import answer_again, repository
from service.reports.checks import check_incident_codes, check_report
from service.reports.filing import (
    CaseDraft,
    DemoFiling,
    Filed,
    InFlight,
    busy_if_stale,
    single_statement,
    stored_after_all,
)
from service.reports.once import SubmittedOnce
from service.reports.opened import OpenedCase, ctx
from service.reports.reporter_case import ReporterCases
from service.reports.repository import StaleGrant
from service.reports.rows import CaseRef, FilingRows, holders_granted
from service.reports.schemas import (
    IncidentFields,
    ReportCreate,
)
from service.reports.submissions import SubmissionClaim
from service.routing import ReportFacts, RoutingDecision, RoutingPolicy, evaluate
from service.taxonomy import Districts, Taxonomy
from service.taxonomy.loader import ANSWER_KINDS, more_urgent

log = logging.getLogger("rueckhalt.intake")


class IntakeService(FilingRows, ReporterCases, SubmittedOnce):
    """The intake (here), the rows it writes (rows.py), the reporter's way back (reporter_case.py), the
    perpetrator identifiers (identifiers.py) and what is submitted once (once.py): one service on the
    runtime, ``runtime.intake``."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        districts: Districts,
        policy: RoutingPolicy,
        lookup_pepper: bytes,
        statistics_key: bytes,
        notification_key: bytes,
        audit: AuditLog,
        matching: MatchingService,
        *,
        previous_lookup_peppers: tuple[bytes, ...] = (),
    ) -> None:
        self.taxonomy = taxonomy
        self.matching = matching
        self.audit = audit
        self.districts = districts
        self.policy = policy
        self._pepper = lookup_pepper
        self._pepper_id = pepper_id(lookup_pepper).hex()
        # During a rotation of the lookup pepper: a receipt not found under the current one is looked up under
        # the previous one, and its case re-keyed on the spot (docs/runbooks.md).
        self._previous_peppers = previous_lookup_peppers
        self._statistics_key = statistics_key
        self._notification_key = notification_key
        self._keys = PublicKeys()
        self._receivers = ReceiverCache()
        # Set by a served api process (``service.app``): the delivery tasks of a report's outbox rows are
        # published right after its commit instead of at the relay's next pass.
        self.dispatcher: Dispatcher | None = None

    # -- routing ------------------------------------------------------------------------------------------
    def _facts(
        self,
        data: IncidentFields,
        case_fields: ReportCreate | Case,
        targets: tuple[str, ...],
        reported_by: str,
        urgency: str,
    ) -> ReportFacts:
        return ReportFacts(
            land=case_fields.land,
            district_ags=case_fields.district_ags,
            type_codes=tuple(data.type_codes),
            severity=self.taxonomy.severity_of(data.type_codes),
            urgency=urgency,
            channel=data.channel,
            channel_online=self.taxonomy.channel_is_online(data.channel),
            office=case_fields.office,
            targets=targets,
            consent_counselling=case_fields.consent_counselling,
            consent_police=case_fields.consent_police,
            reported_by=reported_by,
        )

    def route(
        self, session: Session, facts: ReportFacts, *, cached: bool = False
    ) -> tuple[RoutingDecision, dict[str, Receiver]]:
        """The decision for ``facts`` among the organisations that can receive a case now.

        ``cached``: the organisations may be the intake's read of up to a second ago (``ReceiverCache``);
        only for a caller that can file again on ``StaleGrant``. A decision with nowhere to go is never
        made from the cache: an organisation that has just got its key is looked for first."""
        reachable, from_cache = self._receivers.read(session, fresh=not cached)
        decision = evaluate(self.policy, facts, frozenset(reachable))
        if not decision.targets and from_cache:
            reachable, _ = self._receivers.read(session, fresh=True)
            decision = evaluate(self.policy, facts, frozenset(reachable))
        if not decision.targets:
            self._refuse_no_recipient(session, facts.land)
        return decision, reachable

    def forget_receivers(self) -> None:
        """The next filing reads the organisations afresh (one of them changed since the last read)."""
        self._receivers.forget()

    @staticmethod
    def _refuse_no_recipient(session: Session, land: str) -> NoReturn:
        """Never a silent loss: the reporter is told (503), and an alert for the coordinators and the
        fallback rota is committed on its own, carrying the Land code and nothing of the report."""
        log.error("intake refused: no organisation with a key can receive this report (land %s)", land)
        session.rollback()
        enqueue(session, "alerts.intake_refused", land=land, reason="no_recipient")
        session.commit()
        raise NoRecipient()

    # -- filing (complaint_deadline and urgency_of: FilingRows) -------------------------------------------
    def refuse_invalid(self, data: ReportCreate) -> None:
        """ValidationFailed with every refusal when the report's codes, district or dates are not accepted."""
        errors = check_report(self.taxonomy, self.districts, data)
        if errors:
            raise ValidationFailed(errors)

    def file_report(
        self,
        session: Session,
        data: ReportCreate,
        draft: CaseDraft,
        uploads: list[EncryptedUpload],
        claim: SubmissionClaim | None = None,
        matching_budget: Budget | None = None,
        demo: DemoFiling | None = None,
    ) -> Filed:
        """Store a new case file in the session's transaction (the caller commits). Raises before anything is
        written if the input is refused.

        ``claim``: the form view's submission token (pages); a token used before files nothing
        (AlreadySubmitted), and a filing refused later (rolled back) leaves it unused.
        ``matching_budget``: the look-ups reserved for its perpetrator identifiers; reserved here, before
        anything is written, when the caller (off the event loop) did not.
        ``demo``: only the demo loader passes it (never a page or the API).

        A session that holds nothing of its caller's yet (``holds_work``: every page and the API) is this
        filing's alone:
        it routes with the organisations read up to a second ago, and if a grant is refused because one of
        them changed since (``StaleGrant``: disabled, re-keyed), rolls back and files once more with a fresh
        read. In a transaction that holds a caller's work, which a rollback would undo, it reads afresh, and
        the refusal (a change in the same instant) is a 503 that asks to send again.

        A filing that is one statement (``filing.single_statement``) is stored and committed when this
        returns; the caller's commit then finds nothing left to do."""
        self.refuse_invalid(data)
        if data.consent_matching and data.perpetrator_identifiers and matching_budget is None:
            if claim is not None and answer_again.claimed(session, [claim]):
                raise AlreadySubmitted()  # a second tap spends none of the shared budget
            # Reserved once, before anything is written: a second attempt spends none of it again.
            matching_budget = self.matching.reserve(len(data.perpetrator_identifiers))
        if holds_work(session):
            return busy_if_stale(
                lambda: self._file_report(session, data, draft, uploads, claim, matching_budget, demo, False)
            )
        single = single_statement(session, data, claim, demo)
        if single:
            # Its one INSERT is atomic and durable on its own (PostgreSQL commits it, synchronously, before
            # it answers, so still before the 201): no BEGIN and no COMMIT, two round trips fewer.
            session.connection(execution_options={"isolation_level": AUTOCOMMIT})
        in_flight: list[InFlight] = []
        try:
            filed = self._file_report(
                session, data, draft, uploads, claim, matching_budget, demo, True, in_flight
            )
        except sa_exc.DBAPIError as error:
            if not (single and in_flight and error.connection_invalidated):
                raise
            return stored_after_all(session, in_flight[0], error, self.announce)
        except StaleGrant:
            session.rollback()
            log.info("intake: an organisation changed since it was read; routed again with a fresh read")
        else:
            if single:
                # Stored already; the session's commit (no round trip) runs the after-commit callbacks now
                # and hands the connection back, reset: nothing the caller does next runs in autocommit.
                session.commit()
            return filed
        return busy_if_stale(
            lambda: self._file_report(session, data, draft, uploads, claim, matching_budget, demo, False)
        )

    def _file_report(
        self,
        session: Session,
        data: ReportCreate,
        draft: CaseDraft,
        uploads: list[EncryptedUpload],
        claim: SubmissionClaim | None,
        matching_budget: Budget | None,
        demo: DemoFiling | None,
        cached: bool,
        in_flight: list[InFlight] | None = None,
    ) -> Filed:
        identifiers = (
            [item.normalised() for item in data.perpetrator_identifiers] if data.consent_matching else []
        )
        self.claim(session, claim)
        now = demo.at if demo is not None and demo.at is not None else utcnow()
        filed, rows, announced = self.compose(session, data, draft, uploads, demo, now, cached)
        if in_flight is not None:
            in_flight.append((filed, announced))
        repository.insert_new(session, rows + announced)
        if claim is not None:
            answer_again.keep(session, claim, filed, now)
        # Last before the commit (a match that fires is audited): tokens only with the reporter's consent.
        if identifiers and matching_budget is not None:
            self.matching.register(session, filed.case_id, identifiers, matching_budget)
        # The caller's transaction commits (the request's unit of work); the notifications go out after it.
        after_commit(session, functools.partial(self.announce, announced))
        return filed

    def compose(
        self,
        session: Session,
        data: ReportCreate,
        draft: CaseDraft,
        uploads: list[EncryptedUpload],
        demo: DemoFiling | None,
        now: datetime,
        cached: bool,
    ) -> tuple[Filed, list[NewRow], list[NewRow]]:
        """The answer, the rows and the outbox rows of a new case, written nowhere yet. The session is only
        read from: the organisations (unless ``cached`` and read a second ago), a key not seen before."""
        urgency = self.urgency_of(data, now)
        facts = self._facts(data, data, tuple(data.targets), data.reported_by, urgency)
        decision, reachable = self.route(session, facts, cached=cached)
        receipt = new_receipt()
        salt = new_salt()
        case = CaseRef(id=draft.case_id, land=data.land, office=data.office)
        details = {
            "municipality": data.municipality,
            "targets": list(data.targets),
            "reported_by": data.reported_by,
            "support_needs": list(data.support_needs),
            **{kind: list(getattr(data, kind)) for kind in ANSWER_KINDS},
        }
        contact: ContactPayload = {
            "name": data.contact_name,
            "email": data.contact_email,
            "phone": data.contact_phone,
        }
        rows = [
            new_row(
                Case,
                id=case.id,
                lookup_hash=receipt_lookup(self._pepper, receipt),
                lookup_key_id=self._pepper_id,
                reporter_salt=salt,
                reporter_wrapped_key=wrap_for_reporter(
                    draft.data_key, receipt, salt, ctx("reporter_key", case.id)
                ),
                status=CaseStatus.new.value,
                urgency=urgency,
                severity=self.taxonomy.severity_of(data.type_codes),
                land=data.land,
                district_ags=data.district_ags,
                office=data.office,
                consent_counselling=data.consent_counselling,
                consent_police=data.consent_police,
                demo=demo is not None,
                details_ciphertext=seal(
                    draft.data_key, json.dumps(details).encode(), ctx("case_details", case.id)
                ),
                contact_ciphertext=(
                    seal(draft.data_key, json.dumps(contact).encode(), ctx("contact", case.id))
                    if any(contact.values())
                    else None
                ),
                notify_ciphertext=(
                    seal_address(self._notification_key, case.id, str(data.notify_email))
                    if data.notify_email
                    else None
                ),
                perpetrator_ciphertext=self._seal_identifiers(
                    draft.data_key, case.id, data.perpetrator_identifiers if data.consent_matching else []
                ),
                ack_deadline_at=now + timedelta(minutes=decision.ack_deadline_minutes),
                acknowledged_at=None,
                assignee_id=None,
                labels=[],
                outcome=None,
                closed_at=None,
                reopened_at=None,
                created_at=now,
                updated_at=now,
            )
        ]
        answers = {kind: answers_of(getattr(data, kind)) for kind in ANSWER_KINDS}
        incident_id = self._add_incident(rows, case, 1, data, draft.data_key, now, answers)
        rows += self._attachment_rows(uploads, case.id, incident_id, now)
        targets = self._grant(session, rows, case.id, draft.data_key, decision, reachable, set(), now, cached)
        if not targets:
            # Every organisation of the decision had a new key by the time it was read: refused as above.
            self._refuse_no_recipient(session, data.land)
        rows.append(self._record(case.id, incident_id, decision, now))
        announced = self._claimed(
            [
                outbox.message_row(
                    "notifications.new_case", case_id=case.id, organisation_id=org.id, urgency=urgency
                )
                for org in targets
                if demo is None or demo.announced
            ]
        )
        filed = Filed(
            receipt=receipt,
            case_id=case.id,
            routed_to=[org.display_name for org in targets],
            ack_deadline_minutes=decision.ack_deadline_minutes,
            type_codes=list(data.type_codes),
            complaint=self.complaint_deadline(data),
            urgency=urgency,
            key_holders=holders_granted(rows, reachable),
        )
        return filed, rows, announced

    # -- notifications after the commit --------------------------------------------------------------------
    def _claimed(self, rows: list[NewRow]) -> list[NewRow]:
        """Outbox rows that the dispatcher will publish are written as dispatched: the relay skips them."""
        dispatcher = self.dispatcher
        if dispatcher is not None and dispatcher.ready():
            for row in rows:
                outbox.claim(row)
        return rows

    def announce(self, rows: list[NewRow]) -> None:
        """Hand the committed rows to the dispatcher (never blocks, never fails the request)."""
        dispatcher = self.dispatcher
        claimed = [row for row in rows if row.values["dispatched_at"] is not None]
        if dispatcher is not None and claimed:
            dispatcher.submit([(str(row.values["id"]), str(row.values["topic"])) for row in claimed])

    def add_incident(
        self,
        session: Session,
        opened: OpenedCase,
        data: IncidentFields,
        uploads: list[EncryptedUpload],
        claim: SubmissionClaim | None = None,
        demo: DemoFiling | None = None,
    ) -> int:
        """Add a further incident to the case file (the caller commits); returns its number within the case.

        Routed like a new report: organisations the decision adds get the key, and the urgency of the case
        rises to the incident's. A closed case is opened again: the incident is a new threat, and a closed
        case is out of the inbox's default view and counts towards its purge from the day it was closed.
        Reopened, it is new again (status, acknowledgement deadline, escalation timers from now), its
        outcome is cleared (closing it again asks for one, and the retention period counts from then), every
        active holder is told with the urgency, and the reopening is audited without content."""
        errors = check_incident_codes(self.taxonomy, data)
        if errors:
            raise ValidationFailed(errors)
        self.claim(session, claim)
        # Locked until the commit: the retention purge locks it too, so a case is either purged first (and
        # the incident is refused: NotFound) or reopened first (and the purge finds it open).
        case = case_rows.lock_case(session, opened.case.id)
        if case is None:
            session.rollback()
            raise NotFound()
        details = json.loads(
            open_sealed(opened.data_key, case.details_ciphertext, ctx("case_details", case.id))
        )
        now = demo.at if demo is not None and demo.at is not None else utcnow()
        urgency = self.urgency_of(data, now)
        reopen = case.status == CaseStatus.closed.value
        # Who reports is sealed with the case like the targets: routed again from the opened details.
        facts = self._facts(
            data, case, tuple(details.get("targets", [])), details.get("reported_by", "self"), urgency
        )
        decision, reachable = self.route(session, facts)
        seq = repository.next_incident_seq(session, case.id)
        rows: list[NewRow] = []
        ref = CaseRef(id=case.id, land=case.land, office=case.office)
        incident_id = self._add_incident(rows, ref, seq, data, opened.data_key, now)
        rows += self._attachment_rows(uploads, case.id, incident_id, now)
        holders = repository.granted_organisation_ids(session, case.id)
        active = repository.active_organisation_ids(session, case.id)
        new_targets = self._grant(
            session, rows, case.id, opened.data_key, decision, reachable, set(holders), now
        )
        rows.append(self._record(case.id, incident_id, decision, now))
        topic = "notifications.case_reopened" if reopen else "notifications.new_incident"
        announce = demo is None or demo.announced
        announced = self._claimed(
            [
                outbox.message_row(topic, case_id=case.id, organisation_id=org_id, urgency=urgency)
                for org_id in active
                if announce
            ]
            + [
                outbox.message_row(
                    "notifications.new_case", case_id=case.id, organisation_id=org.id, urgency=urgency
                )
                for org in new_targets
                if announce
            ]
        )
        busy_if_stale(lambda: repository.insert_new(session, rows + announced))
        severity = self.taxonomy.severity_of(data.type_codes)
        if severity < case.severity:
            case.severity = severity
        if reopen:
            self._reopen(session, case, decision, urgency, now)
        else:
            case.urgency = more_urgent(case.urgency, urgency)
        case.updated_at = now
        if reopen:
            session.flush()
            # Last before the commit, as AuditLog asks: from here on every other appender waits for us.
            self.audit.append(
                session,
                actor_kind="reporter",
                actor_id=None,
                action="case.reopen",
                object_type="case",
                object_id=case.id,
                details={"reason": "further_incident", "seq": seq, "urgency": urgency},
            )
        # The caller's transaction commits (the request's unit of work); the notifications go out after it.
        after_commit(session, functools.partial(self.announce, announced))
        return seq

    @staticmethod
    def _reopen(session: Session, case: Case, decision: RoutingDecision, urgency: str, now: datetime) -> None:
        """A closed case becomes new again, with the clocks of a new report started now."""
        case.status = CaseStatus.new.value
        case.outcome = None
        case.closed_at = None
        case.acknowledged_at = None
        case.reopened_at = now
        case.urgency = urgency
        case.ack_deadline_at = now + timedelta(minutes=decision.ack_deadline_minutes)
        # Escalation steps that hold the key but were never opened count their minutes from the reopening
        # (``reopened_at``), with the times of this decision where it names them.
        steps = dict(decision.escalation)
        for grant, slug in repository.unopened_escalations(session, case.id):
            if slug in steps:
                grant.escalation_after_minutes = steps[slug]
