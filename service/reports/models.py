"""The one table of the reporter forms that is not part of a case: used submission tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from service.db import HOUR, MINUTE, Base


class SubmissionToken(Base):
    """A form view's submission token that has been sent: a second submission with it files nothing.

    A row exists only once a token was used (an unused one is checked by its signature alone, so viewing
    a form writes nothing). It holds a keyed hash of the token and the hour the token expires; in clear,
    nothing else for long: no case, no receipt, no time of use, no client address, so it cannot be joined to
    the case the submission filed (service/reports/submissions.py). For a quarter of an hour a report form's
    row also holds the receipt page's answer, sealed under a key that only the token itself yields, and the
    minute that time ends (service/reports/answer_again.py). Deleted by the retention purge once expired.
    """

    __tablename__ = "submission_token"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(HOUR, index=True)
    # The receipt page's answer for a second submission of the same report form view (or an API retry),
    # sealed under a key derived from the token (not stored) and the session key, padded to a fixed size;
    # NULL for the incident form, and from ``answer_until`` on: the minute task erases both together.
    answer: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    answer_until: Mapped[datetime | None] = mapped_column(MINUTE, nullable=True, index=True)
