"""CSRF tokens for HTML forms: a random HttpOnly, SameSite=Strict cookie and a form token bound to it.

The form token is an HMAC of the cookie value, so a page from another site can neither read nor forge it.
"""

from __future__ import annotations

import secrets

from service.crypto import constant_time_equal, keyed_hash

COOKIE = "rh_csrf"


def new_cookie_value() -> str:
    return secrets.token_urlsafe(32)


def token_for(key: bytes, cookie_value: str) -> str:
    return keyed_hash(key, "csrf", cookie_value.encode()).hex()


def valid(key: bytes, cookie_value: str | None, token: str | None) -> bool:
    if not cookie_value or not token or len(token) != 64:
        return False
    return constant_time_equal(token_for(key, cookie_value).encode(), token.encode())
