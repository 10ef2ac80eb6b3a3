"""Setting up support organisations and their key pairs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.crypto import (
    Context,
    generate_keypair,
    new_recovery_key,
    recovery_wrapping_key,
    seal_private_key,
)
from service.db import new_id
from service.organisations import repository
from service.organisations.models import Organisation

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
