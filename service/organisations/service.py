"""Setting up support organisations (their keys are ``custody``'s: the operator never makes them)."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.db import new_id, utcnow
from service.organisations import repository
from service.organisations.models import Organisation

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
KINDS = ("counselling", "online_hate", "legal_aid", "police_liaison", "fallback_rota")


class OrganisationError(ValueError):
    pass


def create_organisation(
    session: Session, slug: str, display_name: str, kind: str, audit: AuditLog | None = None
) -> Organisation:
    """A new organisation without a key: it receives no case until its first lead has made the key pair
    and handed out the recovery shares (``/intern/organisationen``). Audited as the operator's act."""
    if not SLUG_PATTERN.match(slug):
        raise OrganisationError("slug: lowercase letters, digits and dashes, 2-63 characters")
    if kind not in KINDS:
        raise OrganisationError(f"kind must be one of {', '.join(KINDS)}")
    if not display_name.strip() or len(display_name) > 200:
        raise OrganisationError("display name: 1-200 characters")
    if repository.by_slug(session, slug) is not None:
        raise OrganisationError(f"organisation {slug} exists already")
    organisation = Organisation(
        id=new_id(),
        slug=slug,
        display_name=display_name.strip(),
        kind=kind,
        public_key=None,
        current_epoch=0,
        recovery_renewal_needed=False,
        active=True,
        created_at=utcnow(),
    )
    session.add(organisation)
    session.flush()
    if audit is not None:
        audit.append(
            session,
            actor_kind="operator",
            actor_id=None,
            action="organisation.create",
            object_type="organisation",
            object_id=organisation.id,
            details={"kind": kind},
        )
    return organisation
