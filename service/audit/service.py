"""Writing and verifying the hash-chained audit log: appending (``AuditLog``) is here, the MAC of a row and
its encoding in ``chain``, ``verify`` in ``verification``; this docstring is the design of all three.

Each row's ``mac`` is HMAC(audit key, canonical encoding of the row including ``prev_mac``), and ``prev_mac``
is the previous row's ``mac`` (64 zeros for seq 1). Someone who can write to the database but does not hold
the audit key therefore cannot alter, remove, reorder or insert a row without ``verify`` naming the first
row where the chain breaks.

One thing a chain cannot show by itself is a cut tail: delete the newest rows and what is left is a
perfectly valid, shorter chain. Checkpoints close that gap. ``verify`` returns the head of an intact chain as
``Checkpoint`` (printed by ``rueckhalt audit verify`` as ``SEQ:MAC``); the operator keeps it outside the
service (paper, a ticket, another system). Given that checkpoint later, ``verify`` additionally requires
the row with that seq to exist and to carry that exact MAC. Because every MAC covers all rows before it,
that one comparison pins the whole prefix up to the checkpoint: a truncation or a rewrite of any of those
rows is detected, even by someone who holds the key (they would need an HMAC-SHA256 collision). Rows after
the newest checkpoint are protected against change, removal in the middle, reordering and forgery, but a
cut of them is only detectable against a later checkpoint — so take one on every verification run.

The beat takes one every day without anyone having to remember (``service.audit.daily``): it appends an
``audit.checkpoint`` event and mails that event's own MAC, signed (``service.audit.checkpoint``), to the
coordinators and the fallback rota. Someone who can delete rows can then cut at most what was written since
the last mail without ``verify`` naming the cut from that mail.

Rotating the audit key (``rueckhalt secrets rotate audit_key``) begins a new *segment* of the same chain.
The first append under the new key finds the head written under a previous key and writes
``audit.segment_begun`` first: under the new key, linked to the old head by ``prev_mac`` as every row is,
naming the previous key's id and its own (``key_id``: an HMAC of a constant, nothing of the key). From then on
every row is written under the new key. ``verify`` walks all segments with the keys of their rows: the
current key and the previous ones (RUECKHALT_AUDIT_KEY_PREVIOUS, kept for good). Why keep the old keys
rather than only a checkpoint of the old head: a checkpoint pins the old head's MAC, but the rows before it
can only be checked with the key they were written under; without it, an altered old row would go unseen.
Keeping a leaked old key for verification gives its holder nothing: the first row of the new segment
(under the new key) pins the old head, so a rewrite of the old segment breaks that link, and a key never
returns once its segment ended, so rows appended under an old key after the rotation are refused as forged.
An append by a process whose key a segment retired refuses (``AuditKeyMismatch``): a process still running
with the old key after a rotation must not continue the old segment behind the new one. A head under no known
key (a row written past the service) does not stop appending: ``verify`` names that row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from service.config import Secrets

from service.audit import repository
from service.audit.chain import GENESIS_MAC, SEGMENT_ACTION, authentic, chain_mac, check_key, key_id
from service.audit.checkpoint import Checkpoint
from service.audit.models import AuditEvent, DetailValue
from service.audit.repository import StoredEvent
from service.db import of_this_transaction, utcnow

ACTOR_KINDS = frozenset({"staff", "reporter", "system", "operator"})

# Mirror the column widths: PostgreSQL refuses longer values but SQLite stores them, and the two databases
# must behave the same.
_FIELD_LIMITS = {"actor_id": 36, "action": 64, "object_type": 32, "object_id": 64}
# Details are identifiers, codes and counts. The caps are far above what those need and far below what a
# description or a name would, so content pasted into an audit call by mistake is refused, not kept forever.
MAX_DETAIL_ITEMS = 32
MAX_DETAIL_NAME_CHARS = 64
MAX_DETAIL_TEXT_CHARS = 128


class AuditKeyMismatch(RuntimeError):
    """This process's audit key was retired by a rotation: it must not append behind the new segment."""


def _scalar(name: str, value: object) -> DetailValue:
    # Error messages name the detail, never its value: the value may be exactly the content we keep out.
    if value is None:
        return None
    # bool before int (bool is an int subclass) so True stays true. Enum members become their plain value,
    # so the returned event holds what a later read of the row will hold.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_TEXT_CHARS:
            raise ValueError(
                f"audit detail {name!r} is longer than {MAX_DETAIL_TEXT_CHARS} characters: details hold "
                "identifiers and codes, never content"
            )
        return str(value)
    raise TypeError(
        f"audit detail {name!r} is a {type(value).__name__}: details hold only str, int, bool or None "
        "(identifiers, codes, counts), never nested or free-form data"
    )


def _clean_details(details: Mapping[str, DetailValue] | None) -> dict[str, DetailValue]:
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise TypeError("audit details must be a mapping of names to scalars")
    if len(details) > MAX_DETAIL_ITEMS:
        raise ValueError(f"audit details take at most {MAX_DETAIL_ITEMS} items")
    clean: dict[str, DetailValue] = {}
    for name, value in details.items():
        if not isinstance(name, str):
            raise TypeError("audit detail names must be str")
        if not name or len(name) > MAX_DETAIL_NAME_CHARS:
            raise ValueError(f"audit detail names must be 1-{MAX_DETAIL_NAME_CHARS} characters")
        clean[str(name)] = _scalar(name, value)
    return clean


def _check_text(field: str, value: str | None, *, required: bool) -> None:
    if value is None:
        if required:
            raise ValueError(f"audit {field} is required")
        return
    if not isinstance(value, str):
        raise TypeError(f"audit {field} must be str")
    if not value or len(value) > _FIELD_LIMITS[field]:
        raise ValueError(f"audit {field} must be 1-{_FIELD_LIMITS[field]} characters")


# Marks a transaction that holds the chain's lock (``chain_held``).
_CHAIN_HELD = "rueckhalt.audit_chain_held"


def chain_held(session: Session) -> bool:
    """Whether the session's current transaction holds the chain's lock (it appended, or ``AuditLog.lock``).

    For the row locks that must come before it (``AuditLog``): an organisation's key row, which a filing
    holds shared while it may still append (a match that fires), is locked before the chain or not at all."""
    return bool(of_this_transaction(session, _CHAIN_HELD, lambda: [False])[0])


def _lock_chain(session: Session) -> None:
    """Serialise appenders for the rest of the caller's transaction, so the head they read stays the head.

    Without this, two transactions could read the same head and both write seq N+1: the primary key lets
    only one of them commit, and the other's audited change would fail with it.
    """
    dialect = session.get_bind(AuditEvent).dialect.name
    if dialect == "postgresql":
        repository.lock_chain_postgresql(session)
    elif dialect == "sqlite":
        repository.claim_write_lock_sqlite(session)
    else:
        # Fail closed: an unknown database gets no chain rather than one that can fork.
        raise RuntimeError(f"the audit chain has no append lock for {dialect}")
    of_this_transaction(session, _CHAIN_HELD, lambda: [False])[0] = True


class AuditLog:
    """Appends events to the chain inside the caller's transaction.

    The caller commits (or rolls back): an audited change and its audit row share one fate. Append late in
    the transaction, just before the commit: from the append on, every other appender waits for this
    transaction (PostgreSQL advisory lock; SQLite's single write lock), and a transaction that still takes
    row locks after its append can wait for a row held by an appender that waits for it — a deadlock.
    Run appending transactions at PostgreSQL's default READ COMMITTED: under REPEATABLE READ the head read
    could come from an older snapshot, and the insert would then fail on the primary key (the chain still
    cannot fork).
    """

    def __init__(self, key: bytes, previous: Sequence[bytes] = ()) -> None:
        check_key(key)
        for old in previous:
            check_key(old)
        self._key = key
        # Earlier audit keys (a rotation): only to recognise the head of an older segment and to check
        # checkpoints; never to write.
        self._previous = tuple(old for old in previous if old != key)

    @classmethod
    def of(cls, secrets: Secrets) -> AuditLog:
        """The audit log of a process's secrets: the current key, and the previous ones of a rotation."""
        return cls(secrets.audit_key, secrets.previous_of("audit_key"))

    def __repr__(self) -> str:
        return "AuditLog(key=<hidden>)"

    @property
    def key_id(self) -> str:
        return key_id(self._key)

    def lock(self, session: Session) -> None:
        """Take the append lock now, for a caller that must read the chain and append as one step."""
        _lock_chain(session)

    def is_authentic(self, event: StoredEvent) -> bool:
        """Whether a stored row carries the MAC this key (or a previous one) gives it (not its link)."""
        return any(authentic(key, event) for key in (self._key, *self._previous))

    def _segment_start(self, session: Session, head: StoredEvent | None) -> dict[str, DetailValue] | None:
        """Details of the ``audit.segment_begun`` row to write first, if the head is under a previous key.

        None when the chain is empty or its head is under this key, and also when the head is under no key
        known here: a row written past the service, which ``verify`` names; appending goes on, so that such
        a row cannot silence the audit log (or the daily checkpoint mail that would expose it). Raises
        ``AuditKeyMismatch`` when this process's key was retired by a rotation (a segment-begun row names it):
        a process still running with the old key must not continue the old segment behind the new one.
        """
        if head is None or authentic(self._key, head):
            return None
        for old in self._previous:
            if authentic(old, head):
                return {"retired_key": key_id(old), "key": self.key_id, "previous_head_seq": head.seq}
        if repository.segment_retiring(session, SEGMENT_ACTION, self.key_id):
            raise AuditKeyMismatch(
                "this process's audit key was retired by a rotation: restart it with the new "
                "RUECKHALT_AUDIT_KEY (and the old one in RUECKHALT_AUDIT_KEY_PREVIOUS)"
            )
        return None

    def sign_checkpoint(self, event: AuditEvent) -> Checkpoint:
        """The signed checkpoint of an appended row (``seq:mac:time:tag``), for mailing it out."""
        return Checkpoint.signed(self._key, event.seq, event.mac, event.at)

    def append(
        self,
        session: Session,
        *,
        actor_kind: str,
        actor_id: str | None,
        action: str,
        object_type: str | None = None,
        object_id: str | None = None,
        details: Mapping[str, DetailValue] | None = None,
    ) -> AuditEvent:
        # Validate first: a refused call must not take the chain lock or touch the transaction.
        if actor_kind not in ACTOR_KINDS:
            raise ValueError(f"audit actor_kind must be one of {', '.join(sorted(ACTOR_KINDS))}")
        _check_text("actor_id", actor_id, required=False)
        _check_text("action", action, required=True)
        _check_text("object_type", object_type, required=False)
        _check_text("object_id", object_id, required=False)
        clean = _clean_details(details)

        # The caller's pending writes go out before the chain lock, never after it: a row lock taken while
        # holding the chain lock is the deadlock order this class forbids (callers need not flush first).
        session.flush()
        _lock_chain(session)
        current = repository.head_event(session)
        segment = self._segment_start(session, current)
        if segment is not None:
            retired = str(segment["retired_key"])
            self._write(session, current, "system", None, SEGMENT_ACTION, "audit_key", retired, segment)
            current = repository.head_event(session)
        return self._write(session, current, actor_kind, actor_id, action, object_type, object_id, clean)

    def _write(
        self,
        session: Session,
        current: StoredEvent | None,
        actor_kind: str,
        actor_id: str | None,
        action: str,
        object_type: str | None,
        object_id: str | None,
        clean: Mapping[str, DetailValue],
    ) -> AuditEvent:
        seq, prev_mac = (1, GENESIS_MAC) if current is None else (current.seq + 1, current.mac)
        # Taken under the lock, so timestamps follow seq order (as far as the clock does).
        at = utcnow()
        event = AuditEvent(
            seq=seq,
            at=at,
            actor_kind=actor_kind,
            actor_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=dict(clean),
            prev_mac=prev_mac,
        )
        event.mac = chain_mac(
            self._key,
            seq=seq,
            at=at,
            actor_kind=actor_kind,
            actor_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=dict(clean),
            prev_mac=prev_mac,
        )
        session.add(event)
        # Sessions here do not autoflush: without this, a second append in the same transaction would read
        # the same head and reuse the seq.
        session.flush()
        return event
