"""Account and membership changes are written to the hash-chained audit log with the change itself."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from service.audit import verify
from service.audit.models import AuditEvent
from service.auth.service import AccountService
from service.identity import repository as organisations
from service.identity.models import MembershipRole
from service.runtime import Runtime
from tests.support.staff import MakeStaff, Staff


def events_about(runtime: Runtime, user_id: str) -> list[tuple[str, str, str | None]]:
    with runtime.sessions() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.object_id == user_id).order_by(AuditEvent.seq))
        return [(row.action, row.actor_kind, row.actor_id) for row in rows]


def test_create_grant_login_revoke_are_audited(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, code: Callable[[Staff], str]
) -> None:
    staff = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    with runtime.sessions() as db:
        assert accounts.login(db, staff.email, staff.password, code(staff)) is not None
        db.commit()
        org = organisations.by_slug(db, "beratung-by")
        assert org is not None
        assert accounts.revoke_membership(db, org.id, staff.user_id)
        db.commit()

    events = events_about(runtime, staff.user_id)

    assert [action for action, _, _ in events] == [
        "account.create",
        "membership.grant",
        "auth.login",
        "membership.revoke",
    ]
    assert events[0][1] == "operator"
    assert events[2] == ("auth.login", "staff", staff.user_id)
    with runtime.sessions() as db:
        assert verify(db, runtime.secrets.audit_key).ok


def test_a_failed_login_changes_nothing_in_the_log(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, code: Callable[[Staff], str]
) -> None:
    staff = make_staff()
    with runtime.sessions() as db:
        assert accounts.login(db, staff.email, "wrong password entirely", code(staff)) is None
        db.commit()
    assert [action for action, _, _ in events_about(runtime, staff.user_id)] == ["account.create"]
