"""What the beat schedule does to cases: escalate what nobody acknowledged, remind of what is due.

A report that nobody notices is a report lost. Routing already wrapped the case key to every escalation
step at intake, so escalating needs no key at all: the service opens the next organisation's grant, tells
it (content-free, through the outbox), and records the step and its reason in the audit chain, which the
case page shows as history. Every reminder is written once (``reminder_log``), however often the schedule
runs and whichever worker runs it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.audit import AuditLog
from service.cases import repository
from service.cases.deadlines import ReminderStage, ReminderWeek
from service.cases.models import Case, ReminderLog
from service.identity.models import CaseKeyGrant
from service.outbox.writer import enqueue

log = logging.getLogger("rueckhalt.cases")


def _due(created_at: datetime, minutes: int, now: datetime) -> bool:
    return created_at + timedelta(minutes=minutes) <= now


class CaseSchedule:
    def __init__(self, audit: AuditLog, reporter_waiting_hours: int) -> None:
        self._audit = audit
        self._waiting = timedelta(hours=reporter_waiting_hours)

    # -- escalation ----------------------------------------------------------------------------------------
    def escalate(self, sessions: sessionmaker[Session], now: datetime) -> list[tuple[str, str]]:
        """Open every escalation step whose time has come; one transaction per case."""
        with sessions() as session:
            # A case reopened by a further incident counts from the reopening, like a new report.
            due = [
                (case.id, grant.id)
                for case, grant in repository.pending_escalations(session)
                if _due(case.reopened_at or case.created_at, grant.escalation_after_minutes or 0, now)
            ]
        done: list[tuple[str, str]] = []
        for case_id, grant_id in due:
            with sessions() as session:
                step = self._open_step(session, case_id, grant_id, now)
                if step is not None:
                    session.commit()
                    done.append(step)
        return done

    def _open_step(
        self, session: Session, case_id: str, grant_id: str, now: datetime
    ) -> tuple[str, str] | None:
        case = session.get(Case, case_id, with_for_update=True)
        grant = session.get(CaseKeyGrant, grant_id)
        # Re-checked under the lock: acknowledged or escalated by another worker since the query above.
        if case is None or grant is None or grant.active or case.acknowledged_at is not None:
            return None
        grant.active = True
        grant.opened_at = now
        enqueue(
            session,
            "notifications.escalated",
            case_id=case.id,
            organisation_id=grant.organisation_id,
            urgency=case.urgency,
        )
        self._audit.append(
            session,
            actor_kind="system",
            actor_id=None,
            action="case.escalate",
            object_type="case",
            object_id=case.id,
            details={
                "organisation_to": grant.organisation_id,
                "after_minutes": grant.escalation_after_minutes,
                "reason": "not_acknowledged",
            },
        )
        log.info("case escalated after %s minutes without acknowledgement", grant.escalation_after_minutes)
        return case.id, grant.organisation_id

    # -- reminders -----------------------------------------------------------------------------------------
    def remind(
        self, sessions: sessionmaker[Session], now: datetime, today: date
    ) -> list[tuple[str, str, str]]:
        sent: list[tuple[str, str, str]] = []
        with sessions() as session:
            overdue = [(c.id, c.urgency) for c in repository.overdue_unacknowledged(session, now)]
            pending = {case.id for case, _ in repository.pending_escalations(session)}
            waiting = repository.open_cases_with_reporter_messages(session, now - self._waiting)
            # The beat holds no key: it knows of each deadline only the week of its first reminder.
            deadlines = [
                (case.id, incident.id, stage)
                for incident, case in repository.complaint_reminders(session, today)
                if incident.complaint_reminder_on is not None
                and (stage := ReminderWeek(incident.complaint_reminder_on).stage(today)) is not None
            ]
        for case_id, urgency in overdue:
            sent += self._once(
                sessions, case_id, "ack_overdue", "", "reminders.ack_overdue", holders=True, urgency=urgency
            )
            if case_id not in pending:
                # Every step has been opened and still nobody answered: people who can act must know.
                sent += self._once(
                    sessions, case_id, "escalation_exhausted", "", "alerts.escalation_exhausted"
                )
        for case_id, message_id in waiting:
            sent += self._once(
                sessions, case_id, "reporter_waiting", message_id, "reminders.reporter_waiting", holders=True
            )
        for case_id, incident_id, stage in deadlines:
            # The nearest reminder only: a case first seen in its last-call days gets that one alone. The
            # mail names the stage, never a number of days: with the time it is sent, that would be the day.
            for topic, holders in (
                ("reminders.complaint_deadline", True),
                ("reminders.reporter_complaint", False),
            ):
                sent += self._once(
                    sessions,
                    case_id,
                    f"complaint_{stage.value}" + ("" if holders else "_reporter"),
                    incident_id,
                    topic,
                    holders=holders,
                    last_call=stage is ReminderStage.last_call,
                )
        return sent

    def _once(
        self,
        sessions: sessionmaker[Session],
        case_id: str,
        kind: str,
        ref: str,
        topic: str,
        *,
        holders: bool = False,
        **payload: str | int | None,
    ) -> list[tuple[str, str, str]]:
        with sessions() as session:
            if repository.reminder_sent(session, case_id, kind, ref):
                return []
            session.add(ReminderLog(case_id=case_id, kind=kind, ref=ref))
            targets = repository.active_holder_ids(session, case_id) if holders else [None]
            for org_id in targets:
                extra = {"organisation_id": org_id} if org_id else {}
                enqueue(session, topic, case_id=case_id, **extra, **payload)
            try:
                session.commit()
            except IntegrityError:
                # Another worker wrote the same reminder a moment ago: it is sent once, by that worker.
                session.rollback()
                return []
        return [(case_id, kind, ref)]
