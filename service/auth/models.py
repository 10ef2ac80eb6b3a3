"""Staff accounts, their recovery codes, and the server side of split-key sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, LargeBinary, String
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


class StaffUser(Base):
    """A counsellor, lead, coordinator or administrator.

    An account has a key pair only once its owner has set a password of their own: the operator who created
    it saw the initial password, so nothing may ever be sealed under that (docs/security.md). Until then only
    ``initial_password_seal`` exists, which checks the initial password and opens nothing but the
    password-change page. There is no password hash: the sealed private key is the password check. Both are
    sealed under the password and the server's key pepper, so a dump alone cannot test a guess. The TOTP
    secret is sealed under a key derived from the server's session key, so the dump alone yields no codes.
    """

    __tablename__ = "staff_user"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    # Stored lower-cased: one person, one account, however the address is typed.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_coordinator: Mapped[bool] = mapped_column(Boolean, default=False)
    # NULL until the owner sets a password of their own; nothing can be granted to an account without one.
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # seal_with_password_and_pepper(password, private key, Context("user_private", record_id=id)).
    sealed_private_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # seal_with_password_and_pepper(initial password, b"", Context("initial_password", record_id=id)):
    # set while the account waits for its first (or, after a reset, next) password of its own.
    initial_password_seal: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # True for a key pair that came through the upgrade from format 1: it was born under the initial password
    # the operator saw (format 1 re-sealed the same key at every change), so the owner's next sign-in makes a
    # new one and moves the grants over; no new key epoch is wrapped to it meanwhile.
    key_inherited: Mapped[bool] = mapped_column(Boolean, default=False)
    sealed_totp_secret: Mapped[bytes] = mapped_column(LargeBinary)
    # Step of the last accepted TOTP code; that code and every older one are refused.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def has_key(self) -> bool:
        return self.public_key is not None and self.sealed_private_key is not None


class RecoveryCode(Base):
    """A single-use replacement for the TOTP code (lost phone); the row is deleted when it is used."""

    __tablename__ = "staff_recovery_code"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"), index=True)
    # keyed_hash(session key, "recovery-code", user id + code): the code itself is never stored.
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
