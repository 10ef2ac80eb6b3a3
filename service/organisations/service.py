"""Setting up support organisations (their keys are ``custody``'s: the operator never makes them)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth.subject import Subject
from service.db import new_id, utcnow
from service.errors import NotFound
from service.identity import repository
from service.identity.custody import KeyCustody
from service.identity.grants import CustodyError, live_epochs
from service.identity.models import Organisation, StaffUser
from service.identity.recovery import CustodianShare

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


# -- the lead's view and acts (pages and API) -------------------------------------------------------------


@dataclass(frozen=True)
class MemberRow:
    user_id: str
    display_name: str
    email: str
    role: str
    # False for a member named before the key existed, or whose grants a reset removed.
    holds_keys: bool


@dataclass(frozen=True)
class OrganisationOverview:
    id: str
    slug: str
    name: str
    role: str
    has_key: bool


@dataclass(frozen=True)
class LeadView:
    id: str
    slug: str
    name: str
    has_key: bool
    current_epoch: int
    live_epochs: int
    recovery_threshold: int | None
    recovery_share_count: int | None
    recovery_renewal_needed: bool
    members: list[MemberRow]


def my_organisations(session: Session, user_id: str) -> list[OrganisationOverview]:
    return [
        OrganisationOverview(org.id, org.slug, org.display_name, membership.role, org.public_key is not None)
        for membership, org in repository.memberships_of(session, user_id)
    ]


def lead_organisation(session: Session, subject: Subject, organisation_id: str) -> Organisation:
    """The organisation if the subject leads it; NotFound otherwise (also for one that does not exist)."""
    if not subject.is_lead_of(organisation_id):
        raise NotFound()
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFound()
    return organisation


def lead_view(session: Session, subject: Subject, organisation_id: str) -> LeadView:
    organisation = lead_organisation(session, subject, organisation_id)
    live = live_epochs(session, organisation.id)
    with_keys = repository.members_holding_epoch(session, organisation.id, organisation.current_epoch)
    members = [
        MemberRow(user.id, user.display_name, user.email, membership.role, user.id in with_keys)
        for membership, user in repository.members_of(session, organisation.id)
    ]
    return LeadView(
        id=organisation.id,
        slug=organisation.slug,
        name=organisation.display_name,
        has_key=organisation.public_key is not None,
        current_epoch=organisation.current_epoch,
        live_epochs=len(live),
        recovery_threshold=organisation.recovery_threshold,
        recovery_share_count=organisation.recovery_share_count,
        recovery_renewal_needed=organisation.recovery_renewal_needed,
        members=members,
    )


def set_up_keys_as_lead(
    session: Session,
    custody: KeyCustody,
    subject: Subject,
    organisation_id: str,
    custodians: Sequence[str],
    threshold: int,
) -> list[CustodianShare]:
    """The first lead makes the key pair; the shares come back once, to be printed for the custodians."""
    organisation = lead_organisation(session, subject, organisation_id)
    user = session.get(StaffUser, subject.user_id)
    if user is None or subject.private_key is None:
        raise NotFound()
    return custody.set_up(
        session,
        organisation,
        custodians,
        threshold,
        lead=(user, subject.private_key),
        actor_id=subject.user_id,
    )


def renew_shares_as_lead(
    session: Session,
    custody: KeyCustody,
    subject: Subject,
    organisation_id: str,
    custodians: Sequence[str],
    threshold: int,
) -> list[CustodianShare]:
    organisation = lead_organisation(session, subject, organisation_id)
    if organisation.public_key is None:
        raise CustodyError("no_key", f"organisation {organisation.slug} has no key yet")
    keys = subject.epoch_keys(session, organisation.id)
    return custody.renew_shares(session, organisation, keys, custodians, threshold, subject.user_id)
