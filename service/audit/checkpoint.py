"""Checkpoints of the audit chain: the text an operator keeps, or a mail carries, to catch a cut tail later.

Two forms, both accepted by ``rueckhalt audit verify --since-checkpoint``:

- ``SEQ:MAC`` — printed by ``audit verify`` itself. The MAC is the chain MAC of row ``SEQ``. While that row
  exists, ``verify`` compares the two, so the checkpoint needs no further proof. Once the row is gone (the
  tail was cut) nothing in the database can show that the checkpoint is genuine: a made-up ``SEQ:MAC`` with
  a large SEQ raises the same alarm as a real one.
- ``SEQ:MAC:TIME:TAG`` — sent every day by the beat (``audit.checkpoint``). ``TIME`` is when the row was
  written (UTC, to the second, ``20261203T040000Z``) and ``TAG`` is an HMAC under the audit key over SEQ, MAC
  and TIME (its own purpose label, 128 bits). ``verify`` checks the tag first, so a cut tail is named from a
  checkpoint the service provably made, with its date, and a forged one (another MAC, SEQ or TIME) is
  refused as forged instead of being believed.

Nothing in either form comes from a case: a sequence number, two MACs and a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from service.crypto import constant_time_equal, keyed_hash

TAG_PURPOSE = "audit-checkpoint"
# 128 bits: a forger without the audit key has no better chance than guessing them.
TAG_HEX_CHARS = 32
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_TAG_VERSION = b"v1"
_TOKEN = (
    r"([1-9][0-9]{0,18}):([0-9a-fA-F]{64})"
    rf"(?::([0-9]{{8}}T[0-9]{{6}}Z):([0-9a-fA-F]{{{TAG_HEX_CHARS}}}))?"
)
_WHOLE = re.compile(rf"^{_TOKEN}$")
# In running text (a pasted or saved mail): not glued to other letters or digits.
_IN_TEXT = re.compile(rf"(?<![0-9A-Za-z:]){_TOKEN}(?![0-9A-Za-z:])")
FORMAT_HELP = "a checkpoint is SEQ:MAC (a positive number and 64 hex digits), or SEQ:MAC:TIME:TAG as mailed"


def _second(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("checkpoint times must be timezone-aware")
    return at.astimezone(UTC).replace(microsecond=0)


def _tag(key: bytes, seq: int, mac: str, at: datetime) -> str:
    message = b"|".join((_TAG_VERSION, str(seq).encode(), mac.lower().encode(), _compact(at).encode()))
    return keyed_hash(key, TAG_PURPOSE, message).hex()[:TAG_HEX_CHARS]


def _compact(at: datetime) -> str:
    return _second(at).strftime(_TIME_FORMAT)


@dataclass(frozen=True)
class Checkpoint:
    """A chain head worth keeping outside the service: ``verify`` later proves the chain still contains it.

    ``at`` and ``tag`` are set for a signed (mailed) checkpoint and None for a bare ``SEQ:MAC``.
    """

    seq: int
    mac: str
    at: datetime | None = None
    tag: str | None = None

    @classmethod
    def signed(cls, key: bytes, seq: int, mac: str, at: datetime) -> Checkpoint:
        """The mailed form of row ``seq``: only a holder of the audit key can make one."""
        return cls(seq=seq, mac=mac.lower(), at=_second(at), tag=_tag(key, seq, mac, at))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read ``SEQ:MAC`` or ``SEQ:MAC:TIME:TAG``."""
        match = _WHOLE.match(text.strip())
        if match is None:
            raise ValueError(FORMAT_HELP)
        return _from_match(match)

    @property
    def is_signed(self) -> bool:
        return self.tag is not None

    def authentic(self, key: bytes) -> bool:
        """True if the tag was made with ``key``; a bare ``SEQ:MAC`` has nothing to check and is not."""
        if self.tag is None or self.at is None:
            return False
        expected = _tag(key, self.seq, self.mac, self.at)
        return constant_time_equal(self.tag.lower().encode(), expected.encode())

    @property
    def short(self) -> str:
        """For messages: enough of the MAC to recognise it in the mail."""
        return f"{self.seq}:{self.mac[:12]}..."

    @property
    def when(self) -> str:
        return "" if self.at is None else self.at.strftime("%Y-%m-%d %H:%M:%S UTC")

    def __str__(self) -> str:
        if self.at is None or self.tag is None:
            return f"{self.seq}:{self.mac}"
        return f"{self.seq}:{self.mac}:{_compact(self.at)}:{self.tag}"


def _from_match(match: re.Match[str]) -> Checkpoint:
    seq, mac, time, tag = match.groups()
    at = None if time is None else datetime.strptime(time, _TIME_FORMAT).replace(tzinfo=UTC)
    return Checkpoint(seq=int(seq), mac=mac.lower(), at=at, tag=None if tag is None else tag.lower())


def find_checkpoints(text: str) -> list[Checkpoint]:
    """Every checkpoint written in ``text`` (a checkpoint mail's body, notes), each once, in order found.

    A mail names its checkpoint more than once (German and English, and in the command); a signed token
    that also matches the bare form is taken as signed only.
    """
    found: list[Checkpoint] = []
    for match in _IN_TEXT.finditer(text):
        checkpoint = _from_match(match)
        if checkpoint not in found:
            found.append(checkpoint)
    return found


def newest(checkpoints: list[Checkpoint]) -> Checkpoint | None:
    """The checkpoint that claims the longest chain (signed before bare at the same seq)."""
    if not checkpoints:
        return None
    return max(checkpoints, key=lambda c: (c.seq, c.is_signed))
