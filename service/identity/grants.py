"""The member grants of an organisation key: one epoch's private key, sealed for one member.

docs/key-custody.md. A grant is made only with the whole key (every live epoch), only to an account with
a password of its own, never to an administrator or coordinator; revoking is deleting the rows. Nothing
here commits or audits: ``KeyCustody`` (``service/identity/custody.py``) and the account service do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.audit import chain_held
from service.crypto import (
    Context,
    CryptoError,
    DecryptionError,
    PrivateKey,
    PublicKey,
    new_data_key,
    open_private_key,
    seal_private_key,
    unwrap_key,
    wrap_key,
)
from service.db import new_id, of_this_transaction, utcnow
from service.identity.models import (
    MemberKeyGrant,
    Membership,
    MembershipRole,
    Organisation,
    OrganisationKeyEpoch,
    StaffUser,
)


class CustodyError(ValueError):
    """A key operation that cannot be done; the message says why and never holds key material.

    ``code`` is stable: the pages translate it (``organisation.error.<code>``), never the English text.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- contexts ---------------------------------------------------------------------------------------------


def grant_wrap_context(organisation_id: str, user_id: str, epoch: int) -> Context:
    # Epoch 1 keeps format 1's context, so the migration moved existing grants without opening them.
    field = user_id if epoch == 1 else f"{user_id}#{epoch}"
    return Context("org_grant", record_id=organisation_id, field=field)


def member_key_context(organisation_id: str, user_id: str, epoch: int) -> Context:
    suffix = "" if epoch == 1 else f"#{epoch}"
    return Context("org_private", record_id=organisation_id, field=f"member:{user_id}{suffix}")


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


def write_member_grant(
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
        write_member_grant(session, organisation, user, epoch, epoch_keys[epoch], granted_by)
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


def lock_organisation(session: Session, organisation: Organisation) -> None:
    """Serialise key changes of one organisation (SELECT ... FOR UPDATE; SQLite has one writer anyway).

    Before the audit chain or not at all: a filing holds the organisation's row shared (its grants'
    guard) and may then append to the chain (a match that fires), so a transaction that holds the chain and
    then waits for the row would wait for the filing while the filing waits for it. A transaction that
    rotates several organisations locks them all first (``lock_organisations``); an organisation locked
    once in a transaction is not locked again. RuntimeError for the order refused, on both databases, so a
    path that would risk the deadlock under load fails in every test that takes it."""
    # Begun first (SQLite locks nothing here): the record below belongs to this transaction. Savepoints are
    # not told apart (none is used): a lock taken in one that rolls back would still count as held.
    session.connection()
    locked = of_this_transaction(session, _LOCKED, set[str])
    if organisation.id in locked:
        return
    if chain_held(session):
        raise RuntimeError(
            "an organisation's row was to be locked after the audit chain's lock (AuditLog's deadlock "
            "order): lock it before the first append"
        )
    if session.get_bind().dialect.name != "sqlite":
        # Flushed first: a refresh would otherwise drop what the caller changed on the row already.
        session.flush()
        session.refresh(organisation, with_for_update=True)
    locked.add(organisation.id)


def lock_organisations(session: Session, organisations: Iterable[Organisation]) -> None:
    """Lock each of ``organisations`` (``lock_organisation``) in the order of their ids, as a filing's
    grants hold them, so that two such transactions never wait for each other in a circle."""
    for organisation in sorted(organisations, key=lambda organisation: organisation.id):
        lock_organisation(session, organisation)


# The organisations whose rows the current transaction has locked (``lock_organisation``).
_LOCKED = "rueckhalt.organisations_locked"
