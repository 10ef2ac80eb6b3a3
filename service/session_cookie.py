"""The session cookie's format: ``<id>.<key>``, two random halves in URL-safe base64, and the stored key of
the id (its SHA-256), under which the server half is found (service/auth/sessions.py, docs/security.md).

Shared infrastructure beside ``csrf``: the web plumbing binds a form token to the session a cookie names
without opening the session, and so needs the format, not the session store of ``auth``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

ID_BYTES = 32
KEY_BYTES = 32


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_id(session_id: bytes) -> str:
    return hashlib.sha256(b"rueckhalt/session-id/v1" + session_id).hexdigest()


def parse(cookie: str) -> tuple[bytes, bytes] | None:
    try:
        id_part, key_part = cookie.split(".", 1)
        session_id, cookie_key = unb64(id_part), unb64(key_part)
    except (ValueError, binascii.Error):
        return None
    if len(session_id) != ID_BYTES or len(cookie_key) != KEY_BYTES:
        return None
    return session_id, cookie_key


def id_hash_of(cookie: str | None) -> str | None:
    """The stored key of a session cookie, without opening it (logout, CSRF binding)."""
    parsed = parse(cookie) if cookie else None
    return None if parsed is None else hash_id(parsed[0])
