"""Queries of the notification feature: who the recipients are, and what was already delivered."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.cases.models import Case
from service.db import new_id, utcnow
from service.identity.models import Membership, Organisation, StaffUser
from service.notifications.recipients import Member, OrganisationInfo
from service.outbox.models import DeliveryLog, OutboxMessage

ROTA_KIND = "fallback_rota"


def outbox_row(session: Session, outbox_id: str) -> OutboxMessage | None:
    return session.get(OutboxMessage, outbox_id)


def _members_of(session: Session, organisation_ids: Collection[str]) -> dict[str, list[Member]]:
    rows = session.execute(
        select(Membership.organisation_id, StaffUser.id, StaffUser.email)
        .join(StaffUser, StaffUser.id == Membership.user_id)
        .where(Membership.organisation_id.in_(list(organisation_ids)), StaffUser.disabled.is_(False))
        .order_by(StaffUser.email)
    ).all()
    found: dict[str, list[Member]] = {}
    for org_id, user_id, email in rows:
        found.setdefault(org_id, []).append(Member(user_id=user_id, email=email))
    return found


def organisations(session: Session, organisation_ids: Collection[str]) -> dict[str, OrganisationInfo]:
    if not organisation_ids:
        return {}
    orgs = session.scalars(
        select(Organisation).where(Organisation.id.in_(list(organisation_ids)), Organisation.active.is_(True))
    ).all()
    members = _members_of(session, [org.id for org in orgs])
    return {
        org.id: OrganisationInfo(
            id=org.id,
            slug=org.slug,
            display_name=org.display_name,
            members=tuple(members.get(org.id, [])),
            webhook_url=org.webhook_url,
        )
        for org in orgs
    }


def coordinators(session: Session) -> tuple[Member, ...]:
    rows = session.execute(
        select(StaffUser.id, StaffUser.email)
        .where(StaffUser.is_coordinator.is_(True), StaffUser.disabled.is_(False))
        .order_by(StaffUser.email)
    ).all()
    return tuple(Member(user_id=row[0], email=row[1]) for row in rows)


def rota(session: Session) -> tuple[Member, ...]:
    ids = session.scalars(
        select(Organisation.id).where(Organisation.kind == ROTA_KIND, Organisation.active.is_(True))
    ).all()
    members = _members_of(session, ids)
    return tuple(member for org_id in ids for member in members.get(org_id, []))


def case_contact(session: Session, case_id: str) -> tuple[bytes | None, str | None] | None:
    """(sealed notification address, assignee) of a case; None if the case is gone (purged)."""
    row = session.execute(select(Case.notify_ciphertext, Case.assignee_id).where(Case.id == case_id)).first()
    return (row[0], row[1]) if row is not None else None


def delivered_keys(session: Session, outbox_id: str) -> set[str]:
    return set(session.scalars(select(DeliveryLog.recipient_key).where(DeliveryLog.outbox_id == outbox_id)))


def record_delivery(session: Session, outbox_id: str, recipient_key: str, channel: str) -> None:
    """Insert-if-absent: two workers racing on a redelivered task record the delivery once."""
    values = {
        "id": new_id(),
        "outbox_id": outbox_id,
        "recipient_key": recipient_key,
        "channel": channel,
        "delivered_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(DeliveryLog).values(values).on_conflict_do_nothing())
    else:
        session.execute(sqlite_insert(DeliveryLog).values(values).on_conflict_do_nothing())
