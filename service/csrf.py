"""CSRF tokens for HTML forms, bound to the session they are used in, as the API's header token is.

A form token is an HMAC under the server key of what the browser's cookies say about who it is: the staff
session, else the reporter session, else (signed out) a random HttpOnly, SameSite=Strict cookie of its own.
A page from another site can neither read nor forge it. A sibling subdomain that can set cookies for the
parent domain (cookie tossing) could plant a CSRF cookie whose token it knows: that token is worthless once
the victim is signed in, because the token of a signed-in browser is bound to its session, which the
attacker does not know. Behind TLS every cookie carries the ``__Host-`` prefix, which a sibling cannot set
at all; the signed-out cookie is replaced at every sign-in.
"""

from __future__ import annotations

import secrets

from service.crypto import constant_time_equal, keyed_hash

COOKIE = "rh_csrf"
# The session cookies a form token is bound to (their names before any __Host- prefix).
STAFF_COOKIE = "rh_staff"
REPORTER_COOKIE = "rh_reporter"


def new_cookie_value() -> str:
    return secrets.token_urlsafe(32)


def token_for(key: bytes, binding: str) -> str:
    """The form token for a binding: ``staff:<session id hash>``, ``reporter:<…>`` or ``anon:<cookie>``."""
    return keyed_hash(key, "csrf/v2", binding.encode()).hex()


def valid(key: bytes, binding: str | None, token: str | None) -> bool:
    if not binding or not token or len(token) != 64:
        return False
    return constant_time_equal(token_for(key, binding).encode(), token.encode())
