"""The shapes of what the counsellor's pages show (the inbox, the case page) and of the proceedings block
/fall shares with them: the template context the presenters (presenter.py, case_presenter.py) make.

TypedDicts, not dataclasses: the values are Jinja context (read as ``x.key``, which works on a dict as well),
the tests compare them with dict literals, and a few are adjusted after they are made (a closed case's
deadline is "ok"; a run of openings of the case by one person is counted in its first line).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypedDict


class Choice(TypedDict):
    """A code and its label: an option of a select or a box to tick, or a code named on the page."""

    code: str
    label: str


# -- deadlines -----------------------------------------------------------------------------------------------


class AckInfo(TypedDict):
    state: Literal["done", "open", "overdue"]
    at: str
    relative: str


ComplaintState = Literal["filed", "not_started", "past", "soon", "ok"]


class ComplaintInfo(TypedDict):
    """The Strafantrag deadline as shown: the day (or week), days left (none before it has begun or once a
    Strafantrag is filed), how urgent it is and the sentence that says so."""

    date: str
    days: int | None
    state: ComplaintState
    text: str


# -- the inbox -----------------------------------------------------------------------------------------------


class TypeGroup(TypedDict):
    label: str
    options: list[Choice]


class InboxOptions(TypedDict):
    """The filter form's choices; the first of each list is "no filter"."""

    statuses: list[Choice]
    urgencies: list[Choice]
    lands: list[Choice]
    type_groups: list[TypeGroup]
    assignees: list[Choice]


class InboxRowView(TypedDict):
    href: str
    ref: str
    status: str
    status_label: str
    reopened: bool
    urgency: str
    urgency_label: str
    land_label: str
    types: list[Choice]
    incidents: int
    labels: list[str]
    created: str
    ack: AckInfo
    complaint: ComplaintInfo | None
    assignee_me: bool
    assignee_name: str


# -- proceedings (the staff case page and the reporter's /fall) ----------------------------------------------


class ProceedingsRaw(TypedDict):
    """The recorded values as the form's inputs want them (ISO days, the code); "" for none. A refused
    form brings back what was typed instead (``information_requested`` then is the box's "yes")."""

    complaint_on: str
    application_on: str
    file_number: str
    information_requested: bool | str
    information_requested_on: str
    outcome: str


class ProceedingsView(TypedDict):
    recorded: bool
    complaint_on: str
    application_on: str
    file_number: str
    information_requested: bool
    information_requested_on: str
    outcome: str
    outcome_label: str
    raw: ProceedingsRaw


# -- the case page -------------------------------------------------------------------------------------------


class PerpetratorView(TypedDict):
    familiarity: str
    residence: str
    number: str
    details: str


class AttachmentView(TypedDict):
    href: str
    filename: str
    content_type: str
    size: str


class IncidentView(TypedDict):
    seq: int
    created: str
    types: list[Choice]
    codes: list[str]
    type_other: str
    channel_label: str
    urgency_label: str
    occurred_on: str
    place: str
    platform: str
    url: str
    url_is_link: bool
    description: str
    perpetrator: PerpetratorView
    complaint: ComplaintInfo | None
    proceedings: ProceedingsView
    attachments: list[AttachmentView]


class HistoryLine(TypedDict):
    action: str
    label: str
    actor: str
    at: str
    # Openings of the case by one person in a row are one line.
    count: int


class EscalationLine(TypedDict):
    name: str
    after: str


class ReasonLine(TypedDict):
    rule_id: str
    kind_label: str
    kind: str
    detail: str


class RoutingLine(TypedDict):
    at: str
    targets: list[str]
    escalation: list[EscalationLine]
    ack_deadline: str
    fallback_used: bool
    policy_version: str
    reasons: list[ReasonLine]


class HolderLine(TypedDict):
    name: str
    role_label: str
    active: bool
    state: str


class MergeLink(TypedDict):
    role: Literal["newer", "older"]
    ref: str
    href: str


class EventLine(TypedDict):
    """Another incident of the same event: a link where the subject holds its case too, else only who
    holds it."""

    incident_seq: int
    seq: int
    mine: bool
    ref: str
    href: str
    holders: list[str]


class Colleague(TypedDict):
    id: str
    name: str


class Receiver(TypedDict):
    slug: str
    name: str
    police: bool


class AnswerGroup(TypedDict):
    legend: str
    labels: list[str]


class ContactView(TypedDict):
    name: str
    email: str
    phone: str


class MessageLine(TypedDict):
    from_reporter: bool
    author: str
    at: str
    body: str
    files: list[AttachmentView]


class NoteLine(TypedDict):
    author: str
    at: str
    body: str


class CaseView(TypedDict):
    """The case page (``staff_case.html``'s ``case``): every code already a label."""

    articles: list[Mapping[str, str]]
    colleagues: list[Colleague]
    receivers: list[Receiver]
    id: str
    ref: str
    url: str
    status: str
    status_label: str
    urgency: str
    urgency_label: str
    outcome: str
    outcome_label: str
    closed: bool
    closed_at: str
    land_label: str
    district_label: str
    office_label: str
    created: str
    ack: AckInfo
    complaint: ComplaintInfo | None
    assignee_me: bool
    assignee_name: str
    labels: list[str]
    label_names: list[str]
    consent_counselling: bool
    consent_police: bool
    municipality: str
    targets: list[str]
    reported_by: str
    reported_by_label: str
    answers: list[AnswerGroup]
    support_needs: list[str]
    contact: ContactView
    incidents: list[IncidentView]
    loose_attachments: list[AttachmentView]
    messages: list[MessageLine]
    notes: list[NoteLine]
    holders: list[HolderLine]
    events: list[EventLine]
    merge: MergeLink | None
    proceedings_outcomes: list[Choice]
    routing: list[RoutingLine]
    history: list[HistoryLine]


class CaseOptions(TypedDict):
    """The choices of the case page's work forms."""

    statuses: list[Choice]
    outcomes: list[Choice]
    labels: list[Choice]


# -- a refused form, shown again -----------------------------------------------------------------------------

# What was typed into a form, shown again after a refusal (or prefilled): a field's text, the ticked boxes
# of a list, a yes/no, or the fields of a sub-form by name (an incident's proceedings). Staff and /fall.
FormValue = str | bool | list[str] | Mapping[str, str]
FormValues = Mapping[str, FormValue]
