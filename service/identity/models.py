"""Staff accounts, support organisations, memberships, and who holds which key.

The rows every feature above reads to know who someone is and what they may open: the account with its
key pair (``StaffUser``), the organisations that are the only recipients a case key can ever be wrapped to,
their key epochs, the members and their grants of the organisation key, and the case key wrapped to an
organisation (``CaseKeyGrant``). Sign-in (sessions, recovery codes) is in ``service/auth/models.py``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, MINUTE, Base, UTCDateTime, new_id, utcnow


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


class Organisation(Base):
    """A support organisation. Its key pair changes by epochs (``OrganisationKeyEpoch``); the columns here
    name the current one, which every new case and every re-wrap uses.

    The key pair is never made by the operator: the organisation's first lead makes it, signed in with a
    password of their own, and hands the recovery key out as Shamir shares to named custodians
    (``service/identity/custody.py``).
    """

    __tablename__ = "organisation"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    # HPKE public key (ML-KEM-768 + X25519) of the current epoch. NULL means the organisation cannot
    # receive cases yet: routing skips it rather than ever storing a report it could not protect.
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The epoch of ``public_key``; 0 while there is no key.
    current_epoch: Mapped[int] = mapped_column(Integer, default=0)
    # Public half of the recovery key pair whose private half exists only as custodians' shares.
    recovery_public_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    recovery_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recovery_share_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set when the shares were typed into a terminal (``org recover``) or when the organisation predates
    # the shares (format 1 printed a whole recovery key to the operator): leads are asked for new shares.
    recovery_renewal_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Format 1 only: epoch 1's private key sealed under the recovery key printed to the operator. Deleted
    # when epoch 1 is destroyed; never written for a new organisation.
    recovery_sealed_private_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Optional on-call webhook (content-free, signed; the signing secret is derived, never stored).
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def can_receive(self) -> bool:
        return self.active and self.public_key is not None


class OrganisationKeyEpoch(Base):
    """One key pair of an organisation. A new epoch begins when a member leaves, a case is transferred
    away, the recovery shares are renewed, or the operator rotates; its private key is destroyed (every
    wrap of it deleted) once no unpurged case is wrapped to it, so crypto-shredding reaches backups made
    after that day too."""

    __tablename__ = "organisation_key_epoch"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # wrap_private_key(epoch private key, recovery public key, recovery_epoch_context). NULL for an
    # organisation still waiting for its shares (migrated from format 1).
    recovery_wrapped_private_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (UniqueConstraint("organisation_id", "epoch"),)


class MembershipRole(StrEnum):
    counsellor = "counsellor"
    # A counsellor who also manages the organisation's members and grants them the organisation key.
    lead = "lead"


class Membership(Base):
    """A staff member's place in an organisation. The keys come separately, one ``MemberKeyGrant`` per
    live epoch: a membership without grants (the first lead of an organisation that has no key yet, or a
    member whose grants a reset dropped) sees no case. An administrator never holds one (separation of
    duties; enforced by the service)."""

    __tablename__ = "membership"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    # No index of its own: the unique constraint below starts with user_id and serves look-ups by user.
    user_id: Mapped[str] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    # Who made the member: a lead's user id, or NULL for the operator's command line.
    granted_by: Mapped[str | None] = mapped_column(ID_TYPE, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "organisation_id"),)


class MemberKeyGrant(Base):
    """One epoch's organisation private key granted to one member.

    Two parts because HPKE wraps only 32-byte keys: the 96-byte private key is sealed under a fresh random
    grant key, and that key is wrapped to the member's public key (docs/crypto-formats.md). Revoking is
    deleting the rows.
    """

    __tablename__ = "member_key_grant"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    epoch: Mapped[int] = mapped_column(Integer)
    # wrap_key(grant key, member public key, grant_wrap_context(org id, user id, epoch)).
    wrapped_grant_key: Mapped[bytes] = mapped_column(LargeBinary)
    # seal(grant key, epoch private key, member_key_context(org id, user id, epoch)).
    sealed_organisation_key: Mapped[bytes] = mapped_column(LargeBinary)
    granted_by: Mapped[str | None] = mapped_column(ID_TYPE, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "organisation_id", "epoch"),)


class CaseKeyGrant(Base):
    """The case data key wrapped (HPKE) to one organisation: routing is this grant."""

    __tablename__ = "case_key_grant"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("case_file.id", ondelete="CASCADE"), index=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"), index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The organisation's key epoch the case key is wrapped to (its newest when the grant was written).
    epoch: Mapped[int] = mapped_column(Integer, default=1)
    role: Mapped[str] = mapped_column(String(16))
    # Escalation steps hold a key from the start but see the case only once the service opens access.
    active: Mapped[bool] = mapped_column(Boolean)
    escalation_after_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    granted_at: Mapped[datetime] = mapped_column(MINUTE, default=utcnow)
    opened_at: Mapped[datetime | None] = mapped_column(MINUTE, nullable=True)

    __table_args__ = (UniqueConstraint("case_id", "organisation_id", name="uq_case_key_grant_case_org"),)
