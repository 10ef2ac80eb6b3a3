"""The second factor of a staff account: its TOTP secret, the enrolment of a new app, the recovery codes.

A database dump alone must not yield working codes, so TOTP secrets are sealed under a key derived from the
server's session key and recovery codes are stored as keyed hashes only. Nothing here audits or commits:
the account service (``service/auth/service.py``) does, around these calls.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from service.auth import repository
from service.auth.passwords import new_recovery_code
from service.crypto import (
    Context,
    CryptoError,
    DecryptionError,
    InvalidReceipt,
    keyed_hash,
    new_totp_secret,
    open_sealed,
    seal,
    totp_secret_base32,
    totp_uri,
    verify_totp,
)
from service.crypto.receipt import normalize_code
from service.identity.models import StaffUser

log = logging.getLogger("rueckhalt.auth")

ISSUER = "Rückhalt"
RECOVERY_CODES = 10
RECOVERY_CODE_CHARS = 12
# A pending TOTP enrolment (secret shown, not yet confirmed) is good for this long.
ENROLMENT_SECONDS = 15 * 60


def _totp_context(user_id: str) -> Context:
    return Context("totp_secret", record_id=user_id)


def _enrolment_context(user_id: str, session_id_hash: str) -> Context:
    return Context("totp_enrolment", record_id=user_id, field=session_id_hash)


@dataclass(frozen=True)
class TotpEnrolment:
    secret: bytes
    uri: str
    # The secret sealed for the confirmation form; only this server, this user and this session can open it.
    token: str

    @property
    def secret_base32(self) -> str:
        return totp_secret_base32(self.secret)


class TotpChange(StrEnum):
    done = "done"
    reauthentication_failed = "reauthentication_failed"
    new_code_wrong = "new_code_wrong"


class SecondFactor:
    """The keys of the second factor, derived from the session key (and the previous ones during a
    rotation); ``clock`` gives the time for TOTP (seconds since the epoch)."""

    def __init__(
        self, session_key: bytes, previous_session_keys: tuple[bytes, ...], clock: Callable[[], float]
    ) -> None:
        self.clock = clock
        self._session_key = session_key
        # A database dump alone must not yield working codes, so TOTP secrets are sealed under a server key.
        self._totp_key = keyed_hash(session_key, "totp-at-rest", b"")
        # During a rotation of the session key: TOTP secrets and recovery codes still under the previous key
        # keep working until `rueckhalt secrets rotate session_key --finish` re-seals (or retires) them.
        self._previous_totp_keys = tuple(keyed_hash(k, "totp-at-rest", b"") for k in previous_session_keys)
        self._previous_session_keys = previous_session_keys
        self._enrolment_key = keyed_hash(session_key, "totp-enrolment", b"")

    # -- TOTP ----------------------------------------------------------------------------------------------

    def seal_totp(self, user_id: str, secret: bytes) -> bytes:
        return seal(self._totp_key, secret, _totp_context(user_id))

    def totp_secret(self, user: StaffUser) -> bytes:
        for key in self._previous_totp_keys:
            try:
                return open_sealed(self._totp_key, user.sealed_totp_secret, _totp_context(user.id))
            except DecryptionError:
                return open_sealed(key, user.sealed_totp_secret, _totp_context(user.id))
        return open_sealed(self._totp_key, user.sealed_totp_secret, _totp_context(user.id))

    def reseal_totp(self, user: StaffUser) -> bool:
        """Seal the account's TOTP secret under the current session key (a rotation's re-keying step).

        True if it changed; False if it was under the current key already. Raises DecryptionError if no
        configured key opens it."""
        try:
            open_sealed(self._totp_key, user.sealed_totp_secret, _totp_context(user.id))
            return False
        except DecryptionError:
            user.sealed_totp_secret = self.seal_totp(user.id, self.totp_secret(user))
            return True

    def start_enrolment(self, user: StaffUser, session_id_hash: str) -> TotpEnrolment:
        """A new secret to show; stored nowhere until confirmed with a code from the new app."""
        secret = new_totp_secret()
        return TotpEnrolment(
            secret=secret,
            uri=totp_uri(secret, user.email, ISSUER),
            token=self._seal_enrolment(user.id, session_id_hash, secret),
        )

    def _seal_enrolment(self, user_id: str, session_id_hash: str, secret: bytes) -> str:
        issued = struct.pack(">Q", int(self.clock()))
        sealed = seal(self._enrolment_key, issued + secret, _enrolment_context(user_id, session_id_hash))
        return sealed.hex()

    def open_enrolment(self, user: StaffUser, session_id_hash: str, token: str) -> TotpEnrolment | None:
        """The pending enrolment from its form token; None if forged, from another session, or expired."""
        try:
            plain = open_sealed(
                self._enrolment_key, bytes.fromhex(token), _enrolment_context(user.id, session_id_hash)
            )
        except (ValueError, CryptoError):
            return None
        (issued,) = struct.unpack(">Q", plain[:8])
        if not 0 <= self.clock() - issued <= ENROLMENT_SECONDS:
            return None
        secret = plain[8:]
        return TotpEnrolment(secret=secret, uri=totp_uri(secret, user.email, ISSUER), token=token)

    # -- recovery codes ------------------------------------------------------------------------------------

    def _recovery_hash(self, user_id: str, code: str, key: bytes | None = None) -> str:
        return keyed_hash(key or self._session_key, "recovery-code", f"{user_id}\x00{code}".encode()).hex()

    def replace_recovery_codes(self, session: Session, user: StaffUser) -> list[str]:
        """Ten fresh single-use codes (the old ones stop working); shown once, stored as keyed hashes only."""
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        hashes = [
            self._recovery_hash(user.id, normalize_code(code, RECOVERY_CODE_CHARS, "")) for code in codes
        ]
        repository.replace_recovery_codes(session, user.id, hashes)
        return codes

    # -- the check -----------------------------------------------------------------------------------------

    def check(self, session: Session, user: StaffUser, code: str) -> bool:
        """A fresh TOTP code or an unused recovery code; either is used up by this call, even if the password
        then turns out wrong, so that every password guess costs the attacker a new code."""
        typed = "".join(code.split())
        if len(typed) == 6 and typed.isascii() and typed.isdigit():
            try:
                secret = self.totp_secret(user)
            except DecryptionError:
                log.error("a TOTP secret could not be opened (server key changed?)")
                return False
            step = verify_totp(secret, typed, self.clock(), user.totp_last_step)
            return step is not None and repository.consume_totp_step(session, user.id, step)
        try:
            normalised = normalize_code(typed, RECOVERY_CODE_CHARS, "recovery code")
        except InvalidReceipt:
            return False
        # A code made before a rotation of the session key still counts until the rotation is finished.
        return any(
            repository.consume_recovery_code(session, user.id, self._recovery_hash(user.id, normalised, key))
            for key in (self._session_key, *self._previous_session_keys)
        )
