"""Setting up support organisations and their key pairs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.crypto import (
    Context,
    CryptoError,
    DecryptionError,
    InvalidReceipt,
    PrivateKey,
    PublicKey,
    generate_keypair,
    new_data_key,
    new_recovery_key,
    open_private_key,
    recovery_wrapping_key,
    seal_private_key,
    unwrap_key,
    wrap_key,
)
from service.db import new_id
from service.organisations import repository
from service.organisations.models import Membership, Organisation

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
KINDS = ("counselling", "online_hate", "legal_aid", "police_liaison", "fallback_rota")


class OrganisationError(ValueError):
    pass


@dataclass(frozen=True)
class CreatedOrganisation:
    organisation: Organisation
    # Shown exactly once; the service keeps only what it seals.
    recovery_key: str


def recovery_context(organisation_id: str) -> Context:
    return Context("org_private", record_id=organisation_id, field="recovery")


def create_organisation(session: Session, slug: str, display_name: str, kind: str) -> CreatedOrganisation:
    """Create an organisation with a fresh key pair; its private key is sealed to a new recovery key."""
    if not SLUG_PATTERN.match(slug):
        raise OrganisationError("slug: lowercase letters, digits and dashes, 2-63 characters")
    if kind not in KINDS:
        raise OrganisationError(f"kind must be one of {', '.join(KINDS)}")
    if not display_name.strip() or len(display_name) > 200:
        raise OrganisationError("display name: 1-200 characters")
    existing = repository.by_slug(session, slug)
    if existing is not None and existing.public_key is not None:
        raise OrganisationError(f"organisation {slug} exists already and has a key")
    organisation = existing or Organisation(id=new_id(), slug=slug)
    organisation.display_name = display_name.strip()
    organisation.kind = kind
    organisation.active = True
    private, public = generate_keypair()
    recovery_key = new_recovery_key()
    organisation.public_key = public.raw
    organisation.recovery_sealed_private_key = seal_private_key(
        private, recovery_wrapping_key(recovery_key), recovery_context(organisation.id)
    )
    session.add(organisation)
    return CreatedOrganisation(organisation=organisation, recovery_key=recovery_key)


def open_with_recovery_key(organisation: Organisation, recovery_key: str) -> PrivateKey:
    """The organisation private key, opened with the recovery key; OrganisationError if it does not fit."""
    if organisation.recovery_sealed_private_key is None:
        raise OrganisationError(f"organisation {organisation.slug} has no key yet")
    try:
        return open_private_key(
            organisation.recovery_sealed_private_key,
            recovery_wrapping_key(recovery_key),
            recovery_context(organisation.id),
        )
    except (DecryptionError, InvalidReceipt):
        # Never echo the key that was typed: it may be one character off a real one.
        raise OrganisationError(
            f"this recovery key does not open the key of organisation {organisation.slug}"
        ) from None


# -- the organisation key granted to a member ----------------------------------------------------------


def grant_wrap_context(organisation_id: str, user_id: str) -> Context:
    return Context("org_grant", record_id=organisation_id, field=user_id)


def member_key_context(organisation_id: str, user_id: str) -> Context:
    # Distinct from recovery_context (field "recovery"), so a member grant can never pass for the other.
    return Context("org_private", record_id=organisation_id, field=f"member:{user_id}")


def seal_grant(
    organisation_key: PrivateKey, member_public_key: PublicKey, organisation_id: str, user_id: str
) -> tuple[bytes, bytes]:
    """(wrapped grant key, sealed organisation key) for a member.

    HPKE wraps 32-byte keys only, so the 96-byte private key is sealed under a fresh grant key and the
    grant key is wrapped to the member: only the member's unlocked user key opens it.
    """
    grant_key = new_data_key()
    wrapped = wrap_key(grant_key, member_public_key, grant_wrap_context(organisation_id, user_id))
    sealed = seal_private_key(organisation_key, grant_key, member_key_context(organisation_id, user_id))
    return wrapped, sealed


def open_grant(membership: Membership, member_private_key: PrivateKey) -> PrivateKey:
    """The organisation private key from a member's grant; DecryptionError if this key cannot open it."""
    context = grant_wrap_context(membership.organisation_id, membership.user_id)
    try:
        grant_key = unwrap_key(membership.wrapped_grant_key, member_private_key, context)
    except CryptoError:
        raise DecryptionError("membership grant could not be opened") from None
    return open_private_key(
        membership.sealed_organisation_key,
        grant_key,
        member_key_context(membership.organisation_id, membership.user_id),
    )
