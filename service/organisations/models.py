"""Support organisations: the only recipients a case key can ever be wrapped to, and their members."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, Base, UTCDateTime, new_id, utcnow


class Organisation(Base):
    """A support organisation. Its key pair changes by epochs (``OrganisationKeyEpoch``); the columns here
    name the current one, which every new case and every re-wrap uses.

    The key pair is never made by the operator: the organisation's first lead makes it, signed in with a
    password of their own, and hands the recovery key out as Shamir shares to named custodians
    (``service/organisations/custody.py``).
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
