"""Organisation public keys for the intake, parsed once per process and found by their digest.

Every intake wraps the case key to about three organisations. Reading their keys (1,216 bytes each) and
parsing them on every report cost a query and three parses; the receivers query already returns a SHA-256
of each key, so the parsed key is looked up by that digest and read from the database only the first time
a process meets it. The digest comes from the same row as the active flag, so a disabled organisation is
never wrapped to, and a changed key is a new digest, never a stale entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from sqlalchemy.orm import Session

from service.crypto import PublicKey
from service.identity import repository
from service.identity.repository import Receiver

# Far more than there are organisations; a bound all the same, so a churn of keys cannot grow the cache.
_MAX_KEYS = 4096


class PublicKeys:
    def __init__(self) -> None:
        self._by_digest: dict[bytes, PublicKey] = {}

    def of(self, session: Session, receivers: Collection[Receiver]) -> dict[str, PublicKey]:
        """The public key of each receiver, by organisation id; a receiver whose key changed since its
        digest was read is left out (the intake treats it as unreachable, like one disabled meanwhile)."""
        found = {r.id: self._by_digest.get(r.key_digest) for r in receivers}
        missing = {r.id: r.key_digest for r in receivers if found[r.id] is None}
        if missing:
            if len(self._by_digest) + len(missing) > _MAX_KEYS:
                self._by_digest.clear()
            for org_id, raw in repository.public_keys(session, list(missing)).items():
                digest = hashlib.sha256(raw).digest()
                key = PublicKey.from_bytes(raw)
                self._by_digest[digest] = key
                # Taken from what was just read, not from the cache another thread may be clearing.
                if digest == missing[org_id]:
                    found[org_id] = key
        return {org_id: key for org_id, key in found.items() if key is not None}
