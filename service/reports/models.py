"""The one table of the reporter forms that is not part of a case: used submission tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from service.db import HOUR, Base


class SubmissionToken(Base):
    """A form view's submission token that has been sent: a second submission with it files nothing.

    A row exists only once a token was used (an unused one is checked by its signature alone, so viewing
    a form writes nothing). It holds a keyed hash of the token and the hour the token expires; in clear,
    nothing else: no case, no receipt, no time of use, no client address, so it cannot be joined to the case
    the submission filed (service/reports/submissions.py). A report form's row also holds the receipt page's
    answer, sealed under a key that only the token itself yields (service/reports/answer_again.py), for a
    second tap to be shown its receipt. Deleted by the retention purge once expired.
    """

    __tablename__ = "submission_token"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(HOUR, index=True)
    # The receipt page's answer for a second submission of the same report form view, sealed under a key
    # derived from the token (not stored) and the session key; NULL for the incident form and once the
    # answer's quarter of an hour is over.
    answer: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
