"""A self-check kept under a code: saved only at the municipality's explicit choice, readable only with it.

The code is made like a receipt and shown once (service/crypto/selfcheck_code.py). The row holds a keyed hash
of the code, a salt, and the sealed takes: each take is the month it was saved, the answers and an optional
note; the newest is last. Saving again under the same code adds a take (or replaces one of the same month),
so a year later the evaluation can show what changed since the previous one.

Beside the rows, ``selfcheck_tally`` counts the answers of every row's newest take, for the coordinators'
aggregate: counted up and down in the transaction that saves, never linked to a row (docs/clear-columns.md).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.crypto import DecryptionError, InvalidReceipt, new_salt
from service.crypto.selfcheck_code import (
    new_selfcheck_code,
    normalize_selfcheck_code,
    open_answers,
    seal_answers,
    selfcheck_lookup,
)
from service.errors import NotFound
from service.knowledge.models import SavedSelfcheck, SelfcheckTally
from service.knowledge.selfcheck import ANSWERS, question_ids

FORMAT = 1
# Takes kept per code: ten years of yearly stock-taking.
MAX_TAKES = 10
MAX_NOTE_CHARS = 1000
# Opened in place of a real row when a code matches nothing, so a wrong code costs what a right one does.
_DUMMY_SALT = b"\x00" * 32
_DUMMY_LOOKUP = b"\x00" * 32


@dataclass(frozen=True)
class Take:
    month: str  # YYYY-MM
    answers: dict[str, str]
    note: str = ""

    def as_json(self) -> dict[str, object]:
        return {"month": self.month, "answers": self.answers, "note": self.note}


@dataclass(frozen=True)
class Opened:
    code: str  # normalised, grouped for display
    takes: tuple[Take, ...]

    @property
    def latest(self) -> Take | None:
        return self.takes[-1] if self.takes else None


@dataclass(frozen=True)
class Tallies:
    """The aggregate as stored: how many rows, and per question the count of each answer."""

    saved: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _decode(plaintext: bytes) -> tuple[Take, ...]:
    data = json.loads(plaintext)
    if data.get("v") != FORMAT:
        raise DecryptionError("unknown self-check format")
    return tuple(
        Take(month=str(t["month"]), answers=dict(t["answers"]), note=str(t.get("note", "")))
        for t in data["takes"]
    )


def _encode(takes: tuple[Take, ...]) -> bytes:
    return json.dumps({"v": FORMAT, "takes": [t.as_json() for t in takes]}, ensure_ascii=False).encode()


def _checked(answers: Mapping[str, str], note: str) -> tuple[dict[str, str], str]:
    asked = question_ids()
    if any(q not in asked or a not in ANSWERS for q, a in answers.items()) or len(note) > MAX_NOTE_CHARS:
        raise ValueError("answers or note out of range")
    return dict(answers), note


class SelfcheckStore:
    def __init__(self, lookup_pepper: bytes) -> None:
        self._pepper = lookup_pepper

    # -- saving ----------------------------------------------------------------------------------------------
    def save_new(self, session: Session, answers: Mapping[str, str], note: str, today: date) -> str:
        """Keep a first take under a new code; return the code (shown once, stored nowhere). In the caller's
        transaction, like every change of the store: the page commits it (``service.deps.in_transaction``)."""
        answers, note = _checked(answers, note)
        code = new_selfcheck_code()
        lookup = selfcheck_lookup(self._pepper, code)
        salt = new_salt()
        takes = (Take(month_of(today), answers, note),)
        session.add(
            SavedSelfcheck(
                lookup_hash=lookup, salt=salt, sealed=seal_answers(_encode(takes), code, salt, lookup)
            )
        )
        _count(session, answers, +1)
        session.flush()
        return code

    def save_again(
        self, session: Session, code_text: str, answers: Mapping[str, str], note: str, today: date
    ) -> Opened:
        """Add a take under an existing code (one of the same month is replaced); NotFound for a wrong
        code."""
        answers, note = _checked(answers, note)
        row, code, takes = self._open_row(session, code_text, for_update=True)
        month = month_of(today)
        kept = takes[:-1] if takes and takes[-1].month == month else takes
        new_takes = (*kept, Take(month, answers, note))[-MAX_TAKES:]
        if takes:
            _count(session, takes[-1].answers, -1)
        _count(session, answers, +1)
        row.sealed = seal_answers(_encode(new_takes), code, row.salt, row.lookup_hash)
        return Opened(code=_grouped(code), takes=new_takes)

    def delete(self, session: Session, code_text: str) -> None:
        """Delete the row and take its newest answers out of the counts; NotFound for a wrong code."""
        row, _code, takes = self._open_row(session, code_text, for_update=True)
        if takes:
            _count(session, takes[-1].answers, -1)
        session.delete(row)

    # -- opening ---------------------------------------------------------------------------------------------
    def open(self, session: Session, code_text: str) -> Opened:
        """The takes kept under a code; one NotFound for every kind of failure (malformed, unknown, wrong)."""
        _row, code, takes = self._open_row(session, code_text, for_update=False)
        return Opened(code=_grouped(code), takes=takes)

    def _open_row(
        self, session: Session, code_text: str, *, for_update: bool
    ) -> tuple[SavedSelfcheck, str, tuple[Take, ...]]:
        try:
            code: str | None = normalize_selfcheck_code(code_text)
        except InvalidReceipt:
            code = None
        lookup = selfcheck_lookup(self._pepper, code or "0" * 20)
        query = select(SavedSelfcheck).where(SavedSelfcheck.lookup_hash == lookup)
        row = session.scalars(query.with_for_update() if for_update else query).one_or_none()
        if row is None or code is None:
            with contextlib.suppress(DecryptionError):
                open_answers(b"\x01" + b"\x00" * 60, "0" * 20, _DUMMY_SALT, _DUMMY_LOOKUP)
            raise NotFound()
        try:
            takes = _decode(open_answers(row.sealed, code, row.salt, row.lookup_hash))
        except (DecryptionError, ValueError, KeyError, TypeError):
            raise NotFound() from None
        return row, code, takes

    # -- the aggregate ---------------------------------------------------------------------------------------
    def tallies(self, session: Session) -> Tallies:
        saved = session.scalar(select(func.count()).select_from(SavedSelfcheck)) or 0
        counts: dict[str, dict[str, int]] = {}
        for row in session.scalars(select(SelfcheckTally)):
            counts.setdefault(row.question_id, {})[row.answer] = row.count
        return Tallies(saved=saved, counts=counts)


def _grouped(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def _count(session: Session, answers: Mapping[str, str], step: int) -> None:
    """Count each answer up (+1) or down (-1), as an upsert: concurrent saves never lose a count."""
    if not answers:
        return
    if step < 0:
        for question, answer in answers.items():
            session.execute(
                update(SelfcheckTally)
                .where(SelfcheckTally.question_id == question, SelfcheckTally.answer == answer)
                .values(count=SelfcheckTally.count - 1)
            )
        return
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for question, answer in sorted(answers.items()):
        session.execute(
            insert(SelfcheckTally)
            .values(question_id=question, answer=answer, count=1)
            .on_conflict_do_update(
                index_elements=["question_id", "answer"], set_={"count": SelfcheckTally.count + 1}
            )
        )
