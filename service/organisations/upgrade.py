"""The part of migration 0011 (key custody) that needs the server's key pepper; run by ``rueckhalt migrate``.

Idempotent: each step finds only what is still in the old format.

1. A staff key sealed under its owner's own password in format 1 (password only) is wrapped once more under
   the key pepper (format 3), so a dump no longer allows offline guessing. Format 1 made every key under the
   initial password the operator saw and only re-sealed it later, so the key is marked inherited: the
   owner's next sign-in makes a new key pair and moves the grants to it (``AccountService.login``).
2. A staff key still sealed under an initial password, which the operator saw, is thrown away with every
   grant made to it: the operator could open it. The initial password keeps working for the password change
   (its format-1 value, wrapped under the pepper, is the check), and the owner's own password makes a new
   key pair; a lead grants again.
3. Every organisation whose recovery key was printed to the operator (format 1) is marked for recovery
   shares, and begins a new key epoch as soon as no member holds an inherited key: now, or when the last
   such member signs in. Cases filed from then on are out of reach of the printed key and of the inherited
   keys; epoch 1 (with the printed key's copy of it) is destroyed once its last case is purged.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth.account_keys import initial_password_context, user_key_context
from service.config import Secrets
from service.crypto import wrap_legacy_seal
from service.crypto.passwords import VERSION as FORMAT_1
from service.identity.custody import KeyCustody, RotationReason, has_inherited_members
from service.identity.grants import lock_organisations
from service.identity.models import MemberKeyGrant, Membership, Organisation, StaffUser


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
    legacy = session.scalars(
        select(Organisation).where(
            Organisation.recovery_sealed_private_key.is_not(None),
            Organisation.recovery_public_key.is_(None),
            Organisation.current_epoch == 1,
        )
    ).all()
    # Each may rotate, and the accounts' changes are audited first: every one is locked before the first
    # audit row (``identity.grants.lock_organisation`` says why).
    lock_organisations(session, legacy)
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
            # Format 1 made the key under the initial password and only re-sealed it later: the operator who
            # saw that password and holds a backup from before the change has it. Wrapped now (no more
            # offline guessing), replaced at the owner's next sign-in (``key_inherited``).
            user.sealed_private_key = wrap_legacy_seal(sealed, user_key_context(user.id), secrets.key_pepper)
            user.key_inherited = True
            wrapped += 1
    custody = KeyCustody(audit)
    rotated = 0
    for organisation in legacy:
        organisation.recovery_renewal_needed = True
        session.flush()
        # A new epoch now only where no member holds an inherited key: otherwise it would be wrapped to keys
        # the operator may know. Those organisations begin it when their last such member signs in.
        if not has_inherited_members(session, organisation.id):
            custody.rotate(session, organisation, RotationReason.upgrade, None, system=True)
            rotated += 1
    session.flush()
    return UpgradeReport(wrapped, dropped, rotated)


__all__ = ["UpgradeReport", "initial_password_context", "upgrade_key_custody"]
