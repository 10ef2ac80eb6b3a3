"""The authenticated staff member of a request: who they are, their roles, and their unlocked key.

Case reads take a Subject; nothing that is not reachable from its memberships can be opened with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from service.crypto import DecryptionError, PrivateKey
from service.errors import NotFound
from service.identity.grants import member_epoch_keys, member_grant, open_member_grant
from service.identity.models import MembershipRole

log = logging.getLogger("rueckhalt.auth")


@dataclass(frozen=True)
class Subject:
    user_id: str
    email: str
    display_name: str
    is_admin: bool
    is_coordinator: bool
    # (organisation id, role) pairs, role one of MembershipRole's values; sorted by organisation id.
    memberships: tuple[tuple[str, str], ...]
    # The user private key, unlocked for this session; repr=False keeps it out of every log and traceback.
    # None while the account has no key pair (initial password: only the password page is open).
    private_key: PrivateKey | None = field(repr=False)
    # SHA-256 of the session id: binds the API's CSRF token to this session, and lets logout find it.
    session_id_hash: str = field(default="", repr=False)
    must_change_password: bool = False

    @property
    def organisation_ids(self) -> frozenset[str]:
        return frozenset(organisation_id for organisation_id, _ in self.memberships)

    def role_in(self, organisation_id: str) -> str | None:
        for member_of, role in self.memberships:
            if member_of == organisation_id:
                return role
        return None

    def is_lead_of(self, organisation_id: str) -> bool:
        return self.role_in(organisation_id) == MembershipRole.lead.value

    def organisation_key(self, session: Session, organisation_id: str, epoch: int) -> PrivateKey:
        """One epoch's organisation private key granted to this member; NotFound for an organisation they
        are not in, an epoch they hold no grant of, or an account without a key.

        Read from the database on every call rather than from ``memberships``: a grant revoked a second ago
        must not open the next case.
        """
        if self.private_key is None:
            raise NotFound()
        grant = member_grant(session, self.user_id, organisation_id, epoch)
        if grant is None:
            raise NotFound()
        try:
            return open_member_grant(grant, self.private_key)
        except DecryptionError:
            # A grant made to an older key pair (account reset) or damaged: for the member, it is not there.
            log.warning("a membership grant could not be opened with the member's key")
            raise NotFound() from None

    def epoch_keys(self, session: Session, organisation_id: str) -> dict[int, PrivateKey]:
        """Every live epoch key of the organisation this member holds (what a lead grants from)."""
        if self.private_key is None or self.role_in(organisation_id) is None:
            return {}
        return member_epoch_keys(session, self.user_id, self.private_key, organisation_id)
