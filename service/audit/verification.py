"""``verify``: walk the chain from seq 1, segment by segment, against the checkpoints kept outside.

Why checkpoints and segments: the docstring of ``service/audit/service.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.orm import Session

from service.audit import repository
from service.audit.chain import GENESIS_MAC, SEGMENT_ACTION, authentic, event_mac, key_id, same
from service.audit.checkpoint import Checkpoint, newest
from service.audit.repository import StoredEvent

DEFAULT_BATCH_SIZE = 1000


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
    # The newest rows are under a retired key: nothing was written since the rotation, or someone holding
    # the old key cut the rows after it (the new segment). The chain alone cannot tell which; a checkpoint
    # mailed after the rotation can. Not compared: it warns, ``ok`` decides.
    tail_under_retired_key: bool = field(default=False, compare=False)

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
        if authentic(key, event):
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
    return new_key if authentic(new_key, event) else Problem.bad_mac


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
        if not same(item.prev_mac, prev_mac):
            return _broken(checked, item.seq, Problem.broken_link)
        try:
            # Any key will do: this only finds a row whose values cannot be encoded (SQLite keeps any type).
            event_mac(next(iter(keys.values())), item)
        except (TypeError, ValueError):
            return _broken(checked, item.seq, Problem.unreadable_row)
        if segment_key is None:
            segment_key = _first_key(keys, item)
            if segment_key is None:
                return _broken(checked, item.seq, Problem.bad_mac)
            used.add(key_id(segment_key))
        elif not authentic(segment_key, item):
            found = _next_segment(keys, used, segment_key, item)
            if isinstance(found, Problem):
                return _broken(checked, item.seq, found)
            segment_key = found
            used.add(key_id(segment_key))
        for pinned in at_seq.get(item.seq, ()):
            if not same(item.mac, pinned.mac):
                return _broken(checked, item.seq, Problem.checkpoint_mismatch, pinned)
        checked += 1
        prev_mac = item.mac
        expected_seq += 1
    last_seq = expected_seq - 1
    latest = newest(list(checkpoints))
    if latest is not None and latest.seq > last_seq:
        return _broken(checked, last_seq + 1, Problem.truncated, latest)
    head = Checkpoint(seq=last_seq, mac=prev_mac) if last_seq else None
    current = next(iter(keys.values()))
    retired_tail = segment_key is not None and key_id(segment_key) != key_id(current)
    return VerifyResult(
        ok=True,
        checked=checked,
        first_bad_seq=None,
        problem="",
        head=head,
        checkpoint=latest,
        tail_under_retired_key=retired_tail,
    )
