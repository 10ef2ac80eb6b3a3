"""Queries on staff accounts and their recovery codes; nothing else builds them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from service.auth.models import RecoveryCode
from service.identity.models import StaffUser


def user_by_email(session: Session, email: str) -> StaffUser | None:
    return session.scalar(select(StaffUser).where(StaffUser.email == email))


def user_by_id(session: Session, user_id: str) -> StaffUser | None:
    return session.get(StaffUser, user_id)


def all_users(session: Session) -> Sequence[StaffUser]:
    return session.scalars(select(StaffUser).order_by(StaffUser.email)).all()


def consume_totp_step(session: Session, user_id: str, step: int) -> bool:
    """Record ``step`` as used, only if it is newer than the last one; False if another request was first.

    One conditional UPDATE, so two requests carrying the same code cannot both pass, on either database.
    """
    result = session.execute(
        update(StaffUser)
        .where(
            StaffUser.id == user_id,
            or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    consumed = bool(getattr(result, "rowcount", 0))
    user = session.get(StaffUser, user_id)
    if user is not None:
        session.refresh(user, ["totp_last_step"])
    return consumed


def consume_recovery_code(session: Session, user_id: str, code_hash: str) -> bool:
    """Delete the code if it belongs to the user; True only for the one request that deleted it."""
    result = session.execute(
        delete(RecoveryCode).where(RecoveryCode.user_id == user_id, RecoveryCode.code_hash == code_hash)
    )
    return bool(getattr(result, "rowcount", 0))


def replace_recovery_codes(session: Session, user_id: str, code_hashes: Iterable[str]) -> None:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.add_all(RecoveryCode(user_id=user_id, code_hash=code_hash) for code_hash in code_hashes)


def recovery_codes_left(session: Session, user_id: str) -> int:
    count = session.scalar(
        select(func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == user_id)
    )
    return int(count or 0)
