"""Signatures of outgoing webhooks: HMAC-SHA256 over "<timestamp>.<body>" (documented in docs/webhooks.md).

The timestamp is inside the signed bytes, so a receiver that refuses timestamps outside a short window also
refuses a captured request replayed later. The scheme is the one Stripe and GitHub receivers already know.
"""

from __future__ import annotations

import hashlib
import hmac

from service.crypto.keyed import keyed_hash

SIGNATURE_VERSION = "v1"
DEFAULT_REPLAY_WINDOW_SECONDS = 300


def webhook_secret(notification_key: bytes, organisation_id: str) -> bytes:
    """Each organisation's signing secret, derived and never stored (a database thief cannot forge)."""
    return keyed_hash(notification_key, "webhook-secret", organisation_id.encode())


def sign_webhook(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={mac}"


def verify_webhook(
    secret: bytes,
    signature: str,
    timestamp: int,
    body: bytes,
    now: int,
    window_seconds: int = DEFAULT_REPLAY_WINDOW_SECONDS,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent (both, in constant time)."""
    fresh = abs(now - timestamp) <= window_seconds
    expected = sign_webhook(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), signature.encode()) and fresh
