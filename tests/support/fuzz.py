"""Helpers of tests/fuzz: one world with a case, staff of every role and a reporter; a snapshot of all
stored state, so that a refused request can be shown to have changed nothing.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.app import create_app
from service.audit.models import AuditEvent
from service.config import Settings
from service.crypto import totp_code
from service.db import utcnow
from service.identity.models import MembershipRole
from service.models import Base
from service.outbox.models import WorkerHeartbeat
from service.runtime import Runtime, build_runtime
from service.statistics.dashboard.service import make_snapshot
from service.statistics.domains import domains_from
from service.statistics.policy import load_statistics_policy
from tests.support.forms import csrf_token, report_body, submission_token
from tests.support.staff import Clock, Staff, staff_factory, weak_accounts, with_policy_organisations

BASE_URL = "http://127.0.0.1"
# Limits high enough that generated traffic from one client address reaches the handlers instead of
# bouncing off 429 after the first minutes; 429 itself is documented and tested in tests/reports.
GENEROUS_LIMITS: dict[str, int] = {
    "intake_limit_per_hour": 1_000_000,
    "receipt_limit_per_hour": 1_000_000,
    "login_limit_per_hour": 1_000_000,
    "login_account_limit_per_hour": 1_000_000,
}
# The staff roles of the service: members of an organisation (MembershipRole), and the two roles that are
# never members (coordinator and administrator, separation of duties); "pending" still has to replace
# an initial password, so everything but the session routes answers 403.
STAFF_ROLES = ("counsellor", "lead", "coordinator", "admin", "pending")
# The organisation the world's case is routed to (Land 09, Bayern).
HOLDER = "beratung-by"


def receipt_from(html: str) -> str:
    text = re.sub(r"<[^>]+>", "", html)
    match = re.search(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}", text)
    assert match, "the receipt page shows the code"
    return match.group(0)


# -- state snapshots ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Row counts of every table and the blob folder's listing (names of complete and partial blobs)."""

    rows: dict[str, int]
    blobs: frozenset[str]

    def changes(self, later: Snapshot) -> dict[str, Any]:
        """What differs in ``later``: tables with their counts before and after, blobs that came or went."""
        changed: dict[str, Any] = {
            name: (count, later.rows.get(name))
            for name, count in self.rows.items()
            if later.rows[name] != count
        }
        if later.blobs != self.blobs:
            changed["blobs"] = {
                "new": sorted(later.blobs - self.blobs),
                "gone": sorted(self.blobs - later.blobs),
            }
        return changed


# Audit actions that record a reading, not a change: a refused form on a case page shows the case page
# again, and every showing of a decrypted case is audited by design.
READINGS = ("case.decrypt", "attachment.download", "dashboard.view", "dashboard.export")


def snapshot(runtime: Runtime, *, ignore: tuple[str, ...] = ("rate_limit_counter",)) -> Snapshot:
    """Every table of the metadata (service.models registers them all) and every file under the blob
    folder. The rate-limit counters are left out unless asked for: they count attempts by design; audit
    events of readings (READINGS) are not counted either."""
    with runtime.sessions() as db:
        rows = {}
        for table in Base.metadata.sorted_tables:
            if table.name in ignore:
                continue
            query = select(func.count()).select_from(table)
            if table is AuditEvent.__table__:
                query = query.where(AuditEvent.action.not_in(READINGS))
            rows[table.name] = int(db.scalar(query) or 0)
    root = runtime.settings.blob_dir
    blobs = frozenset(
        str(Path(folder).relative_to(root) / name) for folder, _dirs, names in os.walk(root) for name in names
    )
    return Snapshot(rows=rows, blobs=blobs)


@contextmanager
def unchanged(runtime: Runtime) -> Iterator[None]:
    """Asserts that the block stored nothing and wrote no blob (not even a partial one that stayed)."""
    before = snapshot(runtime)
    yield
    changes = before.changes(snapshot(runtime))
    assert not changes, f"a refused request changed stored state: {changes}"


# -- the world: a runtime with every organisation, a case with a file, and staff of every role ------------


@dataclass
class World:
    runtime: Runtime
    app: FastAPI
    clock: Clock
    staff: dict[str, Staff]
    receipt: str
    case_id: str
    attachment_id: str
    make_staff: Callable[..., Staff]
    # The month of the coordinators' released snapshot (YYYY-MM).
    snapshot_month: str = ""
    recovery_shares: dict[str, list[str]] = field(default_factory=dict)

    def code(self, staff: Staff) -> str:
        value = totp_code(staff.totp_secret, self.clock())
        self.clock.advance(30)
        return value

    def beat(self) -> None:
        """A fresh worker heartbeat: /healthz is 200 only while a worker is alive, and here none runs."""
        with self.runtime.sessions() as db:
            db.merge(WorkerHeartbeat(name="worker", beat_at=utcnow()))
            db.commit()

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=BASE_URL)

    def sign_in(self, staff: Staff) -> tuple[str, str]:
        """A fresh staff session: the cookie value and the session's CSRF token."""
        with self.client() as client:
            body = {"email": staff.email, "password": staff.password, "totp": self.code(staff)}
            response = client.post("/api/v1/session", json=body)
            assert response.status_code == 200, response.text
            return str(response.cookies["rh_staff"]), str(response.json()["csrf_token"])

    def reporter(self, client: TestClient) -> None:
        """Sign ``client`` in on /fall with the world's receipt (the reporter's page session)."""
        token = csrf_token(client.get("/fall").text)
        response = client.post(
            "/fall/anmelden", data={"csrf_token": token, "receipt": self.receipt}, follow_redirects=False
        )
        assert response.status_code == 303, response.text

    def staff_client(self, role: str) -> TestClient:
        """A TestClient signed in by API as the staff member of ``role``, CSRF header set; not entered."""
        cookie, token = self.sign_in(self.staff[role])
        client = self.client()
        client.cookies.set("rh_staff", cookie)
        client.headers["X-CSRF-Token"] = token
        return client


def world_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Settings(data_dir=data_dir, database_url=database_url, **{**GENEROUS_LIMITS, **overrides})


def sqlite_copy(template: Path, data_dir: Path) -> str:
    """A migrated SQLite database of its own, copied from the session's template."""
    data_dir.mkdir(parents=True, exist_ok=True)
    database = data_dir / "rueckhalt.db"
    shutil.copyfile(template, database)
    return f"sqlite:///{database}"


def build_world(settings: Settings) -> World:
    runtime = build_runtime(settings)
    with_policy_organisations(runtime)
    clock = Clock()
    make_staff = staff_factory(runtime, weak_accounts(runtime, clock))
    staff = {
        "counsellor": make_staff(memberships=[(HOLDER, MembershipRole.counsellor)]),
        "lead": make_staff(memberships=[(HOLDER, MembershipRole.lead)]),
        "coordinator": make_staff(coordinator=True),
        "admin": make_staff(admin=True),
        "pending": make_staff(must_change_password=True, memberships=[(HOLDER, MembershipRole.counsellor)]),
    }
    app = create_app(runtime=runtime)
    with TestClient(app, base_url=BASE_URL) as client:
        form = client.get("/melden").text
        filed = client.post(
            "/melden",
            data=report_body(
                csrf_token=csrf_token(form),
                submission_token=submission_token(form),
                district_ags="09162",
                type_codes=["A3a"],
                description="Drohbrief im Briefkasten.",
                channel="letter",
            ),
            files=[("attachments", ("beweis.txt", b"Beweisfoto folgt.", "text/plain"))],
        )
        assert filed.status_code == 201, filed.text
        receipt = receipt_from(filed.text)
    world = World(
        runtime=runtime,
        app=app,
        clock=clock,
        staff=staff,
        receipt=receipt,
        case_id="",
        attachment_id="",
        make_staff=make_staff,
        recovery_shares=runtime.recovery_shares,  # type: ignore[attr-defined]
    )
    with world.staff_client("counsellor") as counsellor:
        case_id = counsellor.get("/api/v1/cases").json()[0]["id"]
        world.case_id = str(case_id)
        world.attachment_id = str(counsellor.get(f"/api/v1/cases/{case_id}").json()["attachments"][0]["id"])
    # A released snapshot of the one case, so the coordinators' figures have something to show.
    world.snapshot_month = utcnow().strftime("%Y-%m")
    with runtime.sessions() as db:
        made = make_snapshot(
            db,
            as_of=world.snapshot_month,
            domains=domains_from(runtime.taxonomy),
            rules=load_statistics_policy(settings.policies_dir).coordinator,
            audit=runtime.audit,
        )
        db.commit()
    assert made.released
    return world
