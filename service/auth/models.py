"""Sign-in: the staff accounts' recovery codes and the server side of split-key sessions.

The account itself (``StaffUser``, with its key pair) is in ``service/identity/models.py``: memberships and
key custody, below this package, read it too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, Base, UTCDateTime, new_id, utcnow


class WebSession(Base):
    __tablename__ = "web_session"

    # SHA-256 of the session id: a dump of this table cannot be replayed as cookies.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(ID_TYPE, index=True)
    # The unlocked key (case key for a reporter) sealed under the cookie's half of the session.
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RecoveryCode(Base):
    """A single-use replacement for the TOTP code (lost phone); the row is deleted when it is used."""

    __tablename__ = "staff_recovery_code"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"), index=True)
    # keyed_hash(session key, "recovery-code", user id + code): the code itself is never stored.
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
