"""Queries on organisations; nothing else builds them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.organisations.models import Organisation


def by_slug(session: Session, slug: str) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.slug == slug))


def all_organisations(session: Session) -> Sequence[Organisation]:
    return session.scalars(select(Organisation).order_by(Organisation.slug)).all()


def receivers(session: Session) -> dict[str, Organisation]:
    """Organisations that can receive a case now: active and holding a public key."""
    rows = session.scalars(
        select(Organisation).where(Organisation.active.is_(True), Organisation.public_key.is_not(None))
    ).all()
    return {org.slug: org for org in rows}
