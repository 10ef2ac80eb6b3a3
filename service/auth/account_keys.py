"""A staff account's key pair, sealed under its owner's password and the server's key pepper.

The sealed private key is the only password check there is: a wrong password simply does not open it, and
a dump without the pepper cannot test a guess (Argon2id, then HKDF with the pepper). An account on an
initial password has no key pair, only a seal that checks that password and opens nothing
(docs/security.md). Every check runs exactly one Argon2 derivation, found or not.
"""

from __future__ import annotations

import logging
import secrets

from service.crypto import (
    Argon2Params,
    Context,
    DecryptionError,
    PrivateKey,
    UnsupportedFormatError,
    derive_password_key,
    generate_keypair,
    open_with_password_and_pepper,
    seal_with_password_and_pepper,
    sealed_needs_reseal,
)
from service.crypto.passwords import LEGACY_WRAPPED_VERSION
from service.identity.models import StaffUser

log = logging.getLogger("rueckhalt.auth")

_DUMMY_SALT_BYTES = 16


def user_key_context(user_id: str) -> Context:
    return Context("user_private", record_id=user_id)


def initial_password_context(user_id: str) -> Context:
    return Context("initial_password", record_id=user_id)


class AccountKeys:
    """Seals and opens account keys. ``params`` are the Argon2 parameters for keys sealed from now on; the
    first pepper seals, a second is accepted while a rotation is under way (docs/key-custody.md)."""

    def __init__(self, key_peppers: tuple[bytes, ...], params: Argon2Params) -> None:
        self.params = params
        self._peppers = key_peppers
        self._dummy_salt = secrets.token_bytes(_DUMMY_SALT_BYTES)

    def seal_initial(self, user_id: str, password: str) -> bytes:
        return seal_with_password_and_pepper(
            password, b"", initial_password_context(user_id), self._peppers[0], self.params
        )

    def seal_private(self, user_id: str, password: str, private: PrivateKey) -> bytes:
        return seal_with_password_and_pepper(
            password, private.raw, user_key_context(user_id), self._peppers[0], self.params
        )

    def new_key_pair(self, user: StaffUser, password: str) -> PrivateKey:
        """The account's key pair, born under the owner's own password; the initial one stops working."""
        private, public = generate_keypair()
        user.public_key = public.raw
        user.sealed_private_key = self.seal_private(user.id, password, private)
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
            user.sealed_private_key = self.seal_private(user.id, password, private)
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
            user.initial_password_seal = self.seal_initial(user.id, password)
        return True

    def check_password(self, user: StaffUser, password: str) -> PrivateKey | bool | None:
        """The unlocked key (own password), True (right initial password, no key yet) or False."""
        if user.sealed_private_key is not None:
            private = self._open_private(user, password)
            return False if private is None else private
        if user.initial_password_seal is not None:
            return self._initial_password_ok(user, password)
        self.dummy_derivation(password)
        return False

    def dummy_derivation(self, password: str) -> None:
        """The Argon2 run a real check would make, for attempts that fail before it: without it, the time
        taken would tell whether an address has an account or whether the code was right."""
        derive_password_key(password, self._dummy_salt, self.params)
