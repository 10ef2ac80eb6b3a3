"""What the reporter's pages show, from typed data and a translator: no database, no request.

The routes (pages.py, case_pages.py, download_pages.py) read the case through the service and hand the typed
view here; what comes back is the template's context, in the reporter's language.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypedDict

from service.cases.merge import PendingMerge
from service.cases.models import GrantRole
from service.cases.presenter import code_label, proceedings_view
from service.cases.proceedings import OUTCOMES as PROCEEDINGS_OUTCOMES
from service.cases.proceedings import view as proceedings_record
from service.cases.repository import KeyHolder
from service.cases.views import ProceedingsView
from service.config import Settings
from service.dossier import letters
from service.dossier import service as dossiers
from service.i18n import Translator, duration_text, format_date, format_datetime, format_size
from service.matching.display import identifier_items
from service.matching.normalise import PLATFORM_NAMES
from service.notifications.mail import ReporterMail, reporter_mail
from service.reports.deadline_view import DeadlineView, deadline_view
from service.reports.reporter_case import FileView, IncidentView, MessageView, ReporterView
from service.taxonomy import Districts, Land, Taxonomy

# Notices that a redirect back to /fall names by code (never by text, so a link cannot put words there).
CASE_NOTICES = {"message_sent": "notice.message_sent", "message_already_sent": "notice.message_already_sent"}
# Shown at the top of /fall after the incident form or the "perpetrator known since" form.
INCIDENT_NOTICES = {
    "incident_already_added": "notice.incident_already_added",
    "known_saved": "notice.perpetrator_known_saved",
    "proceedings_saved": "notice.proceedings_saved",
    "merged": "notice.merged",
    "merge_declined": "notice.merge_declined",
}
NOTIFY_NOTICES = {"notify_saved": "notice.notify_saved", "notify_removed": "notice.notify_removed"}
MATCHING_NOTICES = {
    "identifiers_saved": "notice.identifiers_saved",
    "identifiers_waiting": "notice.identifiers_waiting",
    "identifiers_withdrawn": "notice.identifiers_withdrawn",
}


@dataclass(frozen=True)
class Notices:
    """The notices of /fall, each shown where its redirect lands (the top, #messages, #notify, #matching)."""

    notice: str | None = None
    message_notice: str | None = None
    notify_notice: str | None = None
    matching_notice: str | None = None


def notices(code: str, t: Translator) -> Notices:
    """The notice a redirect names by code; an unknown code shows nothing."""
    return Notices(
        notice=t(INCIDENT_NOTICES[code]) if code in INCIDENT_NOTICES else None,
        message_notice=t(CASE_NOTICES[code]) if code in CASE_NOTICES else None,
        notify_notice=t(NOTIFY_NOTICES[code]) if code in NOTIFY_NOTICES else None,
        matching_notice=t(MATCHING_NOTICES[code]) if code in MATCHING_NOTICES else None,
    )


@dataclass(frozen=True)
class HolderLine:
    name: str
    state: str


@dataclass(frozen=True)
class FileLink:
    """A file of the case as /fall lists it: its download (decrypted as it streams, audited)."""

    href: str
    filename: str
    content_type: str
    size: str


@dataclass(frozen=True)
class MessageItem:
    from_reporter: bool
    author: str
    at: str
    body: str
    files: tuple[FileLink, ...]


@dataclass(frozen=True)
class IncidentItem:
    seq: int
    created_at: str
    type_labels: tuple[str, ...]
    channel_label: str
    description: str
    occurred_on: str | None
    attachments: int
    files: tuple[FileLink, ...]
    complaint: DeadlineView | None
    proceedings: ProceedingsView
    # For the small "perpetrator known since" form: the stored day as the date input wants it.
    perpetrator_known_on: str


@dataclass(frozen=True)
class MergeOffer:
    older_created_on: str
    holders: tuple[str, ...]


@dataclass(frozen=True)
class OutcomeChoice:
    code: str
    label: str


@dataclass(frozen=True)
class CasePage:
    """The reporter's case file as /fall shows it."""

    merge: MergeOffer | None
    proceedings_outcomes: tuple[OutcomeChoice, ...]
    status_label: str
    notify: bool
    created_at: str
    organisations: tuple[str, ...]
    acknowledged_on: str | None
    first_reply_on: str | None
    holders: tuple[HolderLine, ...]
    messages: tuple[MessageItem, ...]
    incidents: tuple[IncidentItem, ...]
    identifiers: tuple[dict[str, str], ...]
    identifiers_waiting: bool


class PlatformChoice(TypedDict):
    code: str
    name: str


class FormChoices(TypedDict):
    """The choices of the report form and the incident form of /fall (a part of their template context)."""

    taxonomy: Taxonomy
    lands: tuple[Land, ...]
    districts: Districts
    max_attachment_mb: int
    max_attachments: int
    reporter_mail: ReporterMail
    platforms: list[PlatformChoice]


def form_context(taxonomy: Taxonomy, districts: Districts, settings: Settings) -> FormChoices:
    """What the report form and the incident form of /fall need to offer their choices."""
    return {
        "taxonomy": taxonomy,
        "lands": districts.lands,
        "districts": districts,
        "max_attachment_mb": settings.max_attachment_bytes // (1024 * 1024),
        "max_attachments": settings.max_attachments_per_report,
        "reporter_mail": reporter_mail(settings),
        # The platforms a perpetrator's handle can be given for (service/matching/normalise.py).
        "platforms": [{"code": code, "name": name} for code, name in PLATFORM_NAMES.items()],
    }


def holder_lines(holders: Sequence[KeyHolder], acknowledged: bool, t: Translator) -> tuple[HolderLine, ...]:
    """Every organisation holding the case key, with what it can do now: those that see the case first,
    then the stand-ins by the time their access would open."""
    ordered = sorted(holders, key=lambda holder: (not holder.active, holder.escalation_after_minutes or 0))
    lines = []
    for holder in ordered:
        if holder.role == GrantRole.escalation.value:
            if holder.active:
                state = t("holders.state.stepped_in")
            elif acknowledged:
                state = t("holders.state.standby_unneeded")
            else:
                after = duration_text(t, int(holder.escalation_after_minutes or 0))
                state = t("holders.state.standby", deadline=after)
        elif holder.role == GrantRole.referral.value:
            state = t("holders.state.referred") if holder.active else t("holders.state.inactive")
        else:
            state = t("holders.state.sees") if holder.active else t("holders.state.inactive")
        lines.append(HolderLine(name=holder.name, state=state))
    return tuple(lines)


def file_link(item: FileView, lang: str) -> FileLink:
    return FileLink(
        href=f"/fall/anhang/{item.id}",
        filename=item.filename or item.id[:8],
        content_type=item.content_type,
        size=format_size(item.size_bytes, lang),
    )


def _message(message: MessageView, t: Translator, lang: str) -> MessageItem:
    mine = message.direction == "from_reporter"
    return MessageItem(
        from_reporter=mine,
        # The reporter sees the organisation, never which counsellor wrote.
        author=t("case.messages.from_me") if mine else message.organisation or t("case.organisations"),
        at=format_datetime(message.created_at, lang),
        body=message.body,
        files=tuple(file_link(item, lang) for item in message.attachments),
    )


def _incident(item: IncidentView, taxonomy: Taxonomy, t: Translator, lang: str, today: date) -> IncidentItem:
    return IncidentItem(
        seq=item.seq,
        created_at=format_date(item.created_at, lang),
        type_labels=tuple(taxonomy.label("incident_types", code, lang) for code in item.type_codes),
        channel_label=taxonomy.label("channels", item.channel, lang),
        description=item.description,
        occurred_on=format_date(item.occurred_on, lang) if item.occurred_on else None,
        attachments=item.attachments,
        files=tuple(file_link(file, lang) for file in item.files),
        complaint=deadline_view(
            item.complaint,
            today,
            lang,
            filed_on=item.proceedings.application_on if item.proceedings else None,
        ),
        proceedings=proceedings_view(proceedings_record(item.proceedings) or {}, t, lang),
        perpetrator_known_on=item.perpetrator_known_on or "",
    )


def case_page(
    view: ReporterView,
    pending: PendingMerge | None,
    taxonomy: Taxonomy,
    t: Translator,
    lang: str,
    today: date,
) -> CasePage:
    return CasePage(
        merge=None
        if pending is None
        else MergeOffer(
            older_created_on=format_date(pending.older_created_at, lang), holders=tuple(pending.holders)
        ),
        proceedings_outcomes=tuple(
            OutcomeChoice(code=code, label=code_label(t, "proceedings.outcome", code))
            for code in PROCEEDINGS_OUTCOMES
        ),
        status_label=t(f"status.{view.status}"),
        notify=view.notify,
        created_at=format_date(view.created_at, lang),
        organisations=view.organisations,
        acknowledged_on=format_date(view.acknowledged_on, lang) if view.acknowledged_on else None,
        first_reply_on=format_date(view.first_reply_on, lang) if view.first_reply_on else None,
        holders=holder_lines(view.key_holders, bool(view.acknowledged_on), t),
        messages=tuple(_message(message, t, lang) for message in view.messages),
        incidents=tuple(_incident(item, taxonomy, t, lang, today) for item in view.incidents),
        identifiers=tuple(identifier_items([item.typed() for item in view.identifiers], t)),
        identifiers_waiting=view.identifiers_waiting,
    )


def letter_prefill(view: ReporterView, taxonomy: Taxonomy) -> dict[str, str]:
    """The platform notice's explanation, prefilled from the incident types (the reporter completes it)."""
    codes = [code for item in view.incidents for code in item.type_codes]
    return {"letter_explanation": letters.explanation(dossiers.coded_types(taxonomy, codes, "de"))}
