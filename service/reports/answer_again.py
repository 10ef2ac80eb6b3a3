"""The receipt page once more, for a second submission of the same report form view.

Why: a reporter on a slow connection at night taps "send" twice, or sends again after an error page. The
first submission files the report; the browser shows the answer to the last one, which files nothing
(submissions.py). Until now that answer said "already sent" and could not show the receipt, because the
receipt is stored nowhere: the reporter lost the one key to the case and the channel to the counsellors.

How: the filing transaction that claims the token also stores the receipt page's answer, sealed under
``SubmissionClaim.answer_key``, a keyed hash of the whole token under the session key. The row is found by
another keyed hash of the token, so the database never holds what opens it: the token is in the reporter's
browser only. A second submission with the same token derives the key, opens the answer and shows the
receipt page again, for ``SHOWN_AGAIN_FOR`` after the filing; the end of that time is inside the sealed
answer, so the row still shows no time of use in clear. Past it the answer is erased and the reporter gets
the "already sent" page with its ways forward.

Who can read it: whoever sends that form view's token within the quarter of an hour, which is the browser
that sent the report (or someone holding that phone and its history, who could read the receipt page
itself there too). Not a thief of a dump, nor an operator with every secret: neither has the token.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.cases.deadlines import ComplaintDeadline, DeadlineBasis
from service.cases.repository import KeyHolder
from service.crypto import Context, CryptoError, open_sealed, seal
from service.reports import repository
from service.reports.filing import Filed
from service.reports.submissions import SubmissionClaim

log = logging.getLogger("rueckhalt.intake")

# Long enough for a second tap, a resend after an error page or a lost answer; short enough that the
# form's token in the browser's history stops being a way to the code soon after.
SHOWN_AGAIN_FOR = timedelta(minutes=15)
_PURPOSE = "submission_answer"


def _context(claim: SubmissionClaim) -> Context:
    return Context(_PURPOSE, record_id=claim.token_hash.hex())


def keep(session: Session, claim: SubmissionClaim, filed: Filed, now: datetime) -> None:
    """In the filing transaction, after the claim: the answer sealed beside the token's row."""
    answer: dict[str, Any] = {
        "shown_until": (now + SHOWN_AGAIN_FOR).isoformat(),
        "receipt": filed.receipt,
        "case_id": filed.case_id,
        "routed_to": filed.routed_to,
        "ack_deadline_minutes": filed.ack_deadline_minutes,
        "type_codes": filed.type_codes,
        "complaint": [filed.complaint.basis.value, _day(filed.complaint.ends_on)],
        "urgency": filed.urgency,
        "key_holders": [
            [holder.name, holder.role, holder.active, holder.escalation_after_minutes]
            for holder in filed.key_holders
        ],
    }
    sealed = seal(claim.answer_key, json.dumps(answer).encode(), _context(claim))
    repository.keep_answer(session, claim.token_hash, sealed)


def again(session: Session, claim: SubmissionClaim, now: datetime) -> Filed | None:
    """The answer of the submission that claimed ``claim``'s token, while it may be shown; else None (and
    an answer past its time, or one that cannot be opened, is erased)."""
    sealed = repository.kept_answer(session, claim.token_hash)
    if sealed is None:
        return None
    try:
        answer = json.loads(open_sealed(claim.answer_key, sealed, _context(claim)))
    except (CryptoError, ValueError) as error:
        # Only the kind: never the content (there is none to show) nor the token.
        log.warning("a kept submission answer could not be opened (%s); erased", type(error).__name__)
        repository.forget_answer(session, claim.token_hash)
        return None
    if datetime.fromisoformat(answer["shown_until"]) <= now:
        repository.forget_answer(session, claim.token_hash)
        return None
    basis, ends_on = answer["complaint"]
    return Filed(
        receipt=answer["receipt"],
        case_id=answer["case_id"],
        routed_to=answer["routed_to"],
        ack_deadline_minutes=answer["ack_deadline_minutes"],
        type_codes=answer["type_codes"],
        complaint=ComplaintDeadline(DeadlineBasis(basis), date.fromisoformat(ends_on) if ends_on else None),
        urgency=answer["urgency"],
        key_holders=[KeyHolder(*holder) for holder in answer["key_holders"]],
    )


def _day(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None
