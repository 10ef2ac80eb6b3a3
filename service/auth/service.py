"""Staff accounts: creation, passwords, TOTP, recovery codes, sign-in, memberships (security.md).

Every account has a key pair. Its private key is sealed under the password with Argon2id, and that sealed
key is the only password check there is: a wrong password simply does not open it. The password cannot be
reset without losing that key, so an administrator's reset makes a new key pair, and the organisation keys
granted to the old one have to be granted again by a lead or with the organisation's recovery key.

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

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth import repository, sessions
from service.auth.models import StaffUser
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
    PublicKey,
    derive_password_key,
    generate_keypair,
    keyed_hash,
    new_totp_secret,
    open_sealed,
    open_with_password,
    seal,
    seal_with_password,
    totp_secret_base32,
    totp_uri,
    verify_totp,
)
from service.crypto.receipt import normalize_code
from service.db import new_id, utcnow
from service.errors import NotFound, ValidationFailed
from service.organisations import repository as organisations
from service.organisations.models import Membership, MembershipRole, Organisation
from service.organisations.service import OrganisationError, open_with_recovery_key, seal_grant

log = logging.getLogger("rueckhalt.auth")

ISSUER = "Rückhalt"
RECOVERY_CODES = 10
RECOVERY_CODE_CHARS = 12
# A pending TOTP enrolment (secret shown, not yet confirmed) is good for this long.
ENROLMENT_SECONDS = 15 * 60
_DUMMY_SALT_BYTES = 16


class AccountError(ValueError):
    """An operator's or lead's request that cannot be done; the message says why, never echoing secrets."""


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
    private_key: PrivateKey


@dataclass(frozen=True)
class TotpEnrolment:
    secret: bytes
    uri: str
    # The secret sealed for the confirmation form; only this server, this user and this session can open it.
    token: str

    @property
    def secret_base32(self) -> str:
        return totp_secret_base32(self.secret)


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
        params: Argon2Params | None = None,
        clock: Callable[[], float] = time.time,
        audit: AuditLog | None = None,
    ) -> None:
        self.params = params or Argon2Params()
        self.audit = audit
        self.clock = clock
        self._session_key = session_key
        # A database dump alone must not yield working codes, so TOTP secrets are sealed under a server key.
        self._totp_key = keyed_hash(session_key, "totp-at-rest", b"")
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
        address = normalise_email(email)
        name = _clean_name(display_name)
        if repository.user_by_email(session, address) is not None:
            raise AccountError("an account with this e-mail address exists already")
        password = password if password is not None else new_initial_password()
        self._check_policy(password)
        user_id = new_id()
        private, public = generate_keypair()
        totp_secret = new_totp_secret()
        now = utcnow()
        user = StaffUser(
            id=user_id,
            email=address,
            display_name=name,
            is_admin=is_admin,
            is_coordinator=is_coordinator,
            public_key=public.raw,
            sealed_private_key=seal_with_password(
                password, private.raw, user_key_context(user_id), self.params
            ),
            sealed_totp_secret=self._seal_totp(user_id, totp_secret),
            totp_last_step=None,
            must_change_password=must_change_password,
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
        session.add(user)
        session.flush()
        self._record(session, "account.create", user_id, is_admin=is_admin, is_coordinator=is_coordinator)
        return NewCredentials(user, password, totp_secret, totp_uri(totp_secret, address, ISSUER))

    def user_by_email(self, session: Session, email: str) -> StaffUser:
        user = repository.user_by_email(session, login_email(email))
        if user is None:
            raise AccountError("no account with this e-mail address")
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
        """New initial password, new TOTP and necessarily a new key pair: the old key needs the old password.

        Memberships are removed: their grants were wrapped to the old key and nobody can open them now. A
        lead or the operator with the recovery key grants them again.
        """
        dropped = [
            DroppedMembership(org.slug, org.display_name, membership.role)
            for membership, org in organisations.memberships_of(session, user.id)
        ]
        organisations.delete_memberships_of(session, user.id)
        repository.replace_recovery_codes(session, user.id, [])
        ended = sessions.destroy_all_of(session, STAFF_SESSION, user.id)
        password = new_initial_password()
        private, public = generate_keypair()
        totp_secret = new_totp_secret()
        user.public_key = public.raw
        user.sealed_private_key = seal_with_password(
            password, private.raw, user_key_context(user.id), self.params
        )
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

    def set_password(
        self, session: Session, user: StaffUser, private_key: PrivateKey, new_password: str, keep_session: str
    ) -> None:
        """Re-seal the (unlocked) private key under a new password. Nothing else about the account changes:
        the public key, the memberships and every grant stay as they are.

        Every other session of the user ends (``keep_session`` is the id hash of the one making the change):
        whoever else was signed in had the old password.
        """
        self._check_policy(new_password)
        if private_key.public_key().raw != user.public_key:
            raise AccountError("this private key does not belong to the account")
        user.sealed_private_key = seal_with_password(
            new_password, private_key.raw, user_key_context(user.id), self.params
        )
        user.must_change_password = False
        user.password_changed_at = utcnow()
        sessions.destroy_all_of(session, STAFF_SESSION, user.id, keep_id_hash=keep_session)
        self._record(session, "account.password_change", user.id, actor_id=user.id)

    def change_password(
        self, session: Session, user: StaffUser, current_password: str, new_password: str, keep_session: str
    ) -> None:
        """Check the current password (it must open the key), then re-seal under the new one."""
        # The cheap checks first: a refused new password costs no Argon2 run.
        self._check_policy(new_password)
        if unicodedata.normalize("NFC", new_password) == unicodedata.normalize("NFC", current_password):
            raise PasswordRejected(PasswordProblem.unchanged)
        try:
            raw = open_with_password(current_password, user.sealed_private_key, user_key_context(user.id))
        except DecryptionError:
            raise PasswordRejected(PasswordProblem.current_wrong, "current_password") from None
        self.set_password(session, user, PrivateKey.from_bytes(raw), new_password, keep_session)

    # -- TOTP and recovery codes ---------------------------------------------------------------------------

    def _seal_totp(self, user_id: str, secret: bytes) -> bytes:
        return seal(self._totp_key, secret, _totp_context(user_id))

    def totp_secret(self, user: StaffUser) -> bytes:
        return open_sealed(self._totp_key, user.sealed_totp_secret, _totp_context(user.id))

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

    def confirm_totp(self, session: Session, user: StaffUser, enrolment: TotpEnrolment, code: str) -> bool:
        """Replace the TOTP secret once a code from the new app proves that the app has it."""
        step = verify_totp(enrolment.secret, "".join(code.split()), self.clock(), user.totp_last_step)
        if step is None or not repository.consume_totp_step(session, user.id, step):
            return False
        user.sealed_totp_secret = self._seal_totp(user.id, enrolment.secret)
        return True

    def _recovery_hash(self, user_id: str, code: str) -> str:
        return keyed_hash(self._session_key, "recovery-code", f"{user_id}\x00{code}".encode()).hex()

    def new_recovery_codes(self, session: Session, user: StaffUser) -> list[str]:
        """Ten fresh single-use codes (the old ones stop working); shown once, stored as keyed hashes only."""
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
        return repository.consume_recovery_code(session, user.id, self._recovery_hash(user.id, normalised))

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
        try:
            raw = open_with_password(password, user.sealed_private_key, user_key_context(user.id))
        except DecryptionError:
            return None
        self._record(session, "auth.login", user.id, actor_id=user.id)
        return LoggedIn(user, PrivateKey.from_bytes(raw))

    def subject_for(self, session: Session, opened: OpenSession) -> Subject | None:
        """The Subject of an open staff session; None if the account is gone, disabled, or has a new key."""
        user = repository.user_by_id(session, opened.subject_id)
        if user is None or user.disabled:
            return None
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
        organisation_key: PrivateKey,
        granted_by: str | None,
    ) -> Membership:
        """Make ``user`` a member (or change their role) and grant them the organisation private key."""
        if user.is_admin or user.is_coordinator:
            # architecture.md: administrators and coordinators never see a case (separation of duties).
            raise AccountError("administrators and coordinators cannot be members of an organisation")
        if user.disabled:
            raise AccountError("this account is disabled")
        if organisation.public_key is None or organisation_key.public_key().raw != organisation.public_key:
            raise AccountError("this is not the organisation's key")
        wrapped, sealed = seal_grant(
            organisation_key, PublicKey.from_bytes(user.public_key), organisation.id, user.id
        )
        membership = organisations.membership(session, user.id, organisation.id)
        if membership is None:
            membership = Membership(id=new_id(), user_id=user.id, organisation_id=organisation.id)
            session.add(membership)
        membership.role = MembershipRole(role).value
        membership.wrapped_grant_key = wrapped
        membership.sealed_organisation_key = sealed
        membership.granted_by = granted_by
        membership.created_at = utcnow()
        session.flush()
        self._record(
            session,
            "membership.grant",
            user.id,
            actor_id=granted_by,
            organisation_id=organisation.id,
            role=membership.role,
        )
        return membership

    def grant_with_recovery_key(
        self,
        session: Session,
        organisation: Organisation,
        user: StaffUser,
        role: MembershipRole,
        recovery_key: str,
    ) -> Membership:
        """The operator's way in (command line): the organisation key opened with its recovery key."""
        try:
            organisation_key = open_with_recovery_key(organisation, recovery_key)
        except OrganisationError as exc:
            raise AccountError(str(exc)) from None
        return self.grant_membership(session, organisation, user, role, organisation_key, granted_by=None)

    def grant_as_lead(
        self, session: Session, lead: Subject, organisation_id: str, user: StaffUser, role: MembershipRole
    ) -> Membership:
        """A lead grants their organisation's key from their own grant. NotFound for anyone else."""
        if not lead.is_lead_of(organisation_id):
            raise NotFound()
        organisation = session.get(Organisation, organisation_id)
        if organisation is None:
            raise NotFound()
        organisation_key = lead.organisation_key(session, organisation_id)
        return self.grant_membership(session, organisation, user, role, organisation_key, lead.user_id)

    def revoke_membership(
        self, session: Session, organisation_id: str, user_id: str, revoked_by: str | None = None
    ) -> bool:
        """Delete the grant; the member's next request can no longer open the organisation key."""
        removed = organisations.delete_membership(session, user_id, organisation_id)
        if removed:
            self._record(
                session, "membership.revoke", user_id, actor_id=revoked_by, organisation_id=organisation_id
            )
        return removed

    def revoke_as_lead(self, session: Session, lead: Subject, organisation_id: str, user_id: str) -> bool:
        if not lead.is_lead_of(organisation_id):
            raise NotFound()
        return self.revoke_membership(session, organisation_id, user_id, revoked_by=lead.user_id)
