"""The part of migration 0011 (key custody) that needs the server's key pepper; run by ``rueckhalt migrate``.

Idempotent: each step finds only what is still in the old format.

1. A staff key sealed under its owner's own password in format 1 (password only) is wrapped once more under
   the key pepper (format 3), so a dump no longer allows offline guessing; the owner's next sign-in seals it
   properly (format 2).
2. A staff key still sealed under an initial password, which the operator saw, is thrown away with every
   grant made to it: the operator could open it. The initial password keeps working for the password change
   (its format-1 value, wrapped under the pepper, is the check), and the owner's own password makes a new
   key pair; a lead grants again.
3. Every organisation whose recovery key was printed to the operator (format 1) begins a new key epoch.
   Cases filed from now on are out of that key's reach; the leads are asked to hand out recovery shares,
   and epoch 1 (with the printed key's copy of it) is destroyed once its last case is purged.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth.models import StaffUser
from service.auth.service import initial_password_context, user_key_context
from service.config import Secrets
from service.crypto import wrap_legacy_seal
from service.crypto.passwords import VERSION as FORMAT_1
from service.organisations.custody import KeyCustody, RotationReason
from service.organisations.models import MemberKeyGrant, Membership, Organisation


@dataclass(frozen=True)
class UpgradeReport:
    keys_wrapped: int
    initial_keys_dropped: int
    organisations_rotated: int

    @property
    def changed(self) -> bool:
        return bool(self.keys_wrapped or self.initial_keys_dropped or self.organisations_rotated)


def upgrade_key_custody(session: Session, secrets: Secrets, audit: AuditLog) -> UpgradeReport:
    """Run the steps above in the caller's transaction (the caller commits)."""
    wrapped = dropped = 0
    users = session.scalars(select(StaffUser).where(StaffUser.sealed_private_key.is_not(None))).all()
    for user in users:
        sealed = user.sealed_private_key
        if sealed is None or not sealed or sealed[0] != FORMAT_1:
            continue
        if user.must_change_password:
            # The check of the initial password stays, under the pepper; the key it sealed goes.
            user.initial_password_seal = wrap_legacy_seal(
                sealed, user_key_context(user.id), secrets.key_pepper
            )
            user.public_key = None
            user.sealed_private_key = None
            session.execute(delete(MemberKeyGrant).where(MemberKeyGrant.user_id == user.id))
            session.execute(delete(Membership).where(Membership.user_id == user.id))
            audit.append(
                session,
                actor_kind="system",
                actor_id=None,
                action="account.initial_key_dropped",
                object_type="staff_user",
                object_id=user.id,
            )
            dropped += 1
        else:
            user.sealed_private_key = wrap_legacy_seal(sealed, user_key_context(user.id), secrets.key_pepper)
            wrapped += 1
    custody = KeyCustody(audit)
    rotated = 0
    legacy = session.scalars(
        select(Organisation).where(
            Organisation.recovery_sealed_private_key.is_not(None),
            Organisation.recovery_public_key.is_(None),
            Organisation.current_epoch == 1,
        )
    ).all()
    for organisation in legacy:
        custody.rotate(session, organisation, RotationReason.upgrade, None)
        organisation.recovery_renewal_needed = True
        rotated += 1
    session.flush()
    return UpgradeReport(wrapped, dropped, rotated)


__all__ = ["UpgradeReport", "initial_password_context", "upgrade_key_custody"]
