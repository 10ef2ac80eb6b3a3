"""Helpers for tests with staff accounts: a hand-moved clock, weak Argon2 (fast tests), account factory.

Only tests/auth/test_accounts.py::test_production_argon2_parameters_are_rfc_9106 uses the real parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi.testclient import TestClient

from service.auth.service import AccountService
from service.crypto import Argon2Params, totp_code
from service.db import new_id, utcnow
from service.identity import repository as organisations
from service.identity.custody import KeyCustody
from service.identity.grants import lock_organisations
from service.identity.models import Membership, MembershipRole
from service.organisations.service import create_organisation
from service.runtime import Runtime

WEAK = Argon2Params(memory_kib=8192, iterations=1, lanes=1)
PASSWORD = "Kirchturm-Nebel-Apfelbaum-7"


class Clock:
    """Seconds since the epoch, moved by hand: TOTP codes and their replay refusal without waiting."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 30.0) -> None:
        self.now += seconds


@dataclass
class Staff:
    user_id: str
    email: str
    password: str
    totp_secret: bytes
    memberships: list[tuple[str, str]] = field(default_factory=list)


MakeStaff = Callable[..., Staff]
# The ``login`` fixture of tests/conftest.py: signs a staff member in through the API.
Login = Callable[[Staff], TestClient]


def totp_codes(clock: Clock) -> Callable[[Staff], str]:
    """The current TOTP code of a staff member; the clock moves on, so the next call gets a fresh one."""

    def current(staff: Staff) -> str:
        value = totp_code(staff.totp_secret, clock())
        clock.advance(30)
        return value

    return current


CUSTODIANS = ("Verwahrerin A", "Verwahrer B", "Verwahrerin C")


def with_policy_organisations(runtime: Runtime) -> Runtime:
    """Every organisation of the demo policy in the runtime's database, each with a key.

    The keys are set up without a lead and members are granted with the recovery shares, the way the demo
    does it (the test plays every custodian); the lead's set-up in the browser has tests of its own.
    """
    shares: dict[str, list[str]] = {}
    custody = KeyCustody(runtime.audit)
    with runtime.sessions() as session:
        for org in runtime.policy.organisations:
            organisation = create_organisation(session, org.slug, org.display_name, org.kind)
            made = custody.set_up(session, organisation, CUSTODIANS, 2, lead=None, actor_id=None)
            shares[org.slug] = [item.share for item in made]
        session.commit()
    runtime.recovery_shares = shares  # type: ignore[attr-defined]
    return runtime


def weak_accounts(runtime: Runtime, clock: Clock) -> AccountService:
    service = AccountService(
        runtime.secrets.session_key,
        key_peppers=runtime.secrets.key_peppers,
        params=WEAK,
        clock=clock,
        audit=runtime.audit,
    )
    runtime.accounts = service
    return service


def staff_factory(runtime: Runtime, accounts: AccountService) -> MakeStaff:
    counter = iter(range(1, 1000))

    def make(
        *,
        email: str | None = None,
        name: str = "Anna Berger",
        admin: bool = False,
        coordinator: bool = False,
        must_change_password: bool = False,
        password: str = PASSWORD,
        memberships: list[tuple[str, MembershipRole]] | None = None,
    ) -> Staff:
        address = email or f"staff{next(counter)}@example.org"
        shares: dict[str, list[str]] = runtime.recovery_shares  # type: ignore[attr-defined]
        with runtime.sessions() as db:
            # Locked before the account's audit row, as the service's own paths do (lock_organisation).
            found = [organisations.by_slug(db, slug) for slug, _ in memberships or []]
            lock_organisations(db, [organisation for organisation in found if organisation is not None])
            created = accounts.create_user(
                db,
                address,
                name,
                is_admin=admin,
                is_coordinator=coordinator,
                password=password,
                must_change_password=must_change_password,
            )
            for slug, role in memberships or []:
                organisation = organisations.by_slug(db, slug)
                assert organisation is not None
                if created.user.has_key:
                    accounts.grant_with_shares(db, organisation, shares[slug][:2], created.user, role)
                else:
                    # An account on its initial password holds no key, so nothing can be granted to it: it
                    # is a member in name only (as a first lead is before the organisation has a key).
                    db.add(
                        Membership(
                            id=new_id(),
                            user_id=created.user.id,
                            organisation_id=organisation.id,
                            role=role.value,
                            granted_by=None,
                            created_at=utcnow(),
                        )
                    )
            db.commit()
            return Staff(
                user_id=created.user.id,
                email=created.user.email,
                password=password,
                totp_secret=created.totp_secret,
                memberships=[(slug, role.value) for slug, role in memberships or []],
            )

    return make
