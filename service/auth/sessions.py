"""Split-key sessions (docs/security.md, "Sessions").

The cookie carries a session id and a random cookie key. The database keeps the SHA-256 of the id and the
unlocked secret sealed under the cookie key. Neither half alone opens anything: a stolen database has no
cookie keys, a stolen cookie without the database has no ciphertext, and logout deletes the server half.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from service.auth.models import WebSession
from service.crypto import Context, DecryptionError, open_sealed, seal
from service.db import utcnow
from service.session_cookie import ID_BYTES, KEY_BYTES, b64, hash_id, parse

# Logout, the authorisation tests and the CSRF binding ask for the stored key of a cookie by this name.
from service.session_cookie import id_hash_of as id_hash_of


@dataclass(frozen=True)
class SessionPolicy:
    kind: str
    idle: timedelta
    absolute: timedelta


REPORTER_SESSION = SessionPolicy("reporter", idle=timedelta(minutes=20), absolute=timedelta(hours=2))
# A working day at most; half an hour away from the desk ends it. The secret is the unlocked user key.
STAFF_SESSION = SessionPolicy("staff", idle=timedelta(minutes=30), absolute=timedelta(hours=12))


@dataclass(frozen=True)
class OpenSession:
    id_hash: str
    subject_id: str
    secret: bytes


def _context(policy: SessionPolicy, id_hash: str) -> Context:
    return Context("session", field=policy.kind, record_id=id_hash)


def create(session: Session, policy: SessionPolicy, subject_id: str, secret: bytes) -> str:
    """Store the server half and return the cookie value. The caller commits."""
    session_id = secrets.token_bytes(ID_BYTES)
    cookie_key = secrets.token_bytes(KEY_BYTES)
    id_hash = hash_id(session_id)
    now = utcnow()
    session.add(
        WebSession(
            id_hash=id_hash,
            kind=policy.kind,
            subject_id=subject_id,
            sealed_secret=seal(cookie_key, secret, _context(policy, id_hash)),
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.absolute,
        )
    )
    return f"{b64(session_id)}.{b64(cookie_key)}"


def open_session(session: Session, policy: SessionPolicy, cookie: str | None) -> OpenSession | None:
    """Open a session from its cookie, or None if missing, forged, idle too long or expired.

    Notes the visit (``last_seen_at``) and deletes a dead session's row; the caller commits, also when
    this returns None (the deletion of a dead session must stay)."""
    if not cookie:
        return None
    parsed = parse(cookie)
    if parsed is None:
        return None
    session_id, cookie_key = parsed
    id_hash = hash_id(session_id)
    row = session.get(WebSession, id_hash)
    if row is None or row.kind != policy.kind:
        return None
    now = utcnow()
    if now >= row.expires_at or now - row.last_seen_at > policy.idle:
        session.delete(row)
        return None
    try:
        secret = open_sealed(cookie_key, row.sealed_secret, _context(policy, id_hash))
    except DecryptionError:
        return None
    row.last_seen_at = now
    return OpenSession(id_hash=id_hash, subject_id=row.subject_id, secret=secret)


def end_session(session: Session, cookie: str | None) -> bool:
    """Delete the server half of the session behind ``cookie`` (sign-out); False for a cookie that names no
    session at all. The caller commits."""
    parsed = parse(cookie) if cookie else None
    if parsed is None:
        return False
    session.execute(delete(WebSession).where(WebSession.id_hash == hash_id(parsed[0])))
    return True


def destroy_all_of(session: Session, policy: SessionPolicy, subject_id: str, keep_id_hash: str = "") -> int:
    """End every session of a subject (disabled account, reset, new password) but ``keep_id_hash``.

    The caller commits, so the sessions end in the same transaction as the change that ends them.
    """
    result = session.execute(
        delete(WebSession).where(
            WebSession.kind == policy.kind,
            WebSession.subject_id == subject_id,
            WebSession.id_hash != keep_id_hash,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def reseal(session: Session, policy: SessionPolicy, cookie: str | None, secret: bytes) -> bool:
    """Replace the unlocked secret of the session behind ``cookie`` (its id and cookie stay): the first own
    password makes the account's key pair in the middle of a session. The caller commits."""
    parsed = parse(cookie) if cookie else None
    if parsed is None:
        return False
    session_id, cookie_key = parsed
    id_hash = hash_id(session_id)
    row = session.get(WebSession, id_hash)
    if row is None or row.kind != policy.kind:
        return False
    row.sealed_secret = seal(cookie_key, secret, _context(policy, id_hash))
    return True


# Every kind of session there is: the purge needs each one's idle window.
POLICIES = (REPORTER_SESSION, STAFF_SESSION)


def _dead(now: datetime) -> ColumnElement[bool]:
    """Sessions that ``resume`` would refuse at ``now``: past their absolute end, or idle too long."""
    idle = [
        and_(WebSession.kind == policy.kind, WebSession.last_seen_at < now - policy.idle)
        for policy in POLICIES
    ]
    return or_(WebSession.expires_at <= now, *idle)


def count_expired(session: Session, now: datetime) -> int:
    return int(session.scalar(select(func.count()).select_from(WebSession).where(_dead(now))) or 0)


def purge_expired(session: Session, now: datetime) -> int:
    """Delete every session that can no longer be resumed (the retention purge, daily). A dead session is
    deleted when its cookie comes back; one whose cookie never does would otherwise keep its sealed secret
    (a reporter's case key, a counsellor's private key) in the database for good. The caller commits."""
    statement = delete(WebSession).where(_dead(now)).execution_options(synchronize_session=False)
    return int(getattr(session.execute(statement), "rowcount", 0) or 0)
