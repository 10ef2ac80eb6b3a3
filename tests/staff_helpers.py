"""Helpers for tests with staff accounts: a hand-moved clock, weak Argon2 (fast tests), account factory.

Only tests/auth/test_accounts.py::test_production_argon2_parameters_are_rfc_9106 uses the real parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from service.auth.service import AccountService
from service.crypto import Argon2Params
from service.organisations import repository as organisations
from service.organisations.models import MembershipRole
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


def weak_accounts(runtime: Runtime, clock: Clock) -> AccountService:
    service = AccountService(runtime.secrets.session_key, params=WEAK, clock=clock, audit=runtime.audit)
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
        recovery: dict[str, str] = runtime.recovery_keys  # type: ignore[attr-defined]
        with runtime.sessions() as db:
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
                accounts.grant_with_recovery_key(db, organisation, created.user, role, recovery[slug])
            db.commit()
            return Staff(
                user_id=created.user.id,
                email=created.user.email,
                password=password,
                totp_secret=created.totp_secret,
                memberships=[(slug, role.value) for slug, role in memberships or []],
            )

    return make
