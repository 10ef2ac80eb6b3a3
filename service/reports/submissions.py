"""Single-use submission tokens: one view of a reporter's form files at most one report (or incident).

Why: the reporter pages are no-store and the CSRF token is the same for every view in a browser, so Back
(or a second tap on a slow connection) and send filed the same report again, with a second receipt. Now
every view of the form carries a token of its own. The service records it as used in the same transaction
that files the report, by one insert that either adds the row or finds it there (atomic on both databases:
two submissions at once with the same token file exactly one case). A submission with a used token files
nothing and is told that the report was received.

What the database learns: a used token is stored as a keyed hash (the session key, never in the database)
with the hour it expires. Nothing in clear links it to the case it produced: no case id, no receipt, no time
of use (the expiry is the time of the form view plus a day, to the hour), no client address. A report
form's row also holds the receipt page's answer sealed under a second keyed hash of the token, which only
the token's holder can have computed (answer_again.py): a second tap is shown its receipt, not "already
sent", for a quarter of an hour. A token that is only
viewed is stored nowhere: it carries its purpose and expiry under a MAC, so a flood of form views writes no
row, and an expired or forged token is known without a look-up. A used row is kept for a day past its
token's expiry (``USED_KEPT_AFTER_EXPIRY``), so that a view that filed near the end of its day and is sent
again after it is answered as sent twice, not shown the form again to file a second time; the retention
purge deletes it then.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from service.crypto import constant_time_equal, keyed_hash
from service.db import ceil_time

# Long enough to write a report in several sittings; a token past it is refused as expired, and the form
# comes back with everything typed and a new token.
TOKEN_LIFETIME = timedelta(hours=24)
# How long the row of a used token outlives the token (see the module's docstring).
USED_KEPT_AFTER_EXPIRY = timedelta(days=1)
_NONCE_BYTES = 16
_VERSION = "s1"
# The purpose of the public report form; a further incident's is bound to its case (``incident_purpose``).
REPORT_PURPOSE = "report"


def incident_purpose(case_id: str) -> str:
    return f"incident:{case_id}"


def message_purpose(case_id: str) -> str:
    """The reporter's message form on /fall: a second tap on "send" does not send the message twice."""
    return f"message:{case_id}"


class TokenState(StrEnum):
    valid = "valid"
    expired = "expired"
    # Missing, malformed, forged, or made for another form.
    unknown = "unknown"


@dataclass(frozen=True)
class SubmissionClaim:
    """What the service stores when it files with a token: the token's keyed hash and its expiry; and the
    key that seals the receipt page's answer for a second submission of the same view (answer_again.py).

    Both are keyed hashes of the whole token under the session key, with different labels: the stored hash
    does not yield the key, and the key needs the token, which only the reporter's browser holds."""

    token_hash: bytes
    expires_at: datetime
    answer_key: bytes = field(repr=False)


@dataclass(frozen=True)
class CheckedToken:
    state: TokenState
    # For a token made here (valid or expired); None for one that is not.
    claim: SubmissionClaim | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hour_after(now: datetime) -> datetime:
    """``now`` plus the lifetime, rounded up to the hour (a token lives at least its lifetime)."""
    return ceil_time(now.astimezone(UTC) + TOKEN_LIFETIME, 3600)


class SubmissionTokens:
    def __init__(self, key: bytes, previous: tuple[bytes, ...] = ()) -> None:
        """``previous``: the session key before a rotation (``rueckhalt secrets rotate``), still accepted, so
        that a form opened before it files, and a second tap after it finds what the first one kept."""
        self._key = key
        self._keys = (key, *previous)

    def _mac(self, purpose: str, expires: int, nonce: str, key: bytes | None = None) -> bytes:
        message = f"{purpose}|{expires}|{nonce}".encode()
        return keyed_hash(self._key if key is None else key, "submission-token/v1", message)

    def issue(self, purpose: str, now: datetime) -> str:
        """A new token for one view of the form ``purpose``."""
        expires = int(_hour_after(now).timestamp())
        nonce = _b64(secrets.token_bytes(_NONCE_BYTES))
        return f"{_VERSION}.{expires}.{nonce}.{_b64(self._mac(purpose, expires, nonce))}"

    def idempotent(self, key: str | None, body: bytes, now: datetime) -> tuple[SubmissionClaim, ...]:
        """The claims of a JSON client's ``Idempotency-Key`` for this body (``ReportCreate`` as JSON): under
        the current session key first, then under each previous one, for a retry across a rotation; none
        without a key.

        The key and the body together name the claim: a retry of the same report finds the first filing
        and its kept answer (answer_again.py); the same key with another body is another report, filed
        on its own, so a client that reuses a key loses nothing and learns nothing of the first. Opening a
        kept answer takes the body as well as the key, which a client may have chosen carelessly."""
        if key is None:
            return ()
        material = key.encode() + b"\x00" + body  # the key's characters exclude NUL: one split only
        return tuple(
            SubmissionClaim(
                token_hash=keyed_hash(secret, "idempotency-key-id/v1", material),
                expires_at=_hour_after(now),
                answer_key=keyed_hash(secret, "idempotency-answer-key/v1", material),
            )
            for secret in self._keys
        )

    def once(self, key: str | None, scope: str, text: str, now: datetime) -> tuple[SubmissionClaim, ...]:
        """The claims of an ``Idempotency-Key`` for a message or a note (``IntakeService.claim_once``): of
        the key, where it was written (``scope``: its kind and case) and its text; none without a key."""
        return self.idempotent(key, scope.encode() + b"\x00" + text.encode(), now)

    def check(self, token: str | None, purpose: str, now: datetime, content: bytes = b"") -> CheckedToken:
        """Whether ``token`` was made here for ``purpose`` and is still within its lifetime.

        Says nothing about use: that is decided by the insert in the filing transaction. ``content``: what a
        message or note form sent (``evidence.uploads.form_content``), part of the claim: the same view sent
        again with the same text finds it used, while a new text typed into a view restored by Back is a
        claim of its own and is stored, never dropped as "already sent"."""
        if not token or len(token) > 200:
            return CheckedToken(TokenState.unknown)
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit():
            return CheckedToken(TokenState.unknown)
        _, expires_text, nonce, mac_text = parts
        try:
            mac = _unb64(mac_text)
        except (binascii.Error, ValueError):
            return CheckedToken(TokenState.unknown)
        expires = int(expires_text)
        # The key that made the token names its row and seals its answer: the same before and after a
        # rotation, so a second tap finds the first one's row.
        made_with = next(
            (key for key in self._keys if constant_time_equal(mac, self._mac(purpose, expires, nonce, key))),
            None,
        )
        if made_with is None:
            return CheckedToken(TokenState.unknown)
        expires_at = datetime.fromtimestamp(expires, UTC)
        token_hash = (
            keyed_hash(made_with, "submission-content-id/v1", token.encode() + b"\x00" + content)
            if content
            else keyed_hash(made_with, "submission-token-id/v1", token.encode())
        )
        answer_key = keyed_hash(made_with, "submission-answer-key/v1", token.encode())
        claim = SubmissionClaim(token_hash=token_hash, expires_at=expires_at, answer_key=answer_key)
        # An expired token keeps its claim: files nothing, but a view that filed just before its end and is
        # sent again just after is found used (``IntakeService.claimed``), not refused as expired and then
        # filed a second time from the form shown again.
        return CheckedToken(TokenState.expired if expires_at <= now else TokenState.valid, claim)
