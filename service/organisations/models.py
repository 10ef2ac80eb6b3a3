"""Support organisations: the only recipients a case key can ever be wrapped to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, LargeBinary, String
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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def can_receive(self) -> bool:
        return self.active and self.public_key is not None
