"""Writing and verifying the hash-chained audit log.

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

import json
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from service.config import Secrets

from service.audit import repository
from service.audit.checkpoint import Checkpoint, newest
from service.audit.models import AuditEvent
from service.audit.repository import StoredEvent
from service.crypto import constant_time_equal, keyed_hash
from service.db import utcnow

GENESIS_MAC = "0" * 64
ACTOR_KINDS = frozenset({"staff", "reporter", "system", "operator"})
# The audit key is one of the service's 32-byte secrets; anything shorter is a configuration mistake.
MIN_KEY_BYTES = 32
MAC_PURPOSE = "audit-chain"
KEY_ID_PURPOSE = "audit-key-id"
# The first row under a new audit key (see the module's docstring).
SEGMENT_ACTION = "audit.segment_begun"
# Versioned so that a future change of the encoding can be told apart from tampering.
_ENCODING_VERSION = b"v1"
DEFAULT_BATCH_SIZE = 1000

# Mirror the column widths: PostgreSQL refuses longer values but SQLite stores them, and the two databases
# must behave the same.
_FIELD_LIMITS = {"actor_id": 36, "action": 64, "object_type": 32, "object_id": 64}
# Details are identifiers, codes and counts. The caps are far above what those need and far below what a
# description or a name would, so content pasted into an audit call by mistake is refused, not kept forever.
MAX_DETAIL_ITEMS = 32
MAX_DETAIL_NAME_CHARS = 64
MAX_DETAIL_TEXT_CHARS = 128

DetailValue = str | int | bool | None


class Problem(StrEnum):
    """Why ``verify`` stopped; ``first_bad_seq`` names the row."""

    missing_row = "missing_row"  # a seq is absent: a row was deleted (or renumbered away)
    broken_link = "broken_link"  # prev_mac is not the previous row's mac: rows removed, moved or swapped
    bad_mac = "bad_mac"  # the row is not what was written under this key: altered or forged
    unreadable_row = "unreadable_row"  # a stored value has a type its column cannot hold (SQLite only)
    truncated = "truncated"  # the chain ends before the checkpoint: the tail was cut
    checkpoint_mismatch = "checkpoint_mismatch"  # the checkpoint's row differs: history was rewritten
    forged_checkpoint = "forged_checkpoint"  # a signed checkpoint's tag is wrong: the service did not make it
    missing_key = "missing_key"  # a segment was written under an audit key that is not configured


PROBLEM_TEXT = {
    Problem.missing_row: "a row is missing (deleted or renumbered)",
    Problem.broken_link: "the row does not link to the previous one (rows removed, moved or swapped)",
    Problem.bad_mac: "the row's MAC does not match (altered or forged row, or a different audit key)",
    Problem.unreadable_row: "the row holds a value its column cannot hold (written past the service)",
    Problem.truncated: "the chain ends before the checkpoint (its tail was cut)",
    Problem.checkpoint_mismatch: "the checkpoint's row has a different MAC (history rewritten)",
    Problem.forged_checkpoint: "a checkpoint's signature does not match the audit key (not made here)",
    Problem.missing_key: (
        "the chain continues under an audit key that is not configured: set every earlier audit key in "
        "RUECKHALT_AUDIT_KEY_PREVIOUS (docs/runbooks.md)"
    ),
}


class AuditKeyMismatch(RuntimeError):
    """This process's audit key was retired by a rotation: it must not append behind the new segment."""


def key_id(key: bytes) -> str:
    """A public name of an audit key (16 hex digits of an HMAC of a constant): which key wrote a segment."""
    _check_key(key)
    return keyed_hash(key, KEY_ID_PURPOSE, b"").hex()[:16]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    # Rows found intact, in order from seq 1 (up to the first bad one).
    checked: int
    first_bad_seq: int | None
    # Empty when ok, otherwise a ``Problem`` value.
    problem: str
    # Head of the intact chain, to keep as the next checkpoint; None when the chain is broken or empty, so
    # a broken chain is never offered as something to trust.
    head: Checkpoint | None = None
    # The checkpoint the result speaks of: the one the chain failed against (cut tail, rewritten row), or
    # when ok the newest one it was checked against. Not compared: it explains, the fields above decide.
    checkpoint: Checkpoint | None = field(default=None, compare=False)
    # Signed checkpoints whose tag is wrong: refused, never used to judge the chain.
    refused: tuple[Checkpoint, ...] = field(default=(), compare=False)

    @property
    def explanation(self) -> str:
        return "" if self.ok else PROBLEM_TEXT[Problem(self.problem)]

    @property
    def finding(self) -> str:
        """One sentence for the operator that names what the checkpoint shows; "" if it shows nothing."""
        cp = self.checkpoint
        if self.problem == Problem.truncated and cp is not None:
            end = self.checked
            removed = f"event {cp.seq} was" if end + 1 == cp.seq else f"events {end + 1}..{cp.seq} were"
            ends = f"ends at seq {end}" if end else "is empty"
            return (
                f"CUT TAIL: the audit chain {ends}, but checkpoint {cp.short}{_dated(cp)} says it reached "
                f"seq {cp.seq}: {removed} removed."
            )
        if self.problem == Problem.checkpoint_mismatch and cp is not None:
            return (
                f"REWRITTEN: the row at seq {cp.seq} is not the one checkpoint {cp.short}{_dated(cp)} was "
                f"taken from: events up to seq {cp.seq} were removed and replaced, or rewritten."
            )
        return ""

    @property
    def refusals(self) -> list[str]:
        return [
            f"FORGED CHECKPOINT refused: {cp.short}{_dated(cp)} does not carry this service's signature "
            "(made by someone else, or the audit key changed); it says nothing about the chain and was not "
            "used."
            for cp in self.refused
        ]


def _dated(checkpoint: Checkpoint) -> str:
    return f" from {checkpoint.when}" if checkpoint.at is not None else ""


def _check_key(key: bytes) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the audit key must be at least {MIN_KEY_BYTES} bytes")


def _field(value: str | None) -> bytes:
    """Presence flag and length prefix: None differs from "", and no two field splits encode alike."""
    if value is None:
        return b"\x00"
    if not isinstance(value, str):
        # Only a row written past the service can get here (SQLite keeps any type in any column).
        raise TypeError("audit field is not text")
    data = value.encode("utf-8")
    return b"\x01" + struct.pack(">I", len(data)) + data


def _timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        # astimezone() would read a naive value as local time and silently change the MAC input.
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_bytes(
    *,
    seq: int,
    at: datetime,
    actor_kind: str,
    actor_id: str | None,
    action: str,
    object_type: str | None,
    object_id: str | None,
    details: object,
    prev_mac: str,
) -> bytes:
    """The exact bytes a row's MAC covers, in a fixed field order."""
    # Sorted keys and fixed separators give one JSON text per mapping; ASCII escapes keep it independent of
    # how either database stores non-ASCII text.
    details_json = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    fields = (
        str(seq),
        _timestamp(at),
        actor_kind,
        actor_id,
        action,
        object_type,
        object_id,
        details_json,
        prev_mac,
    )
    return _ENCODING_VERSION + b"".join(_field(value) for value in fields)


def chain_mac(
    key: bytes,
    *,
    seq: int,
    at: datetime,
    actor_kind: str,
    actor_id: str | None,
    action: str,
    object_type: str | None,
    object_id: str | None,
    details: object,
    prev_mac: str,
) -> str:
    """Hex HMAC of one row under the audit key."""
    message = canonical_bytes(
        seq=seq,
        at=at,
        actor_kind=actor_kind,
        actor_id=actor_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
        prev_mac=prev_mac,
    )
    return keyed_hash(key, MAC_PURPOSE, message).hex()


def _event_mac(key: bytes, event: StoredEvent) -> str:
    return chain_mac(
        key,
        seq=event.seq,
        at=event.at,
        actor_kind=event.actor_kind,
        actor_id=event.actor_id,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        details=event.details,
        prev_mac=event.prev_mac,
    )


def _authentic(key: bytes, event: StoredEvent) -> bool:
    try:
        return _same(event.mac, _event_mac(key, event))
    except (TypeError, ValueError):
        return False


def _same(stored: object, expected: str) -> bool:
    return isinstance(stored, str) and constant_time_equal(stored.encode("utf-8"), expected.encode("utf-8"))


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
        _check_key(key)
        for old in previous:
            _check_key(old)
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
        return any(_authentic(key, event) for key in (self._key, *self._previous))

    def _segment_start(self, session: Session, head: StoredEvent | None) -> dict[str, DetailValue] | None:
        """Details of the ``audit.segment_begun`` row to write first, if the head is under a previous key.

        None when the chain is empty or its head is under this key, and also when the head is under no key
        known here: a row written past the service, which ``verify`` names; appending goes on, so that such
        a row cannot silence the audit log (or the daily checkpoint mail that would expose it). Raises
        ``AuditKeyMismatch`` when this process's key was retired by a rotation (a segment-begun row names it):
        a process still running with the old key must not continue the old segment behind the new one.
        """
        if head is None or _authentic(self._key, head):
            return None
        for old in self._previous:
            if _authentic(old, head):
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


@dataclass(frozen=True)
class _Unreadable:
    seq: int


def _stream(session: Session, batch_size: int) -> Iterator[StoredEvent | _Unreadable]:
    """All rows in seq order, ``batch_size`` at a time; a row that cannot be read ends the stream."""
    after = 0
    size = batch_size
    while True:
        try:
            batch = repository.events_after(session, after, size)
        except (ValueError, TypeError):
            # SQLite keeps any value in any column, so a row written past the service can hold text its
            # column type cannot parse. Re-read one row at a time to name the row instead of crashing;
            # verify stops at that row, which lies within this batch, so the small reads do not last.
            if size > 1:
                size = 1
                continue
            seq = repository.next_seq_after(session, after)
            yield _Unreadable(after + 1 if seq is None else seq)
            return
        if not batch:
            return
        yield from batch
        after = batch[-1].seq


def _broken(checked: int, seq: int, problem: Problem, checkpoint: Checkpoint | None = None) -> VerifyResult:
    return VerifyResult(
        ok=False, checked=checked, first_bad_seq=seq, problem=problem.value, checkpoint=checkpoint
    )


def verify(
    session: Session,
    key: bytes,
    *,
    previous: Sequence[bytes] = (),
    checkpoint: Checkpoint | None = None,
    checkpoints: Sequence[Checkpoint] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> VerifyResult:
    """Check the whole chain from seq 1, and that it still contains every checkpoint given.

    Always from seq 1, also with checkpoints: a checkpoint adds the tail-truncation check, it does not
    excuse the rows before it from being checked again. Stops at the first bad row. A cut tail is reported
    against the newest checkpoint (the one that claims the longest chain). A signed checkpoint whose tag does
    not verify under ``key`` is refused (``forged_checkpoint``) and not used; the chain is still checked
    against the others, so a forged mail cannot hide what a genuine one shows.

    ``previous``: the audit keys before ``key`` (rotations). Each segment of the chain is checked with the key
    it names (see the module's docstring); a mailed checkpoint may carry the tag of any of them, as it was
    signed under the key of its day.
    """
    keys = {key_id(k): k for k in (key, *previous)}
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    given = [*([checkpoint] if checkpoint is not None else []), *checkpoints]
    refused = tuple(c for c in given if c.is_signed and not any(c.authentic(k) for k in keys.values()))
    trusted = [c for c in given if c not in refused]
    result = _walk(session, keys, trusted, batch_size)
    if not refused:
        return result
    if result.ok:
        return VerifyResult(
            ok=False,
            checked=result.checked,
            first_bad_seq=None,
            problem=Problem.forged_checkpoint.value,
            checkpoint=result.checkpoint,
            refused=refused,
        )
    return VerifyResult(
        ok=False,
        checked=result.checked,
        first_bad_seq=result.first_bad_seq,
        problem=result.problem,
        checkpoint=result.checkpoint,
        refused=refused,
    )


def _first_key(keys: Mapping[str, bytes], event: StoredEvent) -> bytes | None:
    """The key of the first segment: the one its first row verifies under (the current key when none)."""
    for key in keys.values():
        if _authentic(key, event):
            return key
    return None


def _next_segment(
    keys: Mapping[str, bytes], used: set[str], current: bytes, event: StoredEvent
) -> bytes | Problem:
    """The key of a new segment beginning at ``event``, or why the row is not a genuine segment start."""
    details = event.details if isinstance(event.details, dict) else {}
    new_id = details.get("key")
    if event.action != SEGMENT_ACTION or event.object_id != key_id(current) or not isinstance(new_id, str):
        return Problem.bad_mac
    if new_id in used:
        # A key never comes back once its segment ended: rows appended under a leaked old key are forged.
        return Problem.bad_mac
    new_key = keys.get(new_id)
    if new_key is None:
        return Problem.missing_key
    return new_key if _authentic(new_key, event) else Problem.bad_mac


def _walk(
    session: Session, keys: Mapping[str, bytes], checkpoints: Sequence[Checkpoint], batch_size: int
) -> VerifyResult:
    at_seq: dict[int, list[Checkpoint]] = {}
    for given in checkpoints:
        at_seq.setdefault(given.seq, []).append(given)
    expected_seq = 1
    prev_mac = GENESIS_MAC
    checked = 0
    segment_key: bytes | None = None
    used: set[str] = set()
    for item in _stream(session, batch_size):
        if isinstance(item, _Unreadable):
            return _broken(checked, item.seq, Problem.unreadable_row)
        if item.seq != expected_seq:
            # Rows arrive in seq order, so any other number means the expected one is not there.
            return _broken(checked, expected_seq, Problem.missing_row)
        if not _same(item.prev_mac, prev_mac):
            return _broken(checked, item.seq, Problem.broken_link)
        try:
            # Any key will do: this only finds a row whose values cannot be encoded (SQLite keeps any type).
            _event_mac(next(iter(keys.values())), item)
        except (TypeError, ValueError):
            return _broken(checked, item.seq, Problem.unreadable_row)
        if segment_key is None:
            segment_key = _first_key(keys, item)
            if segment_key is None:
                return _broken(checked, item.seq, Problem.bad_mac)
            used.add(key_id(segment_key))
        elif not _authentic(segment_key, item):
            found = _next_segment(keys, used, segment_key, item)
            if isinstance(found, Problem):
                return _broken(checked, item.seq, found)
            segment_key = found
            used.add(key_id(segment_key))
        for pinned in at_seq.get(item.seq, ()):
            if not _same(item.mac, pinned.mac):
                return _broken(checked, item.seq, Problem.checkpoint_mismatch, pinned)
        checked += 1
        prev_mac = item.mac
        expected_seq += 1
    last_seq = expected_seq - 1
    latest = newest(list(checkpoints))
    if latest is not None and latest.seq > last_seq:
        return _broken(checked, last_seq + 1, Problem.truncated, latest)
    head = Checkpoint(seq=last_seq, mac=prev_mac) if last_seq else None
    return VerifyResult(
        ok=True, checked=checked, first_bad_seq=None, problem="", head=head, checkpoint=latest
    )
