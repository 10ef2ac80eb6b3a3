"""The MAC of one audit row and the exact bytes it covers (the service module's docstring says why).

Each row's ``mac`` is HMAC(audit key, canonical encoding of the row including ``prev_mac``); ``prev_mac`` is
the previous row's ``mac`` (``GENESIS_MAC`` for seq 1). Appending (``service``) and checking
(``verification``) both take the encoding from here, so they cannot drift apart.
"""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime

from service.audit.repository import StoredEvent
from service.crypto import constant_time_equal, keyed_hash

GENESIS_MAC = "0" * 64
# The audit key is one of the service's 32-byte secrets; anything shorter is a configuration mistake.
MIN_KEY_BYTES = 32
MAC_PURPOSE = "audit-chain"
KEY_ID_PURPOSE = "audit-key-id"
# The first row under a new audit key (see the service module's docstring).
SEGMENT_ACTION = "audit.segment_begun"
# Versioned so that a future change of the encoding can be told apart from tampering.
_ENCODING_VERSION = b"v1"


def key_id(key: bytes) -> str:
    """A public name of an audit key (16 hex digits of an HMAC of a constant): which key wrote a segment."""
    check_key(key)
    return keyed_hash(key, KEY_ID_PURPOSE, b"").hex()[:16]


def check_key(key: bytes) -> None:
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


def event_mac(key: bytes, event: StoredEvent) -> str:
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


def authentic(key: bytes, event: StoredEvent) -> bool:
    try:
        return same(event.mac, event_mac(key, event))
    except (TypeError, ValueError):
        return False


def same(stored: object, expected: str) -> bool:
    return isinstance(stored, str) and constant_time_equal(stored.encode("utf-8"), expected.encode("utf-8"))
