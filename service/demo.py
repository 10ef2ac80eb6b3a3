"""Demo data for the embedded default: organisations with keys, a few reports filed through the real intake.
The synthetic year behind the dashboard follows in the worker (service/demo_year.py).

Demo only: recovery keys, receipts and staff credentials are written to files in the data folder (0600) so
that a person trying the service can use them. Production refuses to load any of this.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from service.auth import repository as staff_repository
from service.auth.service import AccountService
from service.config import ConfigurationError, Mode, Settings
from service.crypto import Argon2Params
from service.identity import repository
from service.identity.grants import lock_organisations
from service.identity.models import MembershipRole
from service.organisations.service import create_organisation
from service.reports.filing import CaseDraft, DemoFiling
from service.reports.schemas import ReportCreate
from service.runtime import Runtime, build_runtime


class DemoReport(TypedDict):
    """A demo report as the intake's JSON body (``ReportCreate``) without ``occurred_on``, which is set
    relative to the day the demo is loaded."""

    land: str
    district_ags: NotRequired[str]
    municipality: NotRequired[str]
    type_codes: list[str]
    description: str
    channel: str
    urgency: str
    office: str


DEMO_REPORTS: list[DemoReport] = [
    {
        "land": "09",
        "district_ags": "09162",
        "municipality": "Musterstadt (Demo)",
        "type_codes": ["A3a"],
        "description": "Demo: Drohschreiben mit Todesdrohung nach der Ratssitzung.",
        "channel": "letter",
        "urgency": "high",
        "office": "mayor_volunteer",
    },
    {
        "land": "14",
        "district_ags": "14522",
        "type_codes": ["A1", "A10"],
        "description": "Demo: Beleidigungen und ein Shitstorm unter einem Beitrag der Gemeinde.",
        "channel": "social_media.public_post",
        "urgency": "normal",
        "office": "council_member",
    },
    {
        "land": "03",
        "type_codes": ["C1"],
        "description": "Demo: Reifen am Dienstwagen zerstochen.",
        "channel": "in_person.home",
        "urgency": "normal",
        "office": "mayor_fulltime",
    },
]


DEMO_STAFF_DOMAIN = "demo.rueckhalt.example"


class DemoRole(StrEnum):
    counsellor = "counsellor"
    lead = "lead"
    coordinator = "coordinator"
    admin = "admin"


@dataclass(frozen=True, slots=True)
class DemoStaff:
    email: str
    name: str
    role: DemoRole  # as written to demo-credentials.json
    memberships: tuple[tuple[str, MembershipRole], ...]  # organisation slug and role there


# One of each role; the counsellors in two organisations, so that "sees only its own cases" can be tried.
DEMO_STAFF: list[DemoStaff] = [
    DemoStaff(
        email=f"beraterin.bayern@{DEMO_STAFF_DOMAIN}",
        name="Anna Berger (Demo)",
        role=DemoRole.counsellor,
        memberships=(("beratung-by", MembershipRole.counsellor),),
    ),
    DemoStaff(
        email=f"leitung.bayern@{DEMO_STAFF_DOMAIN}",
        name="Lena Huber (Demo)",
        role=DemoRole.lead,
        memberships=(("beratung-by", MembershipRole.lead),),
    ),
    DemoStaff(
        email=f"berater.online@{DEMO_STAFF_DOMAIN}",
        name="Max Schneider (Demo)",
        role=DemoRole.counsellor,
        memberships=(("online-hass", MembershipRole.counsellor),),
    ),
    DemoStaff(
        email=f"koordination@{DEMO_STAFF_DOMAIN}",
        name="Clara Wolf (Demo)",
        role=DemoRole.coordinator,
        memberships=(),
    ),
    DemoStaff(
        email=f"administration@{DEMO_STAFF_DOMAIN}",
        name="Paul Richter (Demo)",
        role=DemoRole.admin,
        memberships=(),
    ),
]


def _write_private(path: Path, data: Any) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)


# The demo plays every custodian; a real organisation names three people who keep their share apart.
DEMO_CUSTODIANS = ("Demo-Verwahrerin A", "Demo-Verwahrer B", "Demo-Verwahrerin C")


def _load_demo_staff(
    settings: Settings, runtime: Runtime, accounts: AccountService, shares: dict[str, list[str]]
) -> int:
    """Create the demo staff accounts that are missing and write their credentials (0600).

    Demo accounts need no password change: the point is to try the service at once, so they are made with
    passwords of their own (and key pairs) right away. Memberships are granted with the recovery shares of
    the demo organisations (demo-recovery-shares.json): the demo plays all custodians at once, which a real
    installation never does (docs/key-custody.md).
    """
    path = settings.data_dir / "demo-credentials.json"
    entries: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    created = 0
    with runtime.sessions() as session:
        # Every grant locks its organisation, and every account's creation is audited: all of them are
        # locked before the first audit row (``identity.grants.lock_organisation`` says why).
        slugs = {slug for spec in DEMO_STAFF for slug, _ in spec.memberships if slug in shares}
        lock_organisations(session, filter(None, (repository.by_slug(session, slug) for slug in slugs)))
        for spec in DEMO_STAFF:
            if staff_repository.user_by_email(session, spec.email) is not None:
                continue
            credentials = accounts.create_user(
                session,
                spec.email,
                spec.name,
                is_admin=spec.role is DemoRole.admin,
                is_coordinator=spec.role is DemoRole.coordinator,
                must_change_password=False,
            )
            names = []
            for slug, role in spec.memberships:
                organisation = repository.by_slug(session, slug)
                if organisation is None or slug not in shares:
                    continue
                accounts.grant_with_shares(session, organisation, shares[slug], credentials.user, role)
                names.append(organisation.display_name)
            entries = [entry for entry in entries if entry.get("email") != credentials.user.email]
            entries.append(
                {
                    "email": credentials.user.email,
                    "password": credentials.password,
                    "totp_secret": credentials.totp_secret_base32,
                    "role": spec.role.value,
                    "organisations": names,
                }
            )
            created += 1
        session.commit()
    if created:
        _write_private(path, entries)
    return created


def load_demo(settings: Settings, argon2_params: Argon2Params | None = None) -> dict[str, int]:
    """Load what is missing of the demo. ``argon2_params`` only for tests: the default is production's."""
    if settings.mode is Mode.production:
        raise ConfigurationError("demo data is refused in production mode")
    runtime = build_runtime(settings)
    created_orgs = 0
    filed = 0
    staff = 0
    try:
        shares_path = settings.data_dir / "demo-recovery-shares.json"
        shares: dict[str, list[str]] = json.loads(shares_path.read_text()) if shares_path.exists() else {}
        with runtime.sessions() as session:
            for org in runtime.policy.organisations:
                existing = repository.by_slug(session, org.slug)
                if existing is not None and existing.public_key is not None:
                    continue
                organisation = existing or create_organisation(
                    session, org.slug, org.display_name, org.kind, runtime.audit
                )
                made = runtime.accounts.custody.set_up(
                    session, organisation, DEMO_CUSTODIANS, 2, lead=None, actor_id=None
                )
                shares[org.slug] = [item.share for item in made]
                created_orgs += 1
            session.commit()
        if created_orgs:
            _write_private(shares_path, shares)
        receipts_path = settings.data_dir / "demo-receipts.json"
        if not receipts_path.exists():
            receipts = []
            for index, raw in enumerate(DEMO_REPORTS):
                data = ReportCreate.model_validate(
                    {**raw, "occurred_on": (date.today() - timedelta(days=3 + index)).isoformat()}  # noqa: DTZ011
                )
                with runtime.sessions() as session:
                    filed_report = runtime.intake.file_report(
                        session, data, CaseDraft.new(), [], demo=DemoFiling()
                    )
                    session.commit()
                receipts.append({"receipt": filed_report.receipt, "routed_to": filed_report.routed_to})
                filed += 1
            _write_private(receipts_path, receipts)
        accounts = (
            AccountService(
                runtime.secrets.session_key,
                key_peppers=runtime.secrets.key_peppers,
                params=argon2_params,
                audit=runtime.audit,
            )
            if argon2_params is not None
            else runtime.accounts
        )
        staff = _load_demo_staff(settings, runtime, accounts, shares)
    finally:
        runtime.dispose()
    # The synthetic year (service/demo_year.py) takes longer: the worker loads it once the service is up.
    return {"organisations_created": created_orgs, "reports_filed": filed, "staff_accounts_created": staff}
