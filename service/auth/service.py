"""Staff accounts: creation, passwords, TOTP, recovery codes, sign-in, memberships (docs/security.md).

An account gets its key pair when its owner sets a password of their own: the operator who created the
account saw the initial password, so nothing is ever sealed under it. The private key is sealed under the
password and the server's key pepper (Argon2id, then HKDF with the pepper), and that sealed key is the only
password check there is: a wrong password simply does not open it, and a dump without the pepper cannot
test a guess. The password cannot be reset without losing that key, so an administrator's reset removes
the key pair and every grant; the owner's next password makes a new pair, and a lead grants again.

The service never commits; the caller does, so that a change and its consequences (ended sessions, used
codes) land together.
"""

from __future__ import annotations

import logging
import secrets
import struct
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth import repository, sessions
from service.auth.passwords import (
    PasswordProblem,
    new_initial_password,
    new_recovery_code,
    password_problem,
)
from service.auth.sessions import STAFF_SESSION, OpenSession
from service.auth.subject import Subject
from service.crypto import (
    Argon2Params,
    Context,
    CryptoError,
    DecryptionError,
    InvalidReceipt,
    PrivateKey,
    UnsupportedFormatError,
    derive_password_key,
    generate_keypair,
    keyed_hash,
    new_totp_secret,
    open_sealed,
    open_with_password_and_pepper,
    seal,
    seal_with_password_and_pepper,
    sealed_needs_reseal,
    totp_secret_base32,
    totp_uri,
    verify_totp,
)
from service.crypto.passwords import LEGACY_WRAPPED_VERSION
from service.crypto.receipt import normalize_code
from service.db import new_id, utcnow
from service.errors import NotFound, ValidationFailed
from service.identity import repository as organisations
from service.identity.custody import KeyCustody, RotationReason, has_inherited_members
from service.identity.grants import CustodyError, grant_epochs, open_member_grant, seal_member_grant
from service.identity.models import MemberKeyGrant, Membership, MembershipRole, Organisation, StaffUser

log = logging.getLogger("rueckhalt.auth")

ISSUER = "Rückhalt"
RECOVERY_CODES = 10
RECOVERY_CODE_CHARS = 12
# A pending TOTP enrolment (secret shown, not yet confirmed) is good for this long.
ENROLMENT_SECONDS = 15 * 60
_DUMMY_SALT_BYTES = 16


class AccountError(ValueError):
    """An operator's or lead's request that cannot be done; the message says why, never echoing secrets.

    ``code`` is stable, for pages to translate (``organisation.error.<code>``).
    """

    def __init__(self, message: str, code: str = "account") -> None:
        super().__init__(message)
        self.code = code


class PasswordRejected(ValidationFailed):
    """A new password breaks the policy, or the current one was wrong; names the field, never the value."""

    def __init__(self, problem: PasswordProblem, field: str = "new_password") -> None:
        super().__init__(
            [{"loc": ["body", field], "type": f"password.{problem.value}", "msg": _PROBLEM_TEXT[problem]}]
        )
        self.problem = problem
        self.field = field


_PROBLEM_TEXT = {
    PasswordProblem.too_short: "The password must have at least 12 characters.",
    PasswordProblem.too_long: "The password must have at most 256 characters.",
    PasswordProblem.common: "This password is one of the most common passwords. Choose another one.",
    PasswordProblem.too_simple: "This password repeats too few characters. Choose a longer mix.",
    PasswordProblem.unchanged: "The new password must differ from the current one.",
    PasswordProblem.current_wrong: "The current password is wrong.",
    PasswordProblem.mismatch: "The two new passwords differ.",
}


def user_key_context(user_id: str) -> Context:
    return Context("user_private", record_id=user_id)


def initial_password_context(user_id: str) -> Context:
    return Context("initial_password", record_id=user_id)


def _totp_context(user_id: str) -> Context:
    return Context("totp_secret", record_id=user_id)


def _enrolment_context(user_id: str, session_id_hash: str) -> Context:
    return Context("totp_enrolment", record_id=user_id, field=session_id_hash)


def normalise_email(text: str) -> str:
    """The stored form of an address: validated, lower-cased. AccountError if it is not an address."""
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise AccountError("not a valid e-mail address") from None


def login_email(text: str) -> str:
    try:
        return normalise_email(text)
    except AccountError:
        # Still look it up (and find nothing): an invalid address must cost the same as an unknown one.
        return text.strip().lower()


def _clean_name(text: str) -> str:
    name = unicodedata.normalize("NFC", text).strip()
    if not name or len(name) > 200 or any(unicodedata.category(char) == "Cc" for char in name):
        raise AccountError("display name: 1-200 characters, no control characters")
    return name


@dataclass(frozen=True)
class NewCredentials:
    """What a new or reset account is handed once: nothing of it is stored in readable form."""

    user: StaffUser
    password: str
    totp_secret: bytes
    totp_uri: str

    @property
    def totp_secret_base32(self) -> str:
        return totp_secret_base32(self.totp_secret)


@dataclass(frozen=True)
class LoggedIn:
    user: StaffUser
    # None for an account still on its initial password: it may change the password and nothing else.
    private_key: PrivateKey | None


@dataclass(frozen=True)
class TotpEnrolment:
    secret: bytes
    uri: str
    # The secret sealed for the confirmation form; only this server, this user and this session can open it.
    token: str

    @property
    def secret_base32(self) -> str:
        return totp_secret_base32(self.secret)


# The session secret of an account without a key pair: a session must hold something, and this is no key.
NO_KEY = b"\x00no-key"


class TotpChange(StrEnum):
    done = "done"
    reauthentication_failed = "reauthentication_failed"
    new_code_wrong = "new_code_wrong"


@dataclass(frozen=True)
class DroppedMembership:
    organisation_slug: str
    organisation_name: str
    role: str


@dataclass(frozen=True)
class ResetAccount:
    credentials: NewCredentials
    dropped_memberships: list[DroppedMembership]
    ended_sessions: int


class AccountService:
    """Accounts and sign-in. ``params`` are the Argon2 parameters for keys sealed from now on.

    The default is RFC 9106's second recommendation; tests pass weaker ones to stay fast. ``clock`` gives
    the time for TOTP (seconds since the epoch).
    """

    def __init__(
        self,
        session_key: bytes,
        *,
        key_peppers: tuple[bytes, ...],
        params: Argon2Params | None = None,
        clock: Callable[[], float] = time.time,
        audit: AuditLog | None = None,
        previous_session_keys: tuple[bytes, ...] = (),
    ) -> None:
        if not key_peppers:
            raise ValueError("AccountService needs the key pepper")
        self.params = params or Argon2Params()
        self.audit = audit
        self.clock = clock
        self.custody = KeyCustody(audit)
        self._session_key = session_key
        # The first seals; a second is accepted while a rotation is under way (docs/key-custody.md).
        self._peppers = key_peppers
        # A database dump alone must not yield working codes, so TOTP secrets are sealed under a server key.
        self._totp_key = keyed_hash(session_key, "totp-at-rest", b"")
        # During a rotation of the session key: TOTP secrets and recovery codes still under the previous key
        # keep working until `rueckhalt secrets rotate session_key --finish` re-seals (or retires) them.
        self._previous_totp_keys = tuple(keyed_hash(k, "totp-at-rest", b"") for k in previous_session_keys)
        self._previous_session_keys = previous_session_keys
        self._enrolment_key = keyed_hash(session_key, "totp-enrolment", b"")
        self._dummy_salt = secrets.token_bytes(_DUMMY_SALT_BYTES)

    def _record(
        self,
        session: Session,
        action: str,
        object_id: str,
        *,
        actor_id: str | None = None,
        object_type: str = "staff_user",
        **details: str | int | bool | None,
    ) -> None:
        """Account and membership changes go to the audit log in the same transaction as the change.

        Without an actor id the change came from the operator's command line (the only other way in).
        """
        if self.audit is None:
            return
        self.audit.append(
            session,
            actor_kind="staff" if actor_id else "operator",
            actor_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details or None,
        )

    # -- accounts ------------------------------------------------------------------------------------------

    def create_user(
        self,
        session: Session,
        email: str,
        display_name: str,
        *,
        is_admin: bool = False,
        is_coordinator: bool = False,
        password: str | None = None,
        must_change_password: bool = True,
    ) -> NewCredentials:
        """A new account. With an initial password (the default: generated, shown to the operator once) it
        has no key pair until its owner sets a password of their own. ``must_change_password=False`` means
        the password is the owner's (the demo and tests): the key pair is made under it at once.
        """
        address = normalise_email(email)
        name = _clean_name(display_name)
        if repository.user_by_email(session, address) is not None:
            raise AccountError("an account with this e-mail address exists already")
        # must_change_password=False: the password is the owner's own (the demo's generated ones included).
        own_password = not must_change_password
        password = password if password is not None else new_initial_password()
        self._check_policy(password)
        user_id = new_id()
        totp_secret = new_totp_secret()
        now = utcnow()
        user = StaffUser(
            id=user_id,
            email=address,
            display_name=name,
            is_admin=is_admin,
            is_coordinator=is_coordinator,
            public_key=None,
            sealed_private_key=None,
            initial_password_seal=None,
            key_inherited=False,
            sealed_totp_secret=self._seal_totp(user_id, totp_secret),
            totp_last_step=None,
            must_change_password=not own_password,
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
        if own_password:
            self._new_key_pair(user, password)
        else:
            user.initial_password_seal = self._seal_initial(user_id, password)
        session.add(user)
        session.flush()
        self._record(session, "account.create", user_id, is_admin=is_admin, is_coordinator=is_coordinator)
        return NewCredentials(user, password, totp_secret, totp_uri(totp_secret, address, ISSUER))

    def _seal_initial(self, user_id: str, password: str) -> bytes:
        return seal_with_password_and_pepper(
            password, b"", initial_password_context(user_id), self._peppers[0], self.params
        )

    def _seal_private(self, user_id: str, password: str, private: PrivateKey) -> bytes:
        return seal_with_password_and_pepper(
            password, private.raw, user_key_context(user_id), self._peppers[0], self.params
        )

    def _new_key_pair(self, user: StaffUser, password: str) -> PrivateKey:
        """The account's key pair, born under the owner's own password; the initial one stops working."""
        private, public = generate_keypair()
        user.public_key = public.raw
        user.sealed_private_key = self._seal_private(user.id, password, private)
        user.initial_password_seal = None
        return private

    def _open_private(self, user: StaffUser, password: str) -> PrivateKey | None:
        """The private key if ``password`` opens it; None otherwise. A key still sealed in an older way
        (migrated format 1, previous pepper, older Argon2 parameters) is sealed again on the way."""
        assert user.sealed_private_key is not None
        try:
            raw = open_with_password_and_pepper(
                password, user.sealed_private_key, user_key_context(user.id), self._peppers
            )
        except UnsupportedFormatError:
            log.error("a staff key could not be opened: its key pepper is not configured")
            return None
        except DecryptionError:
            return None
        private = PrivateKey.from_bytes(raw)
        if sealed_needs_reseal(user.sealed_private_key, self._peppers[0], self.params):
            user.sealed_private_key = self._seal_private(user.id, password, private)
        return private

    def _initial_password_ok(self, user: StaffUser, password: str) -> bool:
        assert user.initial_password_seal is not None
        seal_value = user.initial_password_seal
        # An account migrated from format 1 keeps its old key value (wrapped under the pepper, format 3) as
        # the check of its initial password; it was sealed with the user key's context.
        context = (
            user_key_context(user.id)
            if seal_value[:1] == bytes([LEGACY_WRAPPED_VERSION])
            else initial_password_context(user.id)
        )
        try:
            open_with_password_and_pepper(password, seal_value, context, self._peppers)
        except (DecryptionError, UnsupportedFormatError):
            return False
        if sealed_needs_reseal(seal_value, self._peppers[0], self.params):
            # Under a previous pepper, older parameters or format 3: sealed anew while the password is here.
            user.initial_password_seal = self._seal_initial(user.id, password)
        return True

    def check_password(self, user: StaffUser, password: str) -> PrivateKey | bool | None:
        """The unlocked key (own password), True (right initial password, no key yet) or False."""
        if user.sealed_private_key is not None:
            private = self._open_private(user, password)
            return False if private is None else private
        if user.initial_password_seal is not None:
            return self._initial_password_ok(user, password)
        self._dummy_derivation(password)
        return False

    def user_by_email(self, session: Session, email: str) -> StaffUser:
        user = repository.user_by_email(session, login_email(email))
        if user is None:
            raise AccountError("no account with this e-mail address", "unknown_account")
        return user

    def user_by_id(self, session: Session, user_id: str) -> StaffUser:
        user = repository.user_by_id(session, user_id)
        if user is None:
            raise NotFound()
        return user

    def disable(self, session: Session, user: StaffUser) -> int:
        """Lock the account and end its sessions at once; returns how many sessions ended."""
        user.disabled = True
        self._record(session, "account.disable", user.id)
        return sessions.destroy_all_of(session, STAFF_SESSION, user.id)

    def reset(self, session: Session, user: StaffUser) -> ResetAccount:
        """New initial password and TOTP; the key pair is gone, because it needs the old password.

        Memberships are removed with their grants, and each organisation starts a new key epoch (a reset
        is a removal). The owner's next own password makes a new key pair; a lead grants again.
        """
        dropped = [
            DroppedMembership(org.slug, org.display_name, membership.role)
            for membership, org in organisations.memberships_of(session, user.id)
        ]
        for _, org in organisations.memberships_of(session, user.id):
            self.custody.remove_member(session, org, user.id, None, RotationReason.account_reset)
            self._record(
                session, "membership.revoke", user.id, organisation_id=org.id, reason="account_reset"
            )
        repository.replace_recovery_codes(session, user.id, [])
        ended = sessions.destroy_all_of(session, STAFF_SESSION, user.id)
        password = new_initial_password()
        totp_secret = new_totp_secret()
        user.public_key = None
        user.sealed_private_key = None
        user.initial_password_seal = self._seal_initial(user.id, password)
        user.sealed_totp_secret = self._seal_totp(user.id, totp_secret)
        user.totp_last_step = None
        user.must_change_password = True
        user.password_changed_at = utcnow()
        credentials = NewCredentials(user, password, totp_secret, totp_uri(totp_secret, user.email, ISSUER))
        self._record(session, "account.reset", user.id, memberships_dropped=len(dropped))
        return ResetAccount(credentials, dropped, ended)

    # -- passwords -----------------------------------------------------------------------------------------

    @staticmethod
    def _check_policy(password: str) -> None:
        problem = password_problem(password)
        if problem is not None:
            raise PasswordRejected(problem)

    def change_password(
        self, session: Session, user: StaffUser, current_password: str, new_password: str, keep_session: str
    ) -> PrivateKey:
        """Check the current password, then seal the key under the new one; returns the unlocked key.

        From an initial password this makes the account's key pair. Every other session of the user ends
        (``keep_session`` is the id hash of the one making the change): whoever else was signed in had the
        old password.
        """
        # The cheap checks first: a refused new password costs no Argon2 run.
        self._check_policy(new_password)
        if unicodedata.normalize("NFC", new_password) == unicodedata.normalize("NFC", current_password):
            raise PasswordRejected(PasswordProblem.unchanged)
        checked = self.check_password(user, current_password)
        if checked is False:
            raise PasswordRejected(PasswordProblem.current_wrong, "current_password")
        first_key = not isinstance(checked, PrivateKey)
        if isinstance(checked, PrivateKey):
            private = checked
            if user.key_inherited:
                private = self._renew_inherited_key(session, user, new_password, private)
            user.sealed_private_key = self._seal_private(user.id, new_password, private)
        else:
            private = self._new_key_pair(user, new_password)
        user.must_change_password = False
        user.password_changed_at = utcnow()
        sessions.destroy_all_of(session, STAFF_SESSION, user.id, keep_id_hash=keep_session)
        self._record(
            session, "account.password_change", user.id, actor_id=user.id, key_pair_created=first_key
        )
        return private

    # -- TOTP and recovery codes ---------------------------------------------------------------------------

    def _seal_totp(self, user_id: str, secret: bytes) -> bytes:
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
            user.sealed_totp_secret = self._seal_totp(user.id, self.totp_secret(user))
            return True

    def start_totp_enrolment(self, user: StaffUser, session_id_hash: str) -> TotpEnrolment:
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

    def reauthenticate(self, session: Session, user: StaffUser, password: str, code: str) -> bool:
        """The password and a current second factor, as at sign-in (code first, used up either way).

        Asked before the second factor changes: a session left open on a shared screen must not be enough
        to move someone's codes to a stranger's phone.
        """
        if not self._second_factor(session, user, code):
            self._dummy_derivation(password)
            return False
        return isinstance(self.check_password(user, password), PrivateKey)

    def confirm_totp(
        self,
        session: Session,
        user: StaffUser,
        enrolment: TotpEnrolment,
        code: str,
        *,
        password: str,
        current_code: str,
    ) -> TotpChange:
        """Replace the TOTP secret: the password and a current code (old app or recovery code) first, then a
        code from the new app proves that the app has the new secret."""
        if not self.reauthenticate(session, user, password, current_code):
            return TotpChange.reauthentication_failed
        # The new secret has never been used, so its own code may fall in the step the old code just used.
        step = verify_totp(enrolment.secret, "".join(code.split()), self.clock(), None)
        if step is None:
            return TotpChange.new_code_wrong
        user.sealed_totp_secret = self._seal_totp(user.id, enrolment.secret)
        user.totp_last_step = max(step, user.totp_last_step or 0)
        self._record(session, "account.totp_replaced", user.id, actor_id=user.id)
        return TotpChange.done

    def _recovery_hash(self, user_id: str, code: str, key: bytes | None = None) -> str:
        return keyed_hash(key or self._session_key, "recovery-code", f"{user_id}\x00{code}".encode()).hex()

    def new_recovery_codes(
        self, session: Session, user: StaffUser, *, password: str, current_code: str
    ) -> list[str] | None:
        """Ten fresh single-use codes (the old ones stop working); shown once, stored as keyed hashes only.

        None if the password or the current code is wrong (see ``reauthenticate``).
        """
        if not self.reauthenticate(session, user, password, current_code):
            return None
        codes = self._replace_recovery_codes(session, user)
        self._record(session, "account.recovery_codes_made", user.id, actor_id=user.id)
        return codes

    def replace_recovery_codes_after_enrolment(self, session: Session, user: StaffUser) -> list[str]:
        """New codes right after a confirmed new app (the password and a code were just checked)."""
        codes = self._replace_recovery_codes(session, user)
        self._record(session, "account.recovery_codes_made", user.id, actor_id=user.id)
        return codes

    def _replace_recovery_codes(self, session: Session, user: StaffUser) -> list[str]:
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        hashes = [
            self._recovery_hash(user.id, normalize_code(code, RECOVERY_CODE_CHARS, "")) for code in codes
        ]
        repository.replace_recovery_codes(session, user.id, hashes)
        return codes

    def recovery_codes_left(self, session: Session, user_id: str) -> int:
        return repository.recovery_codes_left(session, user_id)

    def _second_factor(self, session: Session, user: StaffUser, code: str) -> bool:
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

    # -- sign-in -------------------------------------------------------------------------------------------

    def _dummy_derivation(self, password: str) -> None:
        """The Argon2 run a real check would make, for attempts that fail before it: without it, the time
        taken would tell whether an address has an account or whether the code was right."""
        derive_password_key(password, self._dummy_salt, self.params)

    def login(self, session: Session, email: str, password: str, code: str) -> LoggedIn | None:
        """The account and its unlocked key, or None; the caller commits either way (used codes stay used).

        The second factor is checked before the password (as SecureDrop does): without a fresh code nobody
        gets to test a password at all. Every path runs exactly one Argon2 derivation.
        """
        user = repository.user_by_email(session, login_email(email))
        if user is None or user.disabled:
            self._dummy_derivation(password)
            return None
        if not self._second_factor(session, user, code):
            self._dummy_derivation(password)
            return None
        checked = self.check_password(user, password)
        if checked is False:
            return None
        self._record(session, "auth.login", user.id, actor_id=user.id)
        private = checked if isinstance(checked, PrivateKey) else None
        if private is not None and user.key_inherited:
            private = self._renew_inherited_key(session, user, password, private)
        return LoggedIn(user, private)

    def _renew_inherited_key(
        self, session: Session, user: StaffUser, password: str, inherited: PrivateKey
    ) -> PrivateKey:
        """Replace a key pair that came through the upgrade (born under the operator's initial password) by
        a new one under the owner's password, move every grant over, and start a new key epoch of each
        organisation whose members now all hold new keys: from then on nothing new is wrapped to a key the
        operator may have seen."""
        private, public = generate_keypair()
        for grant in session.scalars(select(MemberKeyGrant).where(MemberKeyGrant.user_id == user.id)).all():
            try:
                epoch_key = open_member_grant(grant, inherited)
            except DecryptionError:
                session.delete(grant)
                continue
            grant.wrapped_grant_key, grant.sealed_organisation_key = seal_member_grant(
                epoch_key, public, grant.organisation_id, user.id, grant.epoch
            )
        user.public_key = public.raw
        user.sealed_private_key = self._seal_private(user.id, password, private)
        user.key_inherited = False
        session.flush()
        self._record(session, "account.key_renewed", user.id, actor_id=user.id)
        for _, organisation in organisations.memberships_of(session, user.id):
            if organisation.public_key is not None and not has_inherited_members(session, organisation.id):
                self.custody.rotate(session, organisation, RotationReason.keys_renewed, user.id)
        return private

    def subject_for(self, session: Session, opened: OpenSession) -> Subject | None:
        """The Subject of an open staff session; None if the account is gone, disabled, or has a new key."""
        user = repository.user_by_id(session, opened.subject_id)
        if user is None or user.disabled:
            return None
        private: PrivateKey | None = None
        if user.public_key is None:
            # Still on an initial password: the session holds no key, and the gate opens only the
            # password page (``must_change_password``).
            if opened.secret != NO_KEY or not user.must_change_password:
                return None
        else:
            try:
                private = PrivateKey.from_bytes(opened.secret)
            except CryptoError:
                return None
            if private.public_key().raw != user.public_key:
                return None
        memberships = tuple(
            sorted((m.organisation_id, m.role) for m, _ in organisations.memberships_of(session, user.id))
        )
        return Subject(
            user_id=user.id,
            email=user.email,
            display_name=user.display_name,
            is_admin=user.is_admin,
            is_coordinator=user.is_coordinator,
            memberships=memberships,
            private_key=private,
            session_id_hash=opened.id_hash,
            must_change_password=user.must_change_password,
        )

    # -- memberships ---------------------------------------------------------------------------------------

    def grant_membership(
        self,
        session: Session,
        organisation: Organisation,
        user: StaffUser,
        role: MembershipRole,
        epoch_keys: dict[int, PrivateKey],
        granted_by: str | None,
    ) -> Membership:
        """Make ``user`` a member (or change their role) and grant every live epoch of the organisation key.

        Refused for an account without a key of its own (initial password), an administrator, a coordinator
        or a disabled account, with a message that says so.
        """
        try:
            membership = grant_epochs(session, organisation, user, role, epoch_keys, granted_by)
        except CustodyError as exc:
            raise AccountError(str(exc), exc.code) from None
        self.record_membership_grant(session, organisation, user.id, role, granted_by)
        return membership

    def record_membership_grant(
        self,
        session: Session,
        organisation: Organisation,
        user_id: str,
        role: MembershipRole,
        granted_by: str | None,
    ) -> None:
        self._record(
            session,
            "membership.grant",
            user_id,
            actor_id=granted_by,
            organisation_id=organisation.id,
            role=MembershipRole(role).value,
        )

    def grant_with_shares(
        self,
        session: Session,
        organisation: Organisation,
        shares: list[str],
        user: StaffUser,
        role: MembershipRole,
    ) -> Membership:
        """The demo's grant (it plays every custodian): every live epoch, opened with k shares."""
        try:
            membership = self.custody.grant_with_shares(session, organisation, shares, user, role)
        except CustodyError as exc:
            raise AccountError(str(exc), exc.code) from None
        self.record_membership_grant(session, organisation, user.id, role, None)
        return membership

    def name_first_lead(self, session: Session, organisation: Organisation, user: StaffUser) -> Membership:
        """The first lead of an organisation without a key: a membership with nothing granted (there is no
        key yet). The account may still be on its initial password; it makes the key pair once it has its own.
        """
        if organisation.public_key is not None:
            raise AccountError(f"organisation {organisation.slug} has a key; a lead grants access", "has_key")
        if user.is_admin or user.is_coordinator:
            raise AccountError(
                "administrators and coordinators cannot be members of an organisation", "staff_role"
            )
        if user.disabled:
            raise AccountError("this account is disabled", "disabled")
        others = [m for m, _ in organisations.members_of(session, organisation.id) if m.user_id != user.id]
        if others:
            # The operator names one first lead; every later member is that lead's grant. A second name
            # here would be a membership the operator chose, waiting for the first key epoch.
            raise AccountError(
                f"organisation {organisation.slug} has its first lead already", "has_first_lead"
            )
        membership = organisations.membership(session, user.id, organisation.id)
        if membership is None:
            membership = Membership(
                id=new_id(), user_id=user.id, organisation_id=organisation.id, created_at=utcnow()
            )
            session.add(membership)
        membership.role = MembershipRole.lead.value
        membership.granted_by = None
        session.flush()
        self._record(
            session, "membership.first_lead", user.id, organisation_id=organisation.id, role=membership.role
        )
        return membership

    def grant_as_lead(
        self, session: Session, lead: Subject, organisation_id: str, user: StaffUser, role: MembershipRole
    ) -> Membership:
        """A lead grants their organisation's keys from their own grants. NotFound for anyone else."""
        if not lead.is_lead_of(organisation_id):
            raise NotFound()
        organisation = session.get(Organisation, organisation_id)
        if organisation is None:
            raise NotFound()
        if role is not MembershipRole.lead and organisations.lead_ids(session, organisation_id) == {user.id}:
            raise AccountError("the last lead of an organisation cannot become a counsellor", "last_lead")
        return self.grant_membership(
            session, organisation, user, role, lead.epoch_keys(session, organisation_id), lead.user_id
        )

    def revoke_membership(
        self, session: Session, organisation_id: str, user_id: str, revoked_by: str | None = None
    ) -> bool:
        """Delete the membership and its grants, and start a new key epoch of the organisation: a copy of
        the keys the member may have kept opens no case filed from now on."""
        organisation = session.get(Organisation, organisation_id)
        if organisation is None:
            return False
        removed = self.custody.remove_member(
            session, organisation, user_id, revoked_by, RotationReason.member_removed
        )
        if removed:
            self._record(
                session, "membership.revoke", user_id, actor_id=revoked_by, organisation_id=organisation_id
            )
        return removed

    def revoke_as_lead(self, session: Session, lead: Subject, organisation_id: str, user_id: str) -> bool:
        """NotFound for anyone but a lead; AccountError ``last_lead`` for the organisation's last lead with
        a key (nobody could grant any more, and only the custodians could get the organisation back)."""
        if not lead.is_lead_of(organisation_id):
            raise NotFound()
        leads = organisations.lead_ids(session, organisation_id)
        if leads == {user_id}:
            raise AccountError(
                "the last lead of an organisation cannot be removed; make another lead first", "last_lead"
            )
        return self.revoke_membership(session, organisation_id, user_id, revoked_by=lead.user_id)
