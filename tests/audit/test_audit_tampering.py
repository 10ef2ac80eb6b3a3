"""Someone with write access to the database but without the audit key changes the chain; verify names the
first row where it breaks. Every change is raw SQL on its own connection, past the service."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, BigInteger, String, bindparam, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeEngine

from service.audit import AuditLog, Checkpoint, Problem, VerifyResult, verify
from service.audit.chain import chain_mac
from service.audit.models import AuditEvent
from service.db import UTCDateTime

Fill = Callable[[int], list[AuditEvent]]
Tamper = Callable[..., None]

_TYPES: dict[str, TypeEngine[Any]] = {
    "seq": BigInteger(),
    "at": UTCDateTime(),
    "details": JSON(),
}


def _set(tamper: Tamper, seq: int, column: str, value: object) -> None:
    # The column name comes from this file's own parameter list, never from input.
    statement = text(f"UPDATE audit_event SET {column} = :value WHERE seq = :seq").bindparams(
        bindparam("value", type_=_TYPES.get(column, String()))
    )
    tamper(statement, value=value, seq=seq)


def _verify(sessions: sessionmaker[Session], key: bytes, **kwargs: Any) -> VerifyResult:
    with sessions() as session:
        return verify(session, key, **kwargs)


def _broken(seq: int, problem: Problem, checked: int) -> VerifyResult:
    return VerifyResult(ok=False, checked=checked, first_bad_seq=seq, problem=problem.value)


@pytest.mark.parametrize(
    ("column", "new_value", "problem", "bad_seq"),
    [
        ("at", lambda event: event.at + timedelta(microseconds=1), Problem.bad_mac, 3),
        ("actor_kind", lambda event: "operator", Problem.bad_mac, 3),
        ("actor_id", lambda event: None, Problem.bad_mac, 3),
        ("action", lambda event: "case.view", Problem.bad_mac, 3),
        ("object_type", lambda event: None, Problem.bad_mac, 3),
        ("object_id", lambda event: "case-99", Problem.bad_mac, 3),
        ("details", lambda event: {**event.details, "count": 99}, Problem.bad_mac, 3),
        ("details", lambda event: {}, Problem.bad_mac, 3),
        ("prev_mac", lambda event: "0" * 64, Problem.broken_link, 3),
        ("mac", lambda event: secrets.token_hex(32), Problem.bad_mac, 3),
        ("seq", lambda event: 1000, Problem.missing_row, 3),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_altering_any_column_of_a_middle_row_is_detected_at_that_row(
    sessions: sessionmaker[Session],
    key: bytes,
    fill: Fill,
    tamper: Tamper,
    column: str,
    new_value: Callable[[AuditEvent], object],
    problem: Problem,
    bad_seq: int,
) -> None:
    """Given five events, when one column of row 3 is changed by raw SQL, then verify fails at seq 3 with
    two rows intact before it."""
    events = fill(5)
    _set(tamper, 3, column, new_value(events[2]))
    assert _verify(sessions, key) == _broken(bad_seq, problem, checked=2)


def test_deleting_a_middle_row_is_detected_as_a_missing_seq(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    fill(5)
    tamper("DELETE FROM audit_event WHERE seq = 3")
    assert _verify(sessions, key) == _broken(3, Problem.missing_row, checked=2)


def test_deleting_the_first_row_is_detected(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    fill(3)
    tamper("DELETE FROM audit_event WHERE seq = 1")
    assert _verify(sessions, key) == _broken(1, Problem.missing_row, checked=0)


def test_deleting_a_row_and_renumbering_the_rest_breaks_the_link(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    """Given a deleted row 3 and rows 4-5 moved down to close the gap, then row 3 (formerly 4) does not
    link to row 2."""
    fill(5)
    tamper("DELETE FROM audit_event WHERE seq = 3")
    # Two steps: PostgreSQL checks the primary key row by row, so an in-place shift could collide.
    tamper("UPDATE audit_event SET seq = seq + 1000 WHERE seq > 3")
    tamper("UPDATE audit_event SET seq = seq - 1001 WHERE seq > 1000")
    assert _verify(sessions, key) == _broken(3, Problem.broken_link, checked=2)


def test_swapping_the_seq_of_two_rows_is_detected(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    """Given rows 2 and 3 swapped by their seq (and so their place in the chain), then row 2 breaks."""
    fill(5)
    tamper("UPDATE audit_event SET seq = -2 WHERE seq = 2")
    tamper("UPDATE audit_event SET seq = 2 WHERE seq = 3")
    tamper("UPDATE audit_event SET seq = 3 WHERE seq = -2")
    assert _verify(sessions, key) == _broken(2, Problem.broken_link, checked=1)


_CONTENT = (
    "at",
    "actor_kind",
    "actor_id",
    "action",
    "object_type",
    "object_id",
    "details",
    "prev_mac",
    "mac",
)


def _swap_content(tamper: Tamper, events: list[AuditEvent], a: int, b: int, *, relink: bool) -> None:
    first, second = events[a - 1], events[b - 1]
    for column in _CONTENT:
        _set(tamper, a, column, getattr(second, column))
        _set(tamper, b, column, getattr(first, column))
    if relink:
        # Make the links look right; only the MACs, which need the key, still give the swap away.
        _set(tamper, a, "prev_mac", events[a - 2].mac)
        _set(tamper, b, "prev_mac", second.mac)


def test_swapping_two_rows_content_is_detected(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    events = fill(5)
    _swap_content(tamper, events, 2, 3, relink=False)
    assert _verify(sessions, key) == _broken(2, Problem.broken_link, checked=1)


def test_swapping_two_rows_content_with_fixed_up_links_is_detected_by_the_mac(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    events = fill(5)
    _swap_content(tamper, events, 2, 3, relink=True)
    assert _verify(sessions, key) == _broken(2, Problem.bad_mac, checked=1)


def _forge(tamper: Tamper, *, seq: int, prev_mac: str, forger_key: bytes, template: AuditEvent) -> None:
    """Insert a row that looks right in every column: a correct link, a MAC in the right format."""
    fields: dict[str, Any] = {
        "seq": seq,
        "at": template.at,
        "actor_kind": "staff",
        "actor_id": template.actor_id,
        "action": "case.assign",
        "object_type": "case",
        "object_id": "case-forged",
        "details": {"count": 1},
        "prev_mac": prev_mac,
    }
    statement = text(
        "INSERT INTO audit_event (seq, at, actor_kind, actor_id, action, object_type, object_id, details,"
        " prev_mac, mac) VALUES (:seq, :at, :actor_kind, :actor_id, :action, :object_type, :object_id,"
        " :details, :prev_mac, :mac)"
    ).bindparams(bindparam("at", type_=UTCDateTime()), bindparam("details", type_=JSON()))
    tamper(statement, **fields, mac=chain_mac(forger_key, **fields))


def test_a_forged_row_appended_at_the_tail_is_detected(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    """Given a forged row 6 that links to row 5 and carries a MAC made with another key, then it fails."""
    events = fill(5)
    _forge(tamper, seq=6, prev_mac=events[4].mac, forger_key=secrets.token_bytes(32), template=events[4])
    assert _verify(sessions, key) == _broken(6, Problem.bad_mac, checked=5)


def test_a_forged_row_inserted_in_the_middle_is_detected(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    events = fill(5)
    tamper("UPDATE audit_event SET seq = seq + 1000 WHERE seq >= 3")
    tamper("UPDATE audit_event SET seq = seq - 999 WHERE seq > 1000")
    _forge(tamper, seq=3, prev_mac=events[1].mac, forger_key=secrets.token_bytes(32), template=events[1])
    assert _verify(sessions, key) == _broken(3, Problem.bad_mac, checked=2)


def test_a_different_key_fails_at_the_first_row(sessions: sessionmaker[Session], fill: Fill) -> None:
    fill(3)
    assert _verify(sessions, secrets.token_bytes(32)) == _broken(1, Problem.bad_mac, checked=0)


def test_a_cut_tail_passes_alone_and_is_caught_by_the_checkpoint(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    """Given a checkpoint taken at seq 5, when the last row is deleted, then the shorter chain is valid on
    its own (the documented limit of a chain), and verify against the checkpoint reports seq 5 truncated."""
    fill(5)
    checkpoint = _verify(sessions, key).head
    assert checkpoint is not None
    tamper("DELETE FROM audit_event WHERE seq = 5")

    alone = _verify(sessions, key)
    assert alone.ok
    assert alone.checked == 4
    assert _verify(sessions, key, checkpoint=checkpoint) == _broken(5, Problem.truncated, checked=4)


def test_a_deeper_cut_names_the_first_missing_row(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    events = fill(5)
    tamper("DELETE FROM audit_event WHERE seq >= 4")
    assert _verify(sessions, key, checkpoint=Checkpoint(5, events[4].mac)) == _broken(
        4, Problem.truncated, checked=3
    )


def test_a_cut_of_every_row_is_caught_by_the_checkpoint(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    events = fill(2)
    tamper("DELETE FROM audit_event")
    assert _verify(sessions, key, checkpoint=Checkpoint(2, events[1].mac)) == _broken(
        1, Problem.truncated, checked=0
    )


def test_a_cut_tail_refilled_by_new_appends_is_caught_by_the_checkpoints_mac(
    sessions: sessionmaker[Session], key: bytes, log: AuditLog, fill: Fill, tamper: Tamper
) -> None:
    """Given a checkpoint at seq 5, when row 5 is deleted and the service then appends new events (so the
    chain is long again and valid), then the row at seq 5 no longer carries the checkpoint's MAC."""
    fill(5)
    checkpoint = _verify(sessions, key).head
    assert checkpoint is not None
    tamper("DELETE FROM audit_event WHERE seq = 5")
    fill(2)

    assert _verify(sessions, key).ok
    assert _verify(sessions, key, checkpoint=checkpoint) == _broken(5, Problem.checkpoint_mismatch, checked=4)


def test_an_earlier_checkpoint_still_holds_after_more_appends(
    sessions: sessionmaker[Session], key: bytes, fill: Fill
) -> None:
    fill(3)
    checkpoint = _verify(sessions, key).head
    fill(4)
    result = _verify(sessions, key, checkpoint=checkpoint)
    assert result.ok
    assert result.checked == 7
    assert result.head is not None
    assert result.head.seq == 7


def test_a_checkpoint_with_a_wrong_mac_is_refused(
    sessions: sessionmaker[Session], key: bytes, fill: Fill
) -> None:
    fill(3)
    wrong = Checkpoint(2, secrets.token_hex(32))
    assert _verify(sessions, key, checkpoint=wrong) == _broken(2, Problem.checkpoint_mismatch, checked=1)


def test_tampering_across_a_batch_boundary_is_detected(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, tamper: Tamper
) -> None:
    """Given batches of three, when the first row of the second batch is deleted, then the link across
    batches is still checked."""
    fill(7)
    tamper("DELETE FROM audit_event WHERE seq = 4")
    assert _verify(sessions, key, batch_size=3) == _broken(4, Problem.missing_row, checked=3)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("statement", "batch_size", "problem"),
    [
        ("UPDATE audit_event SET at = 'not a time' WHERE seq = 3", 1000, Problem.unreadable_row),
        # The unreadable row sits in the second batch of two: the narrowing re-read still names it.
        ("UPDATE audit_event SET at = 'not a time' WHERE seq = 3", 2, Problem.unreadable_row),
        ("UPDATE audit_event SET details = '{not json' WHERE seq = 3", 1000, Problem.unreadable_row),
        ("UPDATE audit_event SET action = x'00ff' WHERE seq = 3", 1000, Problem.unreadable_row),
        ("UPDATE audit_event SET details = '{\"count\": NaN}' WHERE seq = 3", 1000, Problem.bad_mac),
        # TEXT affinity turns the number into the text '12345': simply a wrong MAC.
        ("UPDATE audit_event SET mac = 12345 WHERE seq = 3", 1000, Problem.bad_mac),
        ("UPDATE audit_event SET prev_mac = x'00' WHERE seq = 3", 1000, Problem.broken_link),
    ],
)
def test_a_value_its_column_cannot_hold_is_reported_not_crashed_on(
    sessions: sessionmaker[Session],
    key: bytes,
    fill: Fill,
    tamper: Tamper,
    statement: str,
    batch_size: int,
    problem: Problem,
) -> None:
    """SQLite stores any value in any column. Given row 3 holding one its column type cannot hold, then
    verify names row 3 instead of stopping with a traceback."""
    fill(5)
    tamper(statement)
    assert _verify(sessions, key, batch_size=batch_size) == _broken(3, problem, checked=2)
