"""Staff accounts: creation, reset, passwords, sign-in, and the subject of a session (docs/security.md).

An account gets its key pair when its owner sets a password of their own: the operator who created the
account saw the initial password, so nothing is ever sealed under it. The private key is sealed under the
password and the server's key pepper (Argon2id, then HKDF with the pepper), and that sealed key is the only
password check there is: a wrong password simply does not open it, and a dump without the pepper cannot
test a guess. The password cannot be reset without losing that key, so an administrator's reset removes
the key pair and every grant; the owner's next password makes a new pair, and a lead grants again.

The key sealing is in ``account_keys``, TOTP and recovery codes in ``second_factor``, membership changes in
``memberships`` (a base of ``AccountService``). The service never commits; the caller does, so that a change
and its consequences (ended sessions, used codes) land together.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth import repository, sessions
from service.auth.account_keys import AccountKeys
from service.auth.errors import AccountError, PasswordRejected
from service.auth.memberships import MembershipAdmin
from service.auth.passwords import PasswordProblem, new_initial_password, password_problem
from service.auth.second_factor import ISSUER, SecondFactor, TotpChange, TotpEnrolment
from service.auth.sessions import STAFF_SESSION, OpenSession
from service.auth.subject import Subject
from service.crypto import (
    Argon2Params,
    CryptoError,
    DecryptionError,
    PrivateKey,
    generate_keypair,
    new_totp_secret,
    totp_secret_base32,
    totp_uri,
    verify_totp,
)
from service.db import new_id, utcnow
from service.errors import NotFound
from service.identity import repository as organisations
from service.identity.custody import KeyCustody, RotationReason, has_inherited_members
from service.identity.grants import lock_organisations, open_member_grant, seal_member_grant
from service.identity.models import MemberKeyGrant, StaffUser

log = logging.getLogger("rueckhalt.auth")


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


# The session secret of an account without a key pair: a session must hold something, and this is no key.
NO_KEY = b"\x00no-key"


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


class AccountService(MembershipAdmin):
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
        self.keys = AccountKeys(key_peppers, params or Argon2Params())
        self.audit = audit
        self.clock = clock
        self.custody = KeyCustody(audit)
        self.second_factor = SecondFactor(session_key, previous_session_keys, clock)

    @property
    def params(self) -> Argon2Params:
        return self.keys.params

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
            sealed_totp_secret=self.second_factor.seal_totp(user_id, totp_secret),
            totp_last_step=None,
            must_change_password=not own_password,
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
        if own_password:
            self.keys.new_key_pair(user, password)
        else:
            user.initial_password_seal = self.keys.seal_initial(user_id, password)
        session.add(user)
        session.flush()
        self._record(session, "account.create", user_id, is_admin=is_admin, is_coordinator=is_coordinator)
        return NewCredentials(user, password, totp_secret, totp_uri(totp_secret, address, ISSUER))

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
        memberships = organisations.memberships_of(session, user.id)
        # Each removal rotates, and each is audited: every organisation is locked before the first row.
        lock_organisations(session, (org for _, org in memberships))
        for _, org in memberships:
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
        user.initial_password_seal = self.keys.seal_initial(user.id, password)
        user.sealed_totp_secret = self.second_factor.seal_totp(user.id, totp_secret)
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
        checked = self.keys.check_password(user, current_password)
        if checked is False:
            raise PasswordRejected(PasswordProblem.current_wrong, "current_password")
        first_key = not isinstance(checked, PrivateKey)
        if isinstance(checked, PrivateKey):
            private = checked
            if user.key_inherited:
                private = self._renew_inherited_key(session, user, new_password, private)
            user.sealed_private_key = self.keys.seal_private(user.id, new_password, private)
        else:
            private = self.keys.new_key_pair(user, new_password)
        user.must_change_password = False
        user.password_changed_at = utcnow()
        sessions.destroy_all_of(session, STAFF_SESSION, user.id, keep_id_hash=keep_session)
        self._record(
            session, "account.password_change", user.id, actor_id=user.id, key_pair_created=first_key
        )
        return private

    # -- the second factor --------------------------------------------------------------------------------

    def totp_secret(self, user: StaffUser) -> bytes:
        return self.second_factor.totp_secret(user)

    def reseal_totp(self, user: StaffUser) -> bool:
        """Seal the account's TOTP secret under the current session key (``SecondFactor.reseal_totp``)."""
        return self.second_factor.reseal_totp(user)

    def start_totp_enrolment(self, user: StaffUser, session_id_hash: str) -> TotpEnrolment:
        return self.second_factor.start_enrolment(user, session_id_hash)

    def open_enrolment(self, user: StaffUser, session_id_hash: str, token: str) -> TotpEnrolment | None:
        return self.second_factor.open_enrolment(user, session_id_hash, token)

    def reauthenticate(self, session: Session, user: StaffUser, password: str, code: str) -> bool:
        """The password and a current second factor, as at sign-in (code first, used up either way).

        Asked before the second factor changes: a session left open on a shared screen must not be enough
        to move someone's codes to a stranger's phone.
        """
        if not self.second_factor.check(session, user, code):
            self.keys.dummy_derivation(password)
            return False
        return isinstance(self.keys.check_password(user, password), PrivateKey)

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
        user.sealed_totp_secret = self.second_factor.seal_totp(user.id, enrolment.secret)
        user.totp_last_step = max(step, user.totp_last_step or 0)
        self._record(session, "account.totp_replaced", user.id, actor_id=user.id)
        return TotpChange.done

    def new_recovery_codes(
        self, session: Session, user: StaffUser, *, password: str, current_code: str
    ) -> list[str] | None:
        """Ten fresh single-use codes (the old ones stop working); shown once, stored as keyed hashes only.

        None if the password or the current code is wrong (see ``reauthenticate``).
        """
        if not self.reauthenticate(session, user, password, current_code):
            return None
        codes = self.second_factor.replace_recovery_codes(session, user)
        self._record(session, "account.recovery_codes_made", user.id, actor_id=user.id)
        return codes

    def replace_recovery_codes_after_enrolment(self, session: Session, user: StaffUser) -> list[str]:
        """New codes right after a confirmed new app (the password and a code were just checked)."""
        codes = self.second_factor.replace_recovery_codes(session, user)
        self._record(session, "account.recovery_codes_made", user.id, actor_id=user.id)
        return codes

    def recovery_codes_left(self, session: Session, user_id: str) -> int:
        return repository.recovery_codes_left(session, user_id)

    # -- sign-in -------------------------------------------------------------------------------------------

    def login(self, session: Session, email: str, password: str, code: str) -> LoggedIn | None:
        """The account and its unlocked key, or None; the caller commits either way (used codes stay used).

        The second factor is checked before the password (as SecureDrop does): without a fresh code nobody
        gets to test a password at all. Every path runs exactly one Argon2 derivation.
        """
        user = repository.user_by_email(session, login_email(email))
        if user is None or user.disabled:
            self.keys.dummy_derivation(password)
            return None
        if not self.second_factor.check(session, user, code):
            self.keys.dummy_derivation(password)
            return None
        checked = self.keys.check_password(user, password)
        if checked is False:
            return None
        private = checked if isinstance(checked, PrivateKey) else None
        if private is not None and user.key_inherited:
            # Before the sign-in's audit row: the renewal locks the organisations it rotates first.
            private = self._renew_inherited_key(session, user, password, private)
        self._record(session, "auth.login", user.id, actor_id=user.id)
        return LoggedIn(user, private)

    def _renew_inherited_key(
        self, session: Session, user: StaffUser, password: str, inherited: PrivateKey
    ) -> PrivateKey:
        """Replace a key pair that came through the upgrade (born under the operator's initial password) by
        a new one under the owner's password, move every grant over, and start a new key epoch of each
        organisation whose members now all hold new keys: from then on nothing new is wrapped to a key the
        operator may have seen."""
        memberships = organisations.memberships_of(session, user.id)
        # Every organisation this may rotate is locked before the first audit row (``lock_organisation``).
        lock_organisations(session, (org for _, org in memberships))
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
        user.sealed_private_key = self.keys.seal_private(user.id, password, private)
        user.key_inherited = False
        session.flush()
        self._record(session, "account.key_renewed", user.id, actor_id=user.id)
        # In the order of the organisations' ids, as a filing locks them (``FilingRows._grant``).
        for organisation in sorted((org for _, org in memberships), key=lambda org: org.id):
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
