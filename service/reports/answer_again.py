"""The receipt page once more, for a second submission of the same report form view or API request.

Why: a reporter on a slow connection at night taps "send" twice, or sends again after an error page. The
first submission files the report; the browser shows the answer to the last one, which files nothing
(submissions.py). Until now that answer said "already sent" and could not show the receipt, because the
receipt is stored nowhere: the reporter lost the one key to the case and the channel to the counsellors.
An API client that retries after a lost answer, with the same ``Idempotency-Key``, is in the same place.

How: the filing transaction that claims the token also stores the receipt page's answer, sealed under
``SubmissionClaim.answer_key``, a keyed hash of the whole token under the session key. The row is found by
another keyed hash of the token, so the database never holds what opens it: the token is in the reporter's
browser only. A second submission with the same token derives the key, opens the answer and shows the
receipt page again, within ``SHOWN_AGAIN_FOR`` of the filing. The row keeps the minute that time ends
(``answer_until``), and the minute task erases the answer and that minute together
(``forget_answers_due``), so no copy outlives it by more than a minute or two, in the database or in a backup
made after. The answer is padded to a fixed size, so its length does not say how many kinds of incident or
organisations the case has.

Who can read it in that time: the running server, for whoever sends that form view's token: the reporter's
browser, and someone at that phone or computer who sends the form again from its history. The receipt page
offers to erase it at once ("Code notiert"). Not a thief of a dump, nor an operator with every
secret: neither has the token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.cases.deadlines import ComplaintDeadline, DeadlineBasis
from service.cases.repository import KeyHolder
from service.crypto import Context, CryptoError, open_sealed, seal
from service.db import ceil_time
from service.reports import repository
from service.reports.filing import Filed
from service.reports.submissions import SubmissionClaim

log = logging.getLogger("rueckhalt.intake")

# Long enough for a second tap, a resend after an error page or a lost answer; short enough that the
# form's token in the browser's history stops being a way to the code soon after.
SHOWN_AGAIN_FOR = timedelta(minutes=15)
_PURPOSE = "submission_answer"
# The plaintext's format (its "v"): an answer of another is treated as one that cannot be opened.
_FORMAT = 1
# The size every answer is padded to (a multiple of it, for a case with very many organisations): about
# four times a typical answer.
_PADDED_TO = 2048


def _context(claim: SubmissionClaim) -> Context:
    return Context(_PURPOSE, record_id=claim.token_hash.hex())


def keep(session: Session, claim: SubmissionClaim, filed: Filed, now: datetime) -> None:
    """In the filing transaction, after the claim: the answer sealed beside the token's row."""
    until = now + SHOWN_AGAIN_FOR
    answer: dict[str, Any] = {
        "v": _FORMAT,
        "shown_until": until.isoformat(),
        "receipt": filed.receipt,
        "routed_to": filed.routed_to,
        "ack_deadline_minutes": filed.ack_deadline_minutes,
        "type_codes": filed.type_codes,
        "complaint": [filed.complaint.basis.value, _day(filed.complaint.ends_on)],
        "key_holders": [
            [holder.name, holder.role, holder.active, holder.escalation_after_minutes]
            for holder in filed.key_holders
        ],
    }
    plaintext = json.dumps(answer).encode()
    # Whitespace after the JSON (which a parser skips), to the next whole block.
    padded = plaintext.ljust(-(-len(plaintext) // _PADDED_TO) * _PADDED_TO, b" ")
    # The minute task erases at the stored minute: rounded up, so never before the end checked inside.
    erase_at = ceil_time(until, 60)
    repository.keep_answer(
        session, claim.token_hash, seal(claim.answer_key, padded, _context(claim)), erase_at
    )


def again(session: Session, claim: SubmissionClaim, now: datetime) -> Filed | None:
    """The answer of the submission that claimed ``claim``'s token, while it may be shown; else None (and
    an answer past its time, or one that cannot be opened, is erased). Not kept, because not shown: the
    case id and the urgency (empty here)."""
    sealed = repository.kept_answer(session, claim.token_hash)
    if sealed is None:
        return None
    try:
        answer = json.loads(open_sealed(claim.answer_key, sealed, _context(claim)))
        if answer["v"] != _FORMAT:
            raise ValueError("another format")
        shown_until = datetime.fromisoformat(answer["shown_until"])
        basis, ends_on = answer["complaint"]
        filed = Filed(
            receipt=answer["receipt"],
            case_id="",
            routed_to=answer["routed_to"],
            ack_deadline_minutes=answer["ack_deadline_minutes"],
            type_codes=answer["type_codes"],
            complaint=ComplaintDeadline(
                DeadlineBasis(basis), date.fromisoformat(ends_on) if ends_on else None
            ),
            urgency="",
            key_holders=[KeyHolder(*holder) for holder in answer["key_holders"]],
        )
    except (CryptoError, ValueError, KeyError, TypeError) as error:
        # Only the kind: never the content (there is none to show) nor the token.
        log.warning("a kept submission answer could not be opened (%s); erased", type(error).__name__)
        repository.forget_answer(session, claim.token_hash)
        return None
    if shown_until <= now:
        repository.forget_answer(session, claim.token_hash)
        return None
    return filed


def claimed(session: Session, claims: Sequence[SubmissionClaim]) -> SubmissionClaim | None:
    """The first of ``claims`` whose token was used before (an API key under the current or a previous
    session key), or None."""
    used = repository.claimed_hashes(session, [claim.token_hash for claim in claims])
    return next((claim for claim in claims if claim.token_hash in used), None)


def _day(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None
