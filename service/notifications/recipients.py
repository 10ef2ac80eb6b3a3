"""Who is told about an outbox event, and why: a pure function over a snapshot of the directory.

Kept pure (zulip's notification_data does the same) so that every rule can be tested without a database or
a mail server, and so that each recipient carries the reason it was chosen: an operator asking "why did the
rota get this at 3 a.m.?" gets an answer from the delivery, not from reading code.

Nothing here sees report content: events carry ids and codes only, and so do recipients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TypedDict

from service.i18n import format_date
from service.outbox.models import PayloadValue

# An outbox event's payload as stored: flat identifiers and codes (``service.outbox.writer``).
Payload = Mapping[str, PayloadValue]


class Channel(StrEnum):
    mail = "mail"
    webhook = "webhook"


@dataclass(frozen=True)
class Member:
    user_id: str
    email: str


@dataclass(frozen=True)
class OrganisationInfo:
    id: str
    slug: str
    display_name: str
    members: tuple[Member, ...] = ()
    webhook_url: str | None = None


@dataclass(frozen=True)
class Directory:
    """What the rules may look at, loaded for one event by the repository."""

    organisations: Mapping[str, OrganisationInfo] = field(default_factory=dict)
    coordinators: tuple[Member, ...] = ()
    # Members of the fallback rota organisations: they hear of everything that went wrong.
    rota: tuple[Member, ...] = ()
    reporter_email: str | None = None
    assignee_id: str | None = None


class NotificationContext(TypedDict, total=False):
    """What a mail template or webhook may name: names and codes, never content. ``recipients`` sets the
    keys of the event's kind of topic (each group below is one); the sender adds the last group to a mail
    (``NotificationService._mail_context``)."""

    # Topics for an organisation's members (and its webhook).
    organisation: str
    urgency: PayloadValue
    case_id: PayloadValue
    last_call: bool
    organisation_slug: str  # the webhook's only
    # Alerts.
    land: PayloadValue
    reason: PayloadValue
    failed_topic: PayloadValue
    # The daily audit checkpoint.
    day: PayloadValue
    seq: PayloadValue
    at: PayloadValue
    checkpoint: PayloadValue
    # The coordinators' review reminder.
    articles: list[str]
    count: PayloadValue
    entries: list[str]
    entry_count: PayloadValue
    # A mail to the reporter before the purge: the day, written out per language.
    before: dict[str, str]
    # Added to every mail: the urgency's label per language ("" without an urgency), where to sign in
    # (None in a reporter's mail whose operator left the link out), a reporter's neutral subject.
    urgency_label: dict[str, str]
    link: str | None
    reporter_subject: str


@dataclass(frozen=True)
class Recipient:
    # Stable within an event: the delivery log is keyed by (outbox id, key), so a retry skips it.
    key: str
    channel: Channel
    address: str
    template: str
    reason: str
    # Values for the template: names and codes chosen here, never content.
    context: NotificationContext = field(default_factory=NotificationContext)


# Topics whose recipients are an organisation's members (and its webhook), with the mail template.
_ORGANISATION_TOPICS = {
    "notifications.new_case": "new_case",
    "notifications.new_incident": "new_incident",
    # A further incident opened a closed case again: told like a new case, with its urgency.
    "notifications.case_reopened": "case_reopened",
    "notifications.reporter_reply": "reporter_reply",
    "notifications.escalated": "escalated",
    "reminders.ack_overdue": "reminder_ack_overdue",
    "reminders.reporter_waiting": "reminder_reporter_waiting",
    "reminders.complaint_deadline": "reminder_complaint_deadline",
    # A case the organisation holds shares a perpetrator identifier with another reporter's case
    # (service/matching): that and nothing more; which organisations hold the others is on the case page.
    "notifications.perpetrator_match": "perpetrator_match",
}
_ALERT_TOPICS = {
    "alerts.intake_refused": "alert_intake_refused",
    "alerts.dead_letter": "alert_dead_letter",
    "alerts.escalation_exhausted": "alert_escalation_exhausted",
}
# Not alerts, but for the same people: the daily audit checkpoint (service/audit/daily.py) must reach
# someone outside the operator's reach. Its context is the checkpoint alone.
_COORDINATION_TOPICS = {"notifications.audit_checkpoint": "audit_checkpoint"}
# Topics whose recipients are the coordinators and the fallback rota.
COORDINATION_TOPICS = frozenset({*_ALERT_TOPICS, *_COORDINATION_TOPICS})
# For the coordinators alone, who edit the knowledge base: articles whose facts were not checked for a year.
# The context names public articles (slugs) and directory entries, nothing of any report.
_COORDINATOR_TOPICS = {"notifications.knowledge_review_due": "knowledge_review_due"}
COORDINATOR_TOPICS = frozenset(_COORDINATOR_TOPICS)
# Webhooks announce what needs someone on call; follow-ups wait for the next sign-in.
_WEBHOOK_TOPICS = {
    "notifications.new_case",
    "notifications.case_reopened",
    "notifications.escalated",
    "reminders.ack_overdue",
}
_REPORTER_TOPICS = {
    "notifications.reporter_message": "reporter_message",
    "reminders.reporter_complaint": "reporter_complaint",
    # Before the retention purge destroys a closed case (service/retention): the day before which to look.
    "reminders.reporter_purge": "reporter_purge",
}
# The one recipient outside the service: the reporter's own address (neutral sender and subject).
REPORTER_KEY = "mail:reporter"
KNOWN_TOPICS = frozenset(
    {*_ORGANISATION_TOPICS, *COORDINATION_TOPICS, *_COORDINATOR_TOPICS, *_REPORTER_TOPICS}
)


def _members(
    org: OrganisationInfo, template: str, reason: str, context: NotificationContext
) -> list[Recipient]:
    return [
        Recipient(
            key=f"mail:staff:{member.user_id}",
            channel=Channel.mail,
            address=member.email,
            template=template,
            reason=reason,
            context=context,
        )
        for member in org.members
    ]


def recipients(topic: str, payload: Payload, directory: Directory) -> list[Recipient]:
    """Everyone to tell about this event, each once (by key), in a stable order."""
    chosen: list[Recipient] = []
    context: NotificationContext
    if topic in _ORGANISATION_TOPICS:
        org = directory.organisations.get(str(payload.get("organisation_id") or ""))
        if org is not None:
            template = _ORGANISATION_TOPICS[topic]
            context = {
                "organisation": org.display_name,
                "urgency": payload.get("urgency"),
                "case_id": payload.get("case_id"),
                "last_call": bool(payload.get("last_call")),
            }
            members = org
            if topic == "notifications.reporter_reply" and directory.assignee_id:
                # The assigned counsellor is the one the reporter is talking to; others need not be woken.
                assigned = tuple(m for m in org.members if m.user_id == directory.assignee_id)
                if assigned:
                    members = OrganisationInfo(org.id, org.slug, org.display_name, assigned)
            reason = f"member of {org.slug}"
            chosen += _members(members, template, reason, context)
            if topic in _WEBHOOK_TOPICS and org.webhook_url:
                chosen.append(
                    Recipient(
                        key=f"webhook:{org.id}",
                        channel=Channel.webhook,
                        address=org.webhook_url,
                        template=template,
                        reason=f"webhook of {org.slug}",
                        context={**context, "organisation_slug": org.slug},
                    )
                )
    elif topic in COORDINATION_TOPICS:
        if topic in _ALERT_TOPICS:
            template = _ALERT_TOPICS[topic]
            context = {
                "land": payload.get("land"),
                "reason": payload.get("reason"),
                "failed_topic": payload.get("failed_topic"),
                "case_id": payload.get("case_id"),
            }
        else:
            # The checkpoint alone.
            template = _COORDINATION_TOPICS[topic]
            context = {
                "day": payload.get("day"),
                "seq": payload.get("seq"),
                "at": payload.get("at"),
                "checkpoint": payload.get("checkpoint"),
            }
        for group, reason in ((directory.coordinators, "coordinator"), (directory.rota, "fallback rota")):
            chosen += [
                Recipient(
                    key=f"mail:staff:{member.user_id}",
                    channel=Channel.mail,
                    address=member.email,
                    template=template,
                    reason=reason,
                    context=context,
                )
                for member in group
            ]
    elif topic in _COORDINATOR_TOPICS:
        named = str(payload.get("articles") or "")
        entries = str(payload.get("entries") or "")
        context = {
            "articles": [slug for slug in named.split(",") if slug],
            "count": payload.get("count"),
            # Public entries of the support directory, "name (Land)" each (a name may hold a comma).
            "entries": [entry for entry in entries.split("\n") if entry],
            "entry_count": payload.get("entry_count") or 0,
        }
        chosen += [
            Recipient(
                key=f"mail:staff:{member.user_id}",
                channel=Channel.mail,
                address=member.email,
                template=_COORDINATOR_TOPICS[topic],
                reason="coordinator",
                context=context,
            )
            for member in directory.coordinators
        ]
    elif topic in _REPORTER_TOPICS and directory.reporter_email:
        chosen.append(
            Recipient(
                key=REPORTER_KEY,
                channel=Channel.mail,
                address=directory.reporter_email,
                template=_REPORTER_TOPICS[topic],
                reason="the reporter asked to be told",
                context={"last_call": bool(payload.get("last_call")), **_before(payload)},
            )
        )
    return _unique(chosen)


def _before(payload: Payload) -> NotificationContext:
    """The day a reporter mail names (``purge_on``, an ISO day), written out per language; nothing else."""
    raw = payload.get("purge_on")
    try:
        day = date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        day = None
    if day is None:
        return {}
    return {"before": {lang: format_date(day, lang) for lang in ("de", "en")}}


def _unique(items: Sequence[Recipient]) -> list[Recipient]:
    seen: set[str] = set()
    result = []
    for item in items:
        if item.key not in seen:
            seen.add(item.key)
            result.append(item)
    return result
