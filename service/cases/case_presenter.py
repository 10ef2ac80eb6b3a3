"""The case page as the template shows it, from the decrypted case file (``CaseFile``), the names the page
looked up for it (``CaseLookups``) and the translator (``Labels``). Pure: no database, no session; the
route and its look-ups are in service/cases/pages.py, the shared labels and deadlines in presenter.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from service.cases.models import CaseLabel, CaseOutcome, CaseStatus
from service.cases.presenter import (
    Labels,
    ack_info,
    case_url,
    code_label,
    complaint_info,
    proceedings_view,
)
from service.cases.proceedings import OUTCOMES as PROCEEDINGS_OUTCOMES
from service.cases.schemas import (
    CaseFile,
    CaseMessageView,
    CaseNoteView,
    HistoryEntry,
    Holder,
    IncidentFile,
    MergeView,
    RoutingView,
)
from service.cases.views import (
    AttachmentView,
    CaseOptions,
    CaseView,
    EventLine,
    HistoryLine,
    HolderLine,
    IncidentView,
    MergeLink,
    RoutingLine,
)
from service.evidence.attachments import AttachmentInfo
from service.i18n import Translator, duration_text, format_date, format_datetime, format_size
from service.taxonomy.loader import ANSWER_KINDS


@dataclass(frozen=True)
class CaseLookups:
    """What the case page looks up in the database besides the case file (service/cases/pages.py)."""

    # Display names of the staff the case names (assignee, authors, actors), by user id.
    staff_names: Mapping[str, str]
    # Display names of organisations, by id and by slug (routing decisions name them by slug).
    organisation_names: Mapping[str, str]
    # (user id, name) of the members of the active holders, for "assign to a colleague".
    colleagues: Sequence[tuple[str, str]]
    # Organisations the case can be referred to: (slug, name, is a police liaison), none holding it now.
    receivers: Sequence[tuple[str, str, bool]]
    # Knowledge articles for the case's incident types (title and address).
    articles: Sequence[Mapping[str, str]]
    # Of each other case in this case's events: whether the subject holds it too, else who holds it.
    linked_mine: Mapping[str, bool]
    linked_holders: Mapping[str, Sequence[str]]


def staff_ids(case: CaseFile) -> set[str]:
    """Every staff member the case page names (for ``CaseLookups.staff_names``)."""
    ids = {case.assignee_id} if case.assignee_id else set()
    ids |= {message.author_id for message in case.messages if message.author_id}
    ids |= {note.author_id for note in case.notes if note.author_id}
    ids |= {event.actor_id for event in case.history if event.actor_id}
    return ids


def organisation_refs(case: CaseFile) -> tuple[set[str], set[str]]:
    """The ids and slugs of the organisations the case page names (for ``organisation_names``)."""
    ids = {message.organisation_id for message in case.messages if message.organisation_id}
    ids |= {note.organisation_id for note in case.notes if note.organisation_id}
    slugs = {slug for record in case.routing for slug in record.decision.get("targets", [])}
    slugs |= {step["org"] for record in case.routing for step in record.decision.get("escalation", [])}
    return ids, slugs


def incident_view(
    case_id: str,
    item: IncidentFile,
    attachments: list[AttachmentInfo],
    labels: Labels,
    today: date,
    closed: bool,
) -> IncidentView:
    t, lang = labels.t, labels.lang
    perpetrator = item.perpetrator
    url = item.url
    record = item.proceedings or {}
    complaint = complaint_info(
        t, lang, item.complaint_deadline_on, today, item.complaint_basis, record.get("application_on")
    )
    if complaint is not None and closed:
        complaint["state"] = "ok"
    return {
        "seq": item.seq,
        "created": format_datetime(item.created_at, lang),
        "types": labels.types(item.type_codes),
        "codes": list(item.type_codes),
        "type_other": item.type_other,
        "channel_label": labels.channel(item.channel),
        "urgency_label": code_label(t, "urgency", item.urgency),
        "occurred_on": format_date(item.occurred_on, lang) if item.occurred_on else "",
        "place": item.place,
        "platform": item.platform,
        "url": url,
        # Only web links become links; anything else stays text that can be copied.
        "url_is_link": url.startswith(("https://", "http://")),
        "description": item.description,
        "perpetrator": {
            "familiarity": labels.tax("perpetrator.familiarity", perpetrator.familiarity),
            "residence": labels.tax("perpetrator.residence", perpetrator.residence),
            "number": labels.tax("perpetrator.number", perpetrator.number),
            "details": perpetrator.details or "",
        },
        "complaint": complaint,
        "proceedings": proceedings_view(record, t, lang),
        "attachments": [attachment_view(case_id, a, lang) for a in attachments],
    }


def attachment_view(case_id: str, attachment: AttachmentInfo, lang: str) -> AttachmentView:
    return {
        # The JSON API streams it decrypted (and audits the download); the staff cookie is enough for a GET.
        "href": f"/api/v1/cases/{case_id}/attachments/{attachment['id']}",
        "filename": attachment["filename"] or attachment["id"][:8],
        "content_type": attachment["content_type"],
        "size": format_size(int(attachment["size_bytes"]), lang),
    }


def history_view(
    history: Sequence[HistoryEntry], names: Mapping[str, str], t: Translator, lang: str
) -> list[HistoryLine]:
    """Newest first; each opening of the case is audited, so runs of openings by one person are folded."""
    entries: list[HistoryLine] = []
    for event in history:
        if event.actor_kind == "reporter":
            # The reporter's own downloads and dossiers: named as the reporter, never anyone more exact.
            actor = t("case_page.conversation.reporter")
        else:
            actor = names.get(event.actor_id or "", "") or t("case_page.history.someone")
        last = entries[-1] if entries else None
        if (
            last is not None
            and event.action == "case.decrypt"
            and last["action"] == "case.decrypt"
            and last["actor"] == actor
        ):
            last["count"] += 1
            last["at"] = format_datetime(event.at, lang)
            continue
        entries.append(
            {
                "action": event.action,
                "label": code_label(t, "history", event.action),
                "actor": actor,
                "at": format_datetime(event.at, lang),
                "count": 1,
            }
        )
    entries.reverse()
    return entries


def routing_view(
    routing: Sequence[RoutingView], orgs: Mapping[str, str], t: Translator, lang: str
) -> list[RoutingLine]:
    views: list[RoutingLine] = []
    for record in routing:
        decision = record.decision
        minutes = int(decision.get("ack_deadline_minutes") or 0)
        views.append(
            {
                "at": format_datetime(record.created_at, lang),
                "targets": [orgs.get(slug, slug) for slug in decision.get("targets", [])],
                "escalation": [
                    {
                        "name": orgs.get(step["org"], step["org"]),
                        "after": duration_text(t, int(step["after_minutes"]), "after"),
                    }
                    for step in decision.get("escalation", [])
                ],
                "ack_deadline": duration_text(t, minutes, "within"),
                "fallback_used": bool(record.fallback_used),
                # A content hash: its first characters are enough to tell two versions apart.
                "policy_version": str(decision.get("policy_version", ""))[:12],
                "reasons": [
                    {
                        "rule_id": reason.get("rule_id") or "",
                        "kind_label": code_label(t, "routing_reason", reason.get("kind")),
                        "kind": reason.get("kind", ""),
                        # English and made of codes only (the engine writes no report content into it).
                        "detail": reason.get("detail", ""),
                    }
                    for reason in decision.get("reasons", [])
                ],
            }
        )
    return views


def holder_view(holder: Holder, acknowledged: bool, t: Translator) -> HolderLine:
    minutes = holder.escalation_after_minutes
    state = ""
    if not holder.active:
        if minutes is not None and not acknowledged:
            state = t("case_page.holders.waiting", after=duration_text(t, int(minutes), "after"))
        elif minutes is not None:
            state = t("case_page.holders.not_needed")
        else:
            state = t("case_page.holders.inactive")
    return {
        "name": holder.name,
        "role_label": code_label(t, "grant_role", holder.role),
        "active": bool(holder.active),
        "state": state,
    }


def merge_view(merge: MergeView | None) -> MergeLink | None:
    if merge is None:
        return None
    other = merge.other_case_id
    return {"role": merge.role, "ref": other[:8], "href": case_url(other)}


def events_view(case: CaseFile, lookups: CaseLookups) -> list[EventLine]:
    """The other incidents of this case's events: a link to a case the subject holds too; of any other case
    only that it exists and which organisations hold it (never a word of it)."""
    views: list[EventLine] = []
    for member in case.events:
        other = member.case_id
        mine = lookups.linked_mine.get(other, False)
        views.append(
            {
                "incident_seq": member.incident_seq,
                "seq": member.seq,
                "mine": mine,
                "ref": other[:8] if mine else "",
                "href": case_url(other) if mine else "",
                "holders": [] if mine else list(lookups.linked_holders.get(other, [])),
            }
        )
    return views


def case_view(
    case: CaseFile, lookups: CaseLookups, labels: Labels, user_id: str | None, now: datetime, today: date
) -> CaseView:
    """What the template shows, with every code already turned into a label (templates use literal keys)."""
    t, lang = labels.t, labels.lang
    case_id = case.id
    closed = case.status is CaseStatus.closed
    names, orgs = lookups.staff_names, lookups.organisation_names

    by_incident: dict[str | None, list[AttachmentInfo]] = {}
    for attachment in case.attachments:
        by_incident.setdefault(attachment.get("incident_id"), []).append(attachment)
    incident_ids = {item.id for item in case.incidents}
    loose = [
        a
        for key, items in by_incident.items()
        if key not in incident_ids
        for a in items
        if not a.get("message_id")
    ]
    by_id = {attachment["id"]: attachment for attachment in case.attachments}

    contact = case.contact
    assignee = case.assignee_id
    district = labels.districts.district(case.district_ags) if case.district_ags else None
    complaints = [
        info
        for item in case.incidents
        if not (item.proceedings or {}).get("application_on")
        and (info := complaint_info(t, lang, item.complaint_deadline_on, today)) is not None
    ]
    # The case's next deadline is a day; "not begun yet" is shown at its incident.
    # Called without a basis, complaint_info names only deadlines with a day, so each one has its days.
    next_complaint = min(complaints, key=lambda info: info["days"] or 0) if complaints else None
    if next_complaint is not None and closed:
        next_complaint["state"] = "ok"

    def author(item: CaseMessageView | CaseNoteView) -> str:
        name = names.get(item.author_id or "", "") or t("case_page.history.someone")
        org = orgs.get(item.organisation_id or "", "")
        return f"{name}, {org}" if org else name

    return {
        "articles": list(lookups.articles),
        "colleagues": [{"id": user_id_, "name": name} for user_id_, name in lookups.colleagues],
        "receivers": [
            {"slug": slug, "name": name, "police": police} for slug, name, police in lookups.receivers
        ],
        "id": case_id,
        "ref": case_id[:8],
        "url": case_url(case_id),
        "status": case.status.value,
        "status_label": code_label(t, "case_status", case.status),
        "urgency": case.urgency,
        "urgency_label": code_label(t, "urgency", case.urgency),
        "outcome": case.outcome.value if case.outcome else "",
        "outcome_label": code_label(t, "outcome", case.outcome),
        "closed": closed,
        "closed_at": format_datetime(case.closed_at, lang) if case.closed_at else "",
        "land_label": labels.land(case.land),
        "district_label": district.name if district is not None else "",
        "office_label": labels.tax("offices", case.office),
        "created": format_datetime(case.created_at, lang),
        "ack": ack_info(t, lang, case.ack_deadline_at, case.acknowledged_at, now),
        "complaint": next_complaint,
        "assignee_me": assignee == user_id,
        "assignee_name": names.get(assignee, "") if assignee else "",
        "labels": list(case.labels),
        "label_names": [code_label(t, "case_label", code) for code in case.labels],
        "consent_counselling": bool(case.consent_counselling),
        "consent_police": bool(case.consent_police),
        "municipality": case.municipality or "",
        "targets": [labels.tax("targets", code) for code in case.targets],
        "reported_by": case.reported_by,
        "reported_by_label": labels.tax("reported_by", case.reported_by),
        "answers": [
            {"legend": t(f"field.{kind}"), "labels": [labels.tax(kind, code) for code in case.answers[kind]]}
            for kind in ANSWER_KINDS
            if case.answers.get(kind)
        ],
        "support_needs": [labels.tax("support_needs", code) for code in case.support_needs],
        "contact": {
            "name": (contact.get("name") if contact else None) or "",
            "email": (contact.get("email") if contact else None) or "",
            "phone": (contact.get("phone") if contact else None) or "",
        },
        "incidents": [
            incident_view(case_id, item, by_incident.get(item.id, []), labels, today, closed)
            for item in case.incidents
        ],
        "loose_attachments": [attachment_view(case_id, a, lang) for a in loose],
        "messages": [
            {
                "from_reporter": message.from_reporter,
                "author": t("case_page.conversation.reporter") if message.from_reporter else author(message),
                "at": format_datetime(message.created_at, lang),
                "body": message.body,
                "files": [attachment_view(case_id, by_id[ref], lang) for ref in message.attachment_ids],
            }
            for message in case.messages
        ],
        "notes": [
            {"author": author(note), "at": format_datetime(note.created_at, lang), "body": note.body}
            for note in case.notes
        ],
        "holders": [holder_view(holder, bool(case.acknowledged_at), t) for holder in case.holders],
        "events": events_view(case, lookups),
        "merge": merge_view(case.merge),
        "proceedings_outcomes": [
            {"code": code, "label": code_label(t, "proceedings.outcome", code)}
            for code in PROCEEDINGS_OUTCOMES
        ],
        "routing": routing_view(case.routing, orgs, t, lang),
        "history": history_view(case.history, names, t, lang),
    }


def case_options(t: Translator) -> CaseOptions:
    """The choices of the case page's work forms: statuses, outcomes, labels."""
    return {
        "statuses": [{"code": s.value, "label": code_label(t, "case_status", s.value)} for s in CaseStatus],
        "outcomes": [{"code": o.value, "label": code_label(t, "outcome", o.value)} for o in CaseOutcome],
        "labels": [
            {"code": code.value, "label": code_label(t, "case_label", code.value)} for code in CaseLabel
        ],
    }
