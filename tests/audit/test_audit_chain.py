"""Appending to the audit chain and verifying it, on SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.audit import AuditLog, Checkpoint, VerifyResult, verify
from service.audit import service as audit_service
from service.audit.chain import GENESIS_MAC, canonical_bytes, chain_mac
from service.audit.models import AuditEvent
from service.audit.repository import StoredEvent
from service.identity.models import Organisation

Fill = Callable[[int], list[AuditEvent]]


def _verify(sessions: sessionmaker[Session], key: bytes, **kwargs: Any) -> VerifyResult:
    with sessions() as session:
        return verify(session, key, **kwargs)


def test_round_trip_appends_a_gap_free_linked_chain_that_verifies(
    sessions: sessionmaker[Session], key: bytes, fill: Fill
) -> None:
    """Given five appended events, when the chain is read back and verified, then seq runs 1..5, each row
    links to the one before (the first to 64 zeros), and verify reports the head as the checkpoint."""
    appended = fill(5)

    with sessions() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [row.seq for row in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_mac == GENESIS_MAC
    assert all(rows[i].prev_mac == rows[i - 1].mac for i in range(1, 5))
    assert all(len(row.mac) == 64 and int(row.mac, 16) >= 0 for row in rows)
    assert [row.mac for row in rows] == [event.mac for event in appended]
    assert rows[2].details == {"field": "description", "count": 2, "urgent": True}
    assert rows[2].at.tzinfo is not None

    result = _verify(sessions, key)
    assert result == VerifyResult(
        ok=True, checked=5, first_bad_seq=None, problem="", head=Checkpoint(5, rows[4].mac)
    )


def test_values_survive_the_database_exactly(
    sessions: sessionmaker[Session], log: AuditLog, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given values that a careless encoding could change on the way through a database (a timestamp on a
    whole second, non-ASCII text, None beside "", a huge count), when they are appended and re-read, then
    the MAC still matches."""
    monkeypatch.setattr(audit_service, "utcnow", lambda: datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))
    with sessions() as session:
        log.append(
            session,
            actor_kind="operator",
            actor_id=None,
            action="policy.change",
            object_type=None,
            object_id=None,
            details={"land": "Baden-Württemberg", "empty": "", "none": None, "big": 2**62, "no": False},
        )
        session.commit()
    monkeypatch.setattr(audit_service, "utcnow", lambda: datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC))
    with sessions() as session:
        log.append(session, actor_kind="system", actor_id=None, action="retention.purge", object_id="r-1")
        session.commit()

    assert _verify(sessions, key).checked == 2
    with sessions() as session:
        second = session.scalars(select(AuditEvent).where(AuditEvent.seq == 2)).one()
    assert second.at == datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)


def test_an_empty_log_verifies_with_no_checkpoint(sessions: sessionmaker[Session], key: bytes) -> None:
    assert _verify(sessions, key) == VerifyResult(ok=True, checked=0, first_bad_seq=None, problem="")


def test_two_appends_in_one_transaction_get_consecutive_seqs(
    sessions: sessionmaker[Session], log: AuditLog, key: bytes
) -> None:
    """Given one transaction that audits two things, then they get seq 1 and 2 (the append flushes, so the
    second append sees the first as the head although the sessions do not autoflush)."""
    with sessions() as session:
        first = log.append(session, actor_kind="staff", actor_id="a", action="case.assign")
        second = log.append(session, actor_kind="staff", actor_id="a", action="case.export")
        session.commit()
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_mac == first.mac
    assert _verify(sessions, key).checked == 2


def test_the_append_rolls_back_with_the_callers_transaction(
    sessions: sessionmaker[Session], log: AuditLog, key: bytes, count_rows: Callable[[], int]
) -> None:
    """Given a committed event, when a transaction appends two more and then rolls back, then no orphan row
    is left and the next append continues at seq 2: no gap."""
    with sessions() as session:
        log.append(session, actor_kind="staff", actor_id="a", action="case.decrypt")
        session.commit()
    with sessions() as session:
        log.append(session, actor_kind="staff", actor_id="a", action="case.assign")
        log.append(session, actor_kind="staff", actor_id="a", action="case.export")
        session.rollback()
    assert count_rows() == 1

    with sessions() as session:
        after = log.append(session, actor_kind="staff", actor_id="a", action="case.assign")
        session.commit()
    assert after.seq == 2
    assert _verify(sessions, key).checked == 2


def test_an_audited_change_that_fails_takes_its_audit_row_with_it(
    sessions: sessionmaker[Session], log: AuditLog, key: bytes, count_rows: Callable[[], int]
) -> None:
    """Given an audit row appended for a change, when the change itself then fails (a duplicate slug) and
    the caller rolls back, then neither the change nor the audit row exists, and the chain stays intact."""
    with sessions() as session:
        session.add(Organisation(slug="beratung-nord", display_name="Nord", kind="counselling"))
        session.commit()

    with sessions() as session:
        log.append(session, actor_kind="operator", actor_id=None, action="org.create", object_type="org")
        session.add(Organisation(slug="beratung-nord", display_name="Doppelt", kind="counselling"))
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()

    assert count_rows() == 0
    with sessions() as session:
        assert log.append(session, actor_kind="system", actor_id=None, action="org.check").seq == 1
        session.commit()
    assert _verify(sessions, key).ok


class _Code(enum.StrEnum):
    a1 = "A1"


class _Count(enum.IntEnum):
    three = 3


def test_enum_details_are_stored_as_their_plain_values(
    sessions: sessionmaker[Session], log: AuditLog, key: bytes
) -> None:
    with sessions() as session:
        event = log.append(
            session,
            actor_kind="system",
            actor_id=None,
            action="x",
            details={"code": _Code.a1, "n": _Count.three},
        )
        session.commit()
    assert type(event.details["code"]) is str
    assert type(event.details["n"]) is int
    assert _verify(sessions, key).ok


@pytest.mark.parametrize(
    "details",
    [
        {"score": 1.5},
        {"blob": b"raw bytes"},
        {"names": ["Anna", "Ben"]},
        {"nested": {"name": "Anna"}},
        {"pair": (1, 2)},
        {"codes": {"A1"}},
        {"amount": Decimal("1.0")},
        {"when": datetime(2026, 1, 1, tzinfo=UTC)},
        {"later": timedelta(days=1)},
        {1: "number as name"},
        ["not", "a", "mapping"],
    ],
    ids=[
        "float",
        "bytes",
        "list",
        "dict",
        "tuple",
        "set",
        "decimal",
        "datetime",
        "timedelta",
        "non_str_name",
        "not_a_mapping",
    ],
)
def test_details_that_are_not_flat_scalars_are_refused(
    sessions: sessionmaker[Session], log: AuditLog, count_rows: Callable[[], int], details: Any
) -> None:
    """Given details with anything but str/int/bool/None values, then append raises TypeError and writes
    nothing: no one logs content through a nested structure by accident."""
    with sessions() as session:
        with pytest.raises(TypeError):
            log.append(session, actor_kind="staff", actor_id="a", action="case.decrypt", details=details)
        session.commit()
    assert count_rows() == 0


@pytest.mark.parametrize(
    "details",
    [
        {"description": "Der Täter hat mir vor dem Rathaus aufgelauert und gedroht " * 3},
        {f"k{i}": i for i in range(33)},
        {"": "empty name"},
        {"n" * 65: 1},
    ],
    ids=["long_text", "too_many", "empty_name", "long_name"],
)
def test_details_that_look_like_content_are_refused_without_echoing_it(
    sessions: sessionmaker[Session], log: AuditLog, details: Mapping[str, Any]
) -> None:
    with sessions() as session, pytest.raises(ValueError, match="audit detail") as refused:
        log.append(session, actor_kind="staff", actor_id="a", action="case.decrypt", details=details)
    assert "Täter" not in str(refused.value)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("actor_kind", "admin", ValueError),
        ("action", "", ValueError),
        ("action", "a" * 65, ValueError),
        ("actor_id", "x" * 37, ValueError),
        # An empty identifier is a bug upstream; "no actor" is None.
        ("actor_id", "", ValueError),
        ("object_type", "t" * 33, ValueError),
        ("object_id", "i" * 65, ValueError),
        ("object_id", 42, TypeError),
    ],
)
def test_fields_outside_their_columns_are_refused_on_both_databases(
    sessions: sessionmaker[Session],
    log: AuditLog,
    count_rows: Callable[[], int],
    field: str,
    value: object,
    error: type[Exception],
) -> None:
    """SQLite would store a value PostgreSQL refuses; the writer refuses it first, so both behave alike."""
    arguments: dict[str, Any] = {"actor_kind": "staff", "actor_id": "a", "action": "case.decrypt"}
    arguments[field] = value
    with sessions() as session:
        with pytest.raises(error):
            log.append(session, **arguments)
        session.commit()
    assert count_rows() == 0


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        AuditLog(b"k" * 31)
    assert "k" * 32 not in repr(AuditLog(b"k" * 32))


def _mac(key: bytes, **changes: Any) -> str:
    fields: dict[str, Any] = {
        "seq": 7,
        "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "actor_kind": "staff",
        "actor_id": "a",
        "action": "case.decrypt",
        "object_type": "case",
        "object_id": "c",
        "details": {"n": 1},
        "prev_mac": GENESIS_MAC,
    }
    fields.update(changes)
    return chain_mac(key, **fields)


def test_the_encoding_is_unambiguous() -> None:
    """Given fields that a naive concatenation would confuse, then their MACs differ."""
    key = bytes(range(32))
    base = _mac(key)
    assert len(base) == 64
    assert base == base.lower()
    assert _mac(key, actor_id=None) != _mac(key, actor_id="")
    assert _mac(key, object_type="ab", object_id="c") != _mac(key, object_type="a", object_id="bc")
    assert _mac(key, details={"n": 1}) != _mac(key, details={"n": "1"})
    assert _mac(key, details={"n": True}) != _mac(key, details={"n": 1})
    assert _mac(key, details={"a": 1, "b": 2}) == _mac(key, details={"b": 2, "a": 1})
    # The same instant in another zone is the same row; a naive time is refused rather than guessed.
    berlin = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    assert _mac(key, at=berlin) == base
    with pytest.raises(ValueError, match="timezone"):
        _mac(key, at=datetime(2026, 1, 2, 3, 4, 5, 6))  # noqa: DTZ001
    assert _mac(key, at=datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC)) != base
    encoded = canonical_bytes(
        seq=1,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        actor_kind="staff",
        actor_id=None,
        action="a",
        object_type=None,
        object_id=None,
        details={},
        prev_mac=GENESIS_MAC,
    )
    assert b"2026-01-01T00:00:00.000000+00:00" in encoded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5:" + "ab" * 32, Checkpoint(5, "ab" * 32)),
        (" 12:" + "AB" * 32 + "\n", Checkpoint(12, "ab" * 32)),
    ],
)
def test_a_checkpoint_reads_what_verify_prints(text: str, expected: Checkpoint) -> None:
    assert Checkpoint.parse(text) == expected
    assert Checkpoint.parse(str(expected)) == expected


@pytest.mark.parametrize(
    "text",
    ["", "5", "5:", ":" + "a" * 64, "0:" + "a" * 64, "-1:" + "a" * 64, "5:" + "a" * 63, "5:" + "g" * 64],
)
def test_a_malformed_checkpoint_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="SEQ:MAC"):
        Checkpoint.parse(text)


def test_verify_streams_in_batches(
    sessions: sessionmaker[Session], key: bytes, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given ten rows and a batch size of four, then verify reads 4 + 4 + 2 rows by keyset and never
    asks for more than a batch at once (a million rows must not load at once)."""
    fill(10)
    from service.audit import repository

    calls: list[tuple[int, int, int]] = []
    real = repository.events_after

    def spy(session: Session, after_seq: int, limit: int) -> list[StoredEvent]:
        rows = real(session, after_seq, limit)
        calls.append((after_seq, limit, len(rows)))
        return rows

    monkeypatch.setattr(repository, "events_after", spy)
    result = _verify(sessions, key, batch_size=4)
    assert result.ok
    assert result.checked == 10
    assert calls == [(0, 4, 4), (4, 4, 4), (8, 4, 2), (10, 4, 0)]
    with pytest.raises(ValueError, match="batch_size"):
        _verify(sessions, key, batch_size=0)


def test_a_tail_under_a_retired_key_is_told_whether_idle_or_cut(
    sessions: sessionmaker[Session], key: bytes
) -> None:
    """After a rotation the first append begins a new segment under the new key. Until then, and again if
    someone holding the old key deletes that segment, the newest rows are under the retired key: the chain
    is intact either way, and verify says so and warns (a checkpoint mailed after the rotation tells which).
    """
    new_key = bytes(range(64, 96))

    def append(log: AuditLog, action: str) -> None:
        with sessions() as session:
            log.append(session, actor_kind="system", actor_id=None, action=action)
            session.commit()

    append(AuditLog(key), "before.rotation")
    idle = _verify(sessions, new_key, previous=(key,))
    assert idle.ok
    assert idle.tail_under_retired_key, "nothing under the new key yet"
    append(AuditLog(new_key, previous=(key,)), "after.rotation")
    rotated = _verify(sessions, new_key, previous=(key,))
    assert rotated.ok
    assert not rotated.tail_under_retired_key
    with sessions() as session:
        # The holder of the old key cuts the new segment (segment_begun and what followed).
        for row in session.scalars(select(AuditEvent).where(AuditEvent.seq > 1)):
            session.delete(row)
        session.commit()
    cut = _verify(sessions, new_key, previous=(key,))
    assert cut.ok
    assert cut.tail_under_retired_key, "the cut is not silent"
    assert not _verify(sessions, key).tail_under_retired_key, "under its own key the old chain is current"
