"""Membership changes of the account service: grants of an organisation key, revocations, first leads.

``MembershipAdmin`` is a base of ``AccountService`` (``service/auth/service.py``): a grant or revocation is
an account change, audited with the others in the caller's transaction. The keys themselves move in
``service/identity`` (``grants``, ``KeyCustody``); this layer adds who may ask (a lead for their own
organisation, the operator's command line) and the record of it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth.errors import AccountError
from service.auth.subject import Subject
from service.crypto import PrivateKey
from service.db import new_id, utcnow
from service.errors import NotFound
from service.identity import repository as organisations
from service.identity.custody import KeyCustody, RotationReason
from service.identity.grants import CustodyError, grant_epochs
from service.identity.models import Membership, MembershipRole, Organisation, StaffUser


class MembershipAdmin:
    """The membership half of ``AccountService``, which sets both attributes below; ``_record`` serves
    the account changes there too."""

    audit: AuditLog | None
    custody: KeyCustody

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
