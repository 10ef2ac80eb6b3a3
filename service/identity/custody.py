"""Who holds an organisation's keys: epochs, member grants, recovery shares (``KeyCustody``).

docs/security.md, "Key hierarchy"; docs/key-custody.md. The member grants are made in ``grants``, the
custodians' shares in ``recovery``; this module starts, rotates and destroys epochs and removes members.

The rules this module keeps:
- The operator never sees a key that opens a case. An organisation's first key pair is made by its first
  lead, signed in with a password of their own; its recovery key exists only as Shamir shares shown once to
  named custodians (k of n), never whole, never stored.
- Keys change by epochs. A member's removal, a transfer away, a renewal of the shares or the operator's
  ``org rotate`` start a new epoch; new cases and re-wraps use the newest. A rotation needs no private key
  (only the members' and the recovery public keys), so the operator can rotate without seeing anything.
- An epoch that no unpurged case needs any more is destroyed: every wrap of its private key is deleted, so
  a later compromise of a member or of the shares does not reach cases purged before (in backups made
  after the destruction; an older backup still holds the wraps of its day, docs/key-custody.md).

Nothing here commits; every change is audited in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.crypto import PrivateKey, PublicKey, generate_keypair, wrap_private_key
from service.db import new_id, utcnow
from service.identity.grants import (
    CustodyError,
    check_grantable,
    drop_member,
    grant_epochs,
    live_epochs,
    lock_organisation,
    lock_organisations,
    write_member_grant,
)
from service.identity.models import (
    CaseKeyGrant,
    MemberKeyGrant,
    Membership,
    MembershipRole,
    Organisation,
    OrganisationKeyEpoch,
    StaffUser,
)
from service.identity.recovery import (
    CustodianShare,
    clean_custodians,
    new_recovery,
    open_epochs_with_recovery,
    recovery_epoch_context,
    recovery_private_key,
)


class RotationReason:
    member_removed = "member_removed"
    transfer_away = "transfer_away"
    operator = "operator"
    shares_renewed = "shares_renewed"
    upgrade = "upgrade"
    account_reset = "account_reset"
    keys_renewed = "keys_renewed"


# -- the custody service ----------------------------------------------------------------------------------


class KeyCustody:
    def __init__(self, audit: AuditLog | None) -> None:
        self.audit = audit

    def _record(
        self,
        session: Session,
        action: str,
        organisation_id: str,
        actor_id: str | None,
        system: bool = False,
        **details: str | int | bool | None,
    ) -> None:
        if self.audit is None:
            return
        self.audit.append(
            session,
            actor_kind="staff" if actor_id else ("system" if system else "operator"),
            actor_id=actor_id,
            action=action,
            object_type="organisation",
            object_id=organisation_id,
            details=details or None,
        )

    def set_up(
        self,
        session: Session,
        organisation: Organisation,
        custodians: Sequence[str],
        threshold: int,
        *,
        lead: tuple[StaffUser, PrivateKey] | None,
        actor_id: str | None,
    ) -> list[CustodianShare]:
        """The organisation's first key pair and recovery shares; the lead (if given) is granted epoch 1.

        The shares are returned once, for the caller to show; nothing of them is stored.
        """
        if organisation.public_key is not None:
            raise CustodyError("has_key", f"organisation {organisation.slug} has a key already")
        names = clean_custodians(custodians, threshold)
        if lead is not None:
            check_grantable(lead[0])
        recovery_public, shares = new_recovery(organisation, names, threshold)
        private, public = generate_keypair()
        session.add(
            OrganisationKeyEpoch(
                id=new_id(),
                organisation_id=organisation.id,
                epoch=1,
                public_key=public.raw,
                recovery_wrapped_private_key=wrap_private_key(
                    private, recovery_public, recovery_epoch_context(organisation.id, 1)
                ),
                created_at=utcnow(),
            )
        )
        organisation.public_key = public.raw
        organisation.current_epoch = 1
        session.flush()
        if lead is not None:
            user, _ = lead
            grant_epochs(session, organisation, user, MembershipRole.lead, {1: private}, actor_id)
        self._record(
            session,
            "organisation.keys_created",
            organisation.id,
            actor_id,
            threshold=threshold,
            shares=len(names),
        )
        return shares

    def rotate(
        self,
        session: Session,
        organisation: Organisation,
        reason: str,
        actor_id: str | None,
        system: bool = False,
    ) -> int:
        """Start a new epoch: a fresh key pair wrapped to every member and to the recovery key.

        The organisation's row is locked first (PostgreSQL), so two rotations at once follow each other, and
        a grant running beside one waits for it rather than missing the new epoch.
        """
        lock_organisation(session, organisation)
        if organisation.public_key is None:
            raise CustodyError("no_key", f"organisation {organisation.slug} has no key yet")
        now = utcnow()
        previous = session.scalar(
            select(OrganisationKeyEpoch).where(
                OrganisationKeyEpoch.organisation_id == organisation.id,
                OrganisationKeyEpoch.epoch == organisation.current_epoch,
            )
        )
        if previous is not None:
            previous.retired_at = now
        epoch = organisation.current_epoch + 1
        private, public = generate_keypair()
        recovery_wrap = None
        if organisation.recovery_public_key is not None:
            recovery_wrap = wrap_private_key(
                private,
                PublicKey.from_bytes(organisation.recovery_public_key),
                recovery_epoch_context(organisation.id, epoch),
            )
        session.add(
            OrganisationKeyEpoch(
                id=new_id(),
                organisation_id=organisation.id,
                epoch=epoch,
                public_key=public.raw,
                recovery_wrapped_private_key=recovery_wrap,
                created_at=now,
            )
        )
        organisation.public_key = public.raw
        organisation.current_epoch = epoch
        for user in rotation_recipients(session, organisation.id):
            write_member_grant(session, organisation, user, epoch, private, actor_id)
        session.flush()
        self._record(
            session, "organisation.key_rotated", organisation.id, actor_id, system, epoch=epoch, reason=reason
        )
        return epoch

    def renew_shares(
        self,
        session: Session,
        organisation: Organisation,
        epoch_keys: dict[int, PrivateKey],
        custodians: Sequence[str],
        threshold: int,
        actor_id: str | None,
    ) -> list[CustodianShare]:
        """New shares for a new recovery key; every live epoch is re-wrapped to it and a new epoch begins.

        The rotation matters when the old shares were exposed (typed into a terminal by ``org recover``, or a
        format-1 recovery key that the operator saw): cases filed from now on are beyond the old ones.
        """
        names = clean_custodians(custodians, threshold)
        # Before the first audit row (the renewal's, then the rotation's): ``lock_organisation`` says why.
        lock_organisation(session, organisation)
        live = live_epochs(session, organisation.id)
        if any(row.epoch not in epoch_keys for row in live):
            raise CustodyError(
                "incomplete_keys", "the renewing key does not cover every key epoch of the organisation"
            )
        recovery_public, shares = new_recovery(organisation, names, threshold)
        for row in live:
            row.recovery_wrapped_private_key = wrap_private_key(
                epoch_keys[row.epoch], recovery_public, recovery_epoch_context(organisation.id, row.epoch)
            )
        # The format-1 recovery key printed to the operator no longer opens anything in the live database.
        organisation.recovery_sealed_private_key = None
        self._record(
            session,
            "organisation.shares_renewed",
            organisation.id,
            actor_id,
            threshold=threshold,
            shares=len(names),
        )
        self.rotate(session, organisation, RotationReason.shares_renewed, actor_id)
        return shares

    def grant_with_shares(
        self,
        session: Session,
        organisation: Organisation,
        typed_shares: Sequence[str],
        user: StaffUser,
        role: MembershipRole,
    ) -> Membership:
        """Grant every live epoch to ``user`` with k shares that never left this process (the demo's own
        set-up). Anything typed by people goes through ``recover``, which asks for new shares afterwards."""
        recovery_key = recovery_private_key(organisation, typed_shares)
        keys = open_epochs_with_recovery(session, organisation, recovery_key)
        return grant_epochs(session, organisation, user, role, keys, granted_by=None)

    def recover(
        self,
        session: Session,
        organisation: Organisation,
        typed_shares: Sequence[str],
        user: StaffUser,
        role: MembershipRole,
    ) -> Membership:
        """Grant every live epoch to ``user`` with k custodians' shares (all members lost their passwords).

        The shares passed through the operator's terminal, so the organisation is marked for new shares.
        """
        recovery_key = recovery_private_key(organisation, typed_shares)
        keys = open_epochs_with_recovery(session, organisation, recovery_key)
        membership = grant_epochs(session, organisation, user, role, keys, granted_by=None)
        organisation.recovery_renewal_needed = True
        self._record(
            session, "organisation.recovered", organisation.id, None, user_id=user.id, role=role.value
        )
        return membership

    def remove_member(
        self, session: Session, organisation: Organisation, user_id: str, actor_id: str | None, reason: str
    ) -> bool:
        """End a membership and start a new epoch, so a copy of the keys taken along opens no later case."""
        removed = drop_member(session, organisation.id, user_id)
        if removed and organisation.public_key is not None:
            self.rotate(session, organisation, reason, actor_id)
        return removed

    def destroy_unneeded_epochs(self, session: Session, now: datetime | None = None) -> list[tuple[str, int]]:
        """Destroy every retired epoch that no case is wrapped to any more; returns (organisation, epoch)."""
        moment = now or utcnow()
        rows = unneeded_epochs(session, moment)
        # A first epoch's destruction changes its organisation's row (the format-1 recovery key goes), and
        # each destruction is audited: those rows are locked before the first audit row.
        firsts = {row.organisation_id for row in rows if row.epoch == 1}
        lock_organisations(session, filter(None, (session.get(Organisation, id_) for id_ in firsts)))
        destroyed = []
        for row in rows:
            session.execute(
                delete(MemberKeyGrant).where(
                    MemberKeyGrant.organisation_id == row.organisation_id, MemberKeyGrant.epoch == row.epoch
                )
            )
            row.recovery_wrapped_private_key = None
            row.destroyed_at = moment
            if row.epoch == 1:
                organisation = session.get(Organisation, row.organisation_id)
                if organisation is not None:
                    organisation.recovery_sealed_private_key = None
            self._record(
                session, "organisation.key_destroyed", row.organisation_id, None, True, epoch=row.epoch
            )
            destroyed.append((row.organisation_id, row.epoch))
        session.flush()
        return destroyed


# An intake or a referral that read an epoch just before a rotation may commit its wrap after it: an epoch
# is destroyed only once it has been retired this long, far beyond any request.
DESTROY_AFTER_RETIRED = timedelta(days=1)


def unneeded_epochs(session: Session, now: datetime | None = None) -> Sequence[OrganisationKeyEpoch]:
    """Epochs retired a day or more ago, not yet destroyed, that no case key grant refers to (reads only)."""
    cutoff = (now or utcnow()) - DESTROY_AFTER_RETIRED
    still_needed = exists().where(
        CaseKeyGrant.organisation_id == OrganisationKeyEpoch.organisation_id,
        CaseKeyGrant.epoch == OrganisationKeyEpoch.epoch,
    )
    return session.scalars(
        select(OrganisationKeyEpoch)
        .join(Organisation, Organisation.id == OrganisationKeyEpoch.organisation_id)
        .where(
            OrganisationKeyEpoch.destroyed_at.is_(None),
            OrganisationKeyEpoch.epoch != Organisation.current_epoch,
            OrganisationKeyEpoch.retired_at.is_not(None),
            OrganisationKeyEpoch.retired_at < cutoff,
            ~still_needed,
        )
        .order_by(OrganisationKeyEpoch.organisation_id, OrganisationKeyEpoch.epoch)
    ).all()


def rotation_recipients(session: Session, organisation_id: str) -> Sequence[StaffUser]:
    """Who receives a new epoch: members who were granted the organisation's key before (a membership
    with nothing granted, such as a first lead named by the operator who never made the key, gets
    nothing), with a key of their own that did not come through the upgrade, and not disabled."""
    granted = exists().where(
        MemberKeyGrant.user_id == StaffUser.id, MemberKeyGrant.organisation_id == organisation_id
    )
    return session.scalars(
        select(StaffUser)
        .join(Membership, Membership.user_id == StaffUser.id)
        .where(
            Membership.organisation_id == organisation_id,
            StaffUser.public_key.is_not(None),
            StaffUser.disabled.is_(False),
            StaffUser.key_inherited.is_(False),
            granted,
        )
        .order_by(StaffUser.id)
    ).all()


def has_inherited_members(session: Session, organisation_id: str) -> bool:
    """Whether a member holding the organisation's key still has a key pair from before the upgrade."""
    found = session.scalar(
        select(StaffUser.id)
        .join(MemberKeyGrant, MemberKeyGrant.user_id == StaffUser.id)
        .where(MemberKeyGrant.organisation_id == organisation_id, StaffUser.key_inherited.is_(True))
        .limit(1)
    )
    return found is not None
