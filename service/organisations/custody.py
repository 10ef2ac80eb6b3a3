"""Who holds an organisation's keys: epochs, member grants, recovery shares.

docs/security.md, "Key hierarchy"; docs/key-custody.md.

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

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth.models import StaffUser
from service.cases.models import CaseKeyGrant
from service.crypto import (
    Context,
    CryptoError,
    DecryptionError,
    InvalidReceipt,
    PrivateKey,
    PublicKey,
    combine_shares,
    generate_keypair,
    keypair_from_seed,
    new_data_key,
    open_private_key,
    parse_share,
    seal_private_key,
    split_secret,
    unwrap_key,
    unwrap_private_key,
    wrap_key,
    wrap_private_key,
)
from service.db import new_id, utcnow
from service.organisations.models import (
    MemberKeyGrant,
    Membership,
    MembershipRole,
    Organisation,
    OrganisationKeyEpoch,
)

DEFAULT_THRESHOLD = 2
DEFAULT_SHARES = 3
MAX_CUSTODIANS = 16
CUSTODIAN_NAME_CHARS = 120


class CustodyError(ValueError):
    """A key operation that cannot be done; the message says why and never holds key material.

    ``code`` is stable: the pages translate it (``organisation.error.<code>``), never the English text.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RotationReason:
    member_removed = "member_removed"
    transfer_away = "transfer_away"
    operator = "operator"
    shares_renewed = "shares_renewed"
    upgrade = "upgrade"
    account_reset = "account_reset"
    keys_renewed = "keys_renewed"


# -- contexts ---------------------------------------------------------------------------------------------


def grant_wrap_context(organisation_id: str, user_id: str, epoch: int) -> Context:
    # Epoch 1 keeps format 1's context, so the migration moved existing grants without opening them.
    field = user_id if epoch == 1 else f"{user_id}#{epoch}"
    return Context("org_grant", record_id=organisation_id, field=field)


def member_key_context(organisation_id: str, user_id: str, epoch: int) -> Context:
    suffix = "" if epoch == 1 else f"#{epoch}"
    return Context("org_private", record_id=organisation_id, field=f"member:{user_id}{suffix}")


def recovery_epoch_context(organisation_id: str, epoch: int) -> Context:
    return Context("org_private", record_id=organisation_id, field=f"recovery#{epoch}")


# -- member grants ----------------------------------------------------------------------------------------


def seal_member_grant(
    epoch_key: PrivateKey, member_public_key: PublicKey, organisation_id: str, user_id: str, epoch: int
) -> tuple[bytes, bytes]:
    """(wrapped grant key, sealed epoch private key) for one member and epoch."""
    grant_key = new_data_key()
    wrapped = wrap_key(grant_key, member_public_key, grant_wrap_context(organisation_id, user_id, epoch))
    sealed = seal_private_key(epoch_key, grant_key, member_key_context(organisation_id, user_id, epoch))
    return wrapped, sealed


def open_member_grant(grant: MemberKeyGrant, member_private_key: PrivateKey) -> PrivateKey:
    """The epoch's private key from a member's grant; DecryptionError if this key cannot open it."""
    try:
        grant_key = unwrap_key(
            grant.wrapped_grant_key,
            member_private_key,
            grant_wrap_context(grant.organisation_id, grant.user_id, grant.epoch),
        )
    except CryptoError:
        raise DecryptionError("membership grant could not be opened") from None
    return open_private_key(
        grant.sealed_organisation_key,
        grant_key,
        member_key_context(grant.organisation_id, grant.user_id, grant.epoch),
    )


def member_grant(session: Session, user_id: str, organisation_id: str, epoch: int) -> MemberKeyGrant | None:
    return session.scalar(
        select(MemberKeyGrant).where(
            MemberKeyGrant.user_id == user_id,
            MemberKeyGrant.organisation_id == organisation_id,
            MemberKeyGrant.epoch == epoch,
        )
    )


def live_epochs(session: Session, organisation_id: str) -> Sequence[OrganisationKeyEpoch]:
    """Epochs whose private key still exists, oldest first."""
    return session.scalars(
        select(OrganisationKeyEpoch)
        .where(
            OrganisationKeyEpoch.organisation_id == organisation_id,
            OrganisationKeyEpoch.destroyed_at.is_(None),
        )
        .order_by(OrganisationKeyEpoch.epoch)
    ).all()


def member_epoch_keys(
    session: Session, user_id: str, private_key: PrivateKey, organisation_id: str
) -> dict[int, PrivateKey]:
    """Every live epoch key this member can open (the lead's side of a grant)."""
    grants = session.scalars(
        select(MemberKeyGrant).where(
            MemberKeyGrant.user_id == user_id, MemberKeyGrant.organisation_id == organisation_id
        )
    ).all()
    keys = {}
    for grant in grants:
        try:
            keys[grant.epoch] = open_member_grant(grant, private_key)
        except DecryptionError:
            continue
    return keys


def _write_member_grant(
    session: Session,
    organisation: Organisation,
    user: StaffUser,
    epoch: int,
    epoch_key: PrivateKey,
    granted_by: str | None,
) -> None:
    assert user.public_key is not None
    wrapped, sealed = seal_member_grant(
        epoch_key, PublicKey.from_bytes(user.public_key), organisation.id, user.id, epoch
    )
    existing = member_grant(session, user.id, organisation.id, epoch)
    if existing is None:
        existing = MemberKeyGrant(id=new_id(), user_id=user.id, organisation_id=organisation.id, epoch=epoch)
        session.add(existing)
    existing.wrapped_grant_key = wrapped
    existing.sealed_organisation_key = sealed
    existing.granted_by = granted_by
    existing.created_at = utcnow()


def check_grantable(user: StaffUser) -> None:
    if user.is_admin or user.is_coordinator:
        # docs/security.md: administrators and coordinators never see a case (separation of duties).
        raise CustodyError(
            "staff_role", "administrators and coordinators cannot be members of an organisation"
        )
    if user.disabled:
        raise CustodyError("disabled", "this account is disabled")
    if not user.has_key:
        raise CustodyError(
            "no_own_password",
            "this account has not set a password of its own yet; it can be granted the organisation key "
            "after its first sign-in",
        )


def grant_epochs(
    session: Session,
    organisation: Organisation,
    user: StaffUser,
    role: MembershipRole,
    epoch_keys: dict[int, PrivateKey],
    granted_by: str | None,
) -> Membership:
    """Make ``user`` a member (or change the role) and grant every live epoch in ``epoch_keys``.

    The keys must be complete: a member who could not open an older case of the organisation would be a
    member in name only, so a missing live epoch is refused rather than skipped.
    """
    check_grantable(user)
    lock_organisation(session, organisation)
    live = {row.epoch: row for row in live_epochs(session, organisation.id)}
    if not live:
        raise CustodyError("no_key", f"organisation {organisation.slug} has no key yet")
    missing = sorted(set(live) - set(epoch_keys))
    if missing:
        raise CustodyError(
            "incomplete_keys", "the granting key does not cover every key epoch of the organisation"
        )
    for epoch, row in live.items():
        if epoch_keys[epoch].public_key().raw != row.public_key:
            raise CustodyError("wrong_key", "this is not the organisation's key")
    membership = _membership(session, user.id, organisation.id)
    if membership is None:
        membership = Membership(id=new_id(), user_id=user.id, organisation_id=organisation.id)
        session.add(membership)
        membership.created_at = utcnow()
    membership.role = MembershipRole(role).value
    membership.granted_by = granted_by
    for epoch in live:
        _write_member_grant(session, organisation, user, epoch, epoch_keys[epoch], granted_by)
    session.flush()
    return membership


def _membership(session: Session, user_id: str, organisation_id: str) -> Membership | None:
    return session.scalar(
        select(Membership).where(Membership.user_id == user_id, Membership.organisation_id == organisation_id)
    )


def drop_member(session: Session, organisation_id: str, user_id: str) -> bool:
    """Delete the membership and every key grant of it; True if there was a membership."""
    session.execute(
        delete(MemberKeyGrant).where(
            MemberKeyGrant.user_id == user_id, MemberKeyGrant.organisation_id == organisation_id
        )
    )
    result = session.execute(
        delete(Membership).where(Membership.user_id == user_id, Membership.organisation_id == organisation_id)
    )
    return bool(getattr(result, "rowcount", 0))


# -- recovery shares --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustodianShare:
    custodian: str
    share: str


def clean_custodians(names: Iterable[str], threshold: int) -> list[str]:
    cleaned = [" ".join(name.split()) for name in names]
    cleaned = [name for name in cleaned if name]
    if len(cleaned) < 2 or len(cleaned) > MAX_CUSTODIANS:
        raise CustodyError("custodians", f"name between 2 and {MAX_CUSTODIANS} custodians, one per line")
    if any(len(name) > CUSTODIAN_NAME_CHARS or not name.isprintable() for name in cleaned):
        raise CustodyError(
            "custodian_name", f"a custodian's name has at most {CUSTODIAN_NAME_CHARS} printable characters"
        )
    if len({name.casefold() for name in cleaned}) != len(cleaned):
        raise CustodyError("custodian_twice", "each custodian is named once")
    if not 2 <= threshold <= len(cleaned):
        raise CustodyError(
            "threshold", "the number of shares needed must be at least 2 and at most the number of custodians"
        )
    return cleaned


def _new_recovery(
    organisation: Organisation, custodians: list[str], threshold: int
) -> tuple[PublicKey, list[CustodianShare]]:
    secret = secrets.token_bytes(32)
    _, public = keypair_from_seed(secret)
    shares = split_secret(secret, threshold, len(custodians))
    organisation.recovery_public_key = public.raw
    organisation.recovery_threshold = threshold
    organisation.recovery_share_count = len(custodians)
    organisation.recovery_renewal_needed = False
    return public, [
        CustodianShare(name, share.encode()) for name, share in zip(custodians, shares, strict=True)
    ]


def recovery_private_key(organisation: Organisation, typed_shares: Sequence[str]) -> PrivateKey:
    """The recovery private key from k typed shares; CustodyError (naming the problem, never a share)."""
    if organisation.recovery_public_key is None:
        raise CustodyError("no_shares", f"organisation {organisation.slug} has no recovery shares")
    try:
        parsed = [parse_share(text) for text in typed_shares]
    except InvalidReceipt as exc:
        raise CustodyError("share_typo", str(exc)) from None
    try:
        secret = combine_shares(parsed)
    except ValueError as exc:
        raise CustodyError("shares", str(exc)) from None
    private, public = keypair_from_seed(secret)
    if public.raw != organisation.recovery_public_key:
        raise CustodyError(
            "shares_foreign",
            f"these shares do not belong to organisation {organisation.slug} (or one is wrong)",
        )
    return private


def open_epochs_with_recovery(
    session: Session, organisation: Organisation, recovery_key: PrivateKey
) -> dict[int, PrivateKey]:
    keys = {}
    for row in live_epochs(session, organisation.id):
        if row.recovery_wrapped_private_key is None:
            continue
        keys[row.epoch] = unwrap_private_key(
            row.recovery_wrapped_private_key, recovery_key, recovery_epoch_context(organisation.id, row.epoch)
        )
    return keys


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
        recovery_public, shares = _new_recovery(organisation, names, threshold)
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
            _write_member_grant(session, organisation, user, epoch, private, actor_id)
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
        live = live_epochs(session, organisation.id)
        if any(row.epoch not in epoch_keys for row in live):
            raise CustodyError(
                "incomplete_keys", "the renewing key does not cover every key epoch of the organisation"
            )
        recovery_public, shares = _new_recovery(organisation, names, threshold)
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


def lock_organisation(session: Session, organisation: Organisation) -> None:
    """Serialise key changes of one organisation (SELECT ... FOR UPDATE; SQLite has one writer anyway)."""
    if session.get_bind().dialect.name != "sqlite":
        # Flushed first: a refresh would otherwise drop what the caller changed on the row already.
        session.flush()
        session.refresh(organisation, with_for_update=True)
