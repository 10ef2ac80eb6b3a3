"""The same event: incidents of different cases that counsellors declared one event (issue 18).

A council meeting where several members were threatened, or one posting that many saw, reaches the service
as several reports, often to different counsellors. A counsellor who holds two of the cases links their
incidents; the holders of every linked case then see that the link exists (and by whom the other cases
are held), never the other case's content unless they hold it too.

What is clear (docs/clear-columns.md): ``event_link`` says which incidents belong to one event, nothing more.
The statistics rows of those incidents get ``event_key``, a keyed token of the event's id under the statistics
key (a server secret, as the reporter pseudonym): the rows count the event once, and a thief of the database
can join them neither to ``event_link`` nor to a case. The token is written with each incident's own case key
(the way from an incident to its statistics row is sealed), which is why linking needs a counsellor who can
open both cases, and why an incident joins an event rather than two events merging: the rows of an event
whose cases the counsellor cannot open could not follow.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.cases.models import EventLink, Incident
from service.crypto import Context, keyed_hash, open_sealed
from service.extract.models import StatisticsExtract


def event_token(statistics_key: bytes, event_id: str) -> str:
    """What a statistics row carries of its event: unlinkable to ``event_link`` without the statistics key."""
    return keyed_hash(statistics_key, "event", event_id.encode()).hex()


def extract_of(session: Session, key: bytes, incident: Incident) -> StatisticsExtract | None:
    """The statistics row of an incident, found through its sealed reference (None once it is gone)."""
    context = Context("extract_ref", case_id=incident.case_id, record_id=incident.id)
    return session.get(StatisticsExtract, open_sealed(key, incident.extract_ref, context).decode())


def event_of(session: Session, incident_id: str) -> str | None:
    return session.scalar(select(EventLink.event_id).where(EventLink.incident_id == incident_id))


@dataclass(frozen=True)
class Member:
    """Another incident of the same event, as a holder of one linked case may see it."""

    incident_seq: int  # the incident of the case being viewed
    case_id: str
    seq: int


def members(session: Session, case_id: str) -> list[Member]:
    """For each linked incident of the case, the incidents of other cases in its event (ordered)."""
    own = select(EventLink.event_id, Incident.seq).join(Incident, Incident.id == EventLink.incident_id)
    own_rows = session.execute(own.where(Incident.case_id == case_id)).all()
    if not own_rows:
        return []
    seq_of_event: dict[str, int] = {str(event_id): int(seq) for event_id, seq in own_rows}
    rows = session.execute(
        select(EventLink.event_id, Incident.case_id, Incident.seq)
        .join(Incident, Incident.id == EventLink.incident_id)
        .where(EventLink.event_id.in_(list(seq_of_event)), Incident.case_id != case_id)
        .order_by(Incident.case_id, Incident.seq)
    ).all()
    found = [Member(seq_of_event[event_id], other, seq) for event_id, other, seq in rows]
    return sorted(found, key=lambda member: (member.incident_seq, member.case_id, member.seq))


def link(
    session: Session,
    statistics_key: bytes,
    first: tuple[Incident, bytes],
    second: tuple[Incident, bytes],
    new_event_id: str,
) -> bool:
    """Put two incidents (each with its case key) into one event: a new one, or the event one of them is in
    already. False when they are in two different events (one must leave its event first); True also when
    they were in the same one already (nothing changes)."""
    events = {incident.id: event_of(session, incident.id) for incident, _ in (first, second)}
    known = {event for event in events.values() if event is not None}
    if len(known) > 1:
        return False
    event_id = known.pop() if known else new_event_id
    token = event_token(statistics_key, event_id)
    for incident, key in (first, second):
        if events[incident.id] is None:
            session.add(EventLink(incident_id=incident.id, event_id=event_id))
        extract = extract_of(session, key, incident)
        if extract is not None:
            extract.event_key = token
    return True


def unlink(session: Session, incident: Incident, key: bytes) -> bool:
    """Take an incident out of its event; False if it was in none. An event left with one incident is no
    link any more and goes too (that incident's statistics row keeps its token, which then counts as one
    event of one incident, exactly as no token would: the row can only be reached with its own case key)."""
    event_id = event_of(session, incident.id)
    if event_id is None:
        return False
    session.execute(delete(EventLink).where(EventLink.incident_id == incident.id))
    extract = extract_of(session, key, incident)
    if extract is not None:
        extract.event_key = None
    left: Sequence[str] = session.scalars(
        select(EventLink.incident_id).where(EventLink.event_id == event_id)
    ).all()
    if len(left) == 1:
        session.execute(delete(EventLink).where(EventLink.event_id == event_id))
    return True


def linked_seqs(session: Session, case_id: str) -> Collection[int]:
    """The numbers of the case's incidents that are in an event."""
    return set(
        session.scalars(
            select(Incident.seq)
            .join(EventLink, EventLink.incident_id == Incident.id)
            .where(Incident.case_id == case_id)
        )
    )
