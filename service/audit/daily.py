"""The daily checkpoint: the audit chain's head leaves the machine, so a cut tail can be named later.

A chain cannot show by itself that its newest rows were deleted (``service.audit.service``). Once a day the
beat (``audit.checkpoint``) therefore mails a signed checkpoint to every enabled coordinator and every
member of the fallback rota: people outside the operator's reach, in mailboxes the database does not
control. ``rueckhalt audit verify --checkpoint-file`` reads such a mail back and names a cut.

Recording the sending changes the head, so the order matters. The event is appended *first* and the mail
carries that event's own MAC: the checkpoint covers everything before it and the record that it was sent.
(Mailing the head and then appending would leave the record outside its own checkpoint, cuttable until the
next day's mail.) Appending, the day check and the outbox row share one transaction under the chain's append
lock: two workers, or a beat firing every hour, send one checkpoint per day, and a failed transaction sends
none. The event itself is the row that records the day; cutting it only makes the next pass send again, and
a forged one (a row inserted past the service to suppress the mail) fails its MAC and is not believed.

Nothing of any case goes into the event, the outbox row or the mail: a sequence number, a MAC, a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from service.audit import repository
from service.audit.checkpoint import Checkpoint
from service.audit.service import AuditLog
from service.i18n import LOCAL_ZONE
from service.outbox.writer import message

ACTION = "audit.checkpoint"
TOPIC = "notifications.audit_checkpoint"

log = logging.getLogger("rueckhalt.audit")


@dataclass(frozen=True)
class SentCheckpoint:
    checkpoint: Checkpoint
    day: str
    outbox_id: str


def checkpoint_day(now: datetime) -> str:
    """The service's calendar day (Europe/Berlin): "once a day" as the coordinators count days."""
    return now.astimezone(LOCAL_ZONE).date().isoformat()


def send_daily_checkpoint(session: Session, audit: AuditLog, *, now: datetime) -> SentCheckpoint | None:
    """Append today's checkpoint event and its mail (an outbox row); None if today's exists.

    The caller commits (the beat's task is the transaction); a None is rolled back here, which releases the
    lock. The transaction must be fresh: the lock is taken before the first read, so the day check sees
    every committed checkpoint (SQLite's write lock cannot be taken by a transaction that has already read).
    """
    day = checkpoint_day(now)
    audit.lock(session)
    last = repository.latest_with_action(session, ACTION)
    if last is not None and isinstance(last.details, dict) and last.details.get("day") == day:
        if audit.is_authentic(last):
            session.rollback()
            return None
        # A row written past the service to make the beat believe today's mail went out: send it anyway.
        log.error("the newest audit checkpoint event (seq %d) is not genuine; sending a new one", last.seq)
    event = audit.append(
        session,
        actor_kind="system",
        actor_id=None,
        action=ACTION,
        object_type="audit",
        details={"day": day},
    )
    checkpoint = audit.sign_checkpoint(event)
    row = message(
        TOPIC,
        day=day,
        seq=checkpoint.seq,
        at=checkpoint.when,
        checkpoint=str(checkpoint),
    )
    session.add(row)
    session.flush()
    log.info("audit checkpoint of %s at seq %d queued (outbox %s)", day, checkpoint.seq, row.id)
    return SentCheckpoint(checkpoint=checkpoint, day=day, outbox_id=row.id)
