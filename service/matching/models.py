"""The one table of the repeat-perpetrator matching: keyed tokens and keyed case references, nothing else."""

from __future__ import annotations

from sqlalchemy import Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base


class PerpetratorToken(Base):
    """One identifier of a perpetrator, named by the reporter of one case with consent (docs/matching.md).

    ``token`` is HMAC-SHA256 of the normalised identifier under the matching key, ``case_ref`` the case id
    under AES-SIV with a key derived from it (service/crypto/matching.py): without the key neither names a
    person or a case. No reporter, no text, no time (a time would join the row to its case's
    ``created_at``). Deleted when the reporter withdraws consent and when the case is purged.
    """

    __tablename__ = "perpetrator_token"

    token: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    case_ref: Mapped[bytes] = mapped_column(LargeBinary(64), primary_key=True)
    # name, handle, phone, email or plate: which kind of identifier (the handle's platform is only in the
    # token), shown to the holders of a matched case.
    kind: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index("ix_perpetrator_token_case_ref", "case_ref"),)
