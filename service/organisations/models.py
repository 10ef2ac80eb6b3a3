"""Support organisations: the only recipients a case key can ever be wrapped to, and their members."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import ID_TYPE, Base, UTCDateTime, new_id, utcnow


class Organisation(Base):
    __tablename__ = "organisation"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    # HPKE public key (ML-KEM-768 + X25519). NULL means the organisation cannot receive cases yet:
    # routing skips it rather than ever storing a report it could not protect.
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The private key sealed under the recovery key that was shown once when the organisation was created.
    recovery_sealed_private_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Optional on-call webhook (content-free, signed; the signing secret is derived, never stored).
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def can_receive(self) -> bool:
        return self.active and self.public_key is not None


class MembershipRole(StrEnum):
    counsellor = "counsellor"
    # A counsellor who also manages the organisation's members and grants them the organisation key.
    lead = "lead"


class Membership(Base):
    """A staff member's place in an organisation, and the organisation private key granted to them.

    The grant is two parts because HPKE wraps only 32-byte keys: the 96-byte organisation private key is
    sealed under a fresh random key, and that key is wrapped to the member's public key. Revoking is
    deleting the row. An administrator never holds one (separation of duties; enforced by the service).
    """

    __tablename__ = "membership"

    id: Mapped[str] = mapped_column(ID_TYPE, primary_key=True, default=new_id)
    # No index of its own: the unique constraint below starts with user_id and serves look-ups by user.
    user_id: Mapped[str] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    # wrap_key(grant key, member public key, Context("org_grant", record_id=org id, field=user id)).
    wrapped_grant_key: Mapped[bytes] = mapped_column(LargeBinary)
    # seal(grant key, org private key, Context("org_private", record_id=org id, field="member:" + user id)).
    sealed_organisation_key: Mapped[bytes] = mapped_column(LargeBinary)
    # Who granted it: a lead's user id, or NULL for the operator with the recovery key.
    granted_by: Mapped[str | None] = mapped_column(ID_TYPE, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "organisation_id"),)
