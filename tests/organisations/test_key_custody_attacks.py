"""Key custody played by its adversaries (security.md, "What we protect, from whom"; issue 13).

- The operator: ran every `rueckhalt` command (created every account and organisation, saw every initial
  password and TOTP secret printed), holds a database dump, the data folder and every server secret. They
  open no case filed after the members set their own passwords, without a member's password or k shares.
- The thief of a dump: without the server's key pepper, even the right password opens no sealed key, so no
  guess can be checked offline.
- A removed member who kept a copy of the organisation key: opens no case filed after the removal.
- A purged case: once its epoch is destroyed, a dump from before the purge does not open it with any key
  of the organisation made after (docs/key-custody.md says what an older backup still holds).

Each scenario runs through the product's front doors (the command line, the API, the pages) and then hands
everything the adversary holds to ``tests.support.custody.cases_opened``, which tries every path the formats
allow.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from service.app import create_app
from service.audit import AuditLog
from service.auth import cli as auth_cli
from service.auth.account_keys import user_key_context
from service.auth.service import AccountService
from service.cases.models import Case
from service.cli import app
from service.config import Settings, get_settings
from service.crypto import (
    DecryptionError,
    PrivateKey,
    UnsupportedFormatError,
    derive_password_key,
    open_with_password,
    open_with_password_and_pepper,
    totp_code,
    totp_secret_from_base32,
)
from service.crypto.aead import gcm_decrypt
from service.db import utcnow
from service.identity import repository as organisations
from service.identity.grants import member_epoch_keys
from service.identity.models import MembershipRole
from service.identity.recovery import open_epochs_with_recovery, recovery_private_key
from service.runtime import Runtime, build_runtime
from tests.support.custody import Loot, cases_opened, dump_database, secrets_in, shares_in
from tests.support.forms import csrf_token, report_body
from tests.support.staff import PASSWORD, WEAK, MakeStaff

runner = CliRunner()
BAYERN_REPORT = report_body(type_codes=["A3a"], description="Drohbrief.", channel="letter")


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Iterator[Settings]:
    """The operator's environment: the command line reads it, as on a real host."""
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", database_url)
    monkeypatch.setattr(
        auth_cli,
        "account_service",
        lambda secrets: AccountService(
            secrets.session_key,
            key_peppers=secrets.key_peppers,
            params=WEAK,
            audit=AuditLog(secrets.audit_key),
        ),
    )
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@dataclass
class Operator:
    """What the operator saw: every command's output."""

    outputs: list[str]

    def run(self, *args: str, stdin: str | None = None) -> str:
        result = runner.invoke(app, list(args), input=stdin)
        assert result.exit_code == 0, result.output
        self.outputs.append(result.output)
        return result.output


def printed_credentials(output: str) -> tuple[str, bytes]:
    password = output.split("INITIAL PASSWORD")[1].splitlines()[1].strip()
    match = re.search(r"secret: ([A-Z2-7]+)", output)
    assert match
    return password, totp_secret_from_base32(match.group(1))


class Browser:
    """One member of staff at their own computer: the API for sign-in and grants, pages for the key set-up."""

    def __init__(self, runtime: Runtime, email: str, password: str, totp_secret: bytes) -> None:
        self.client = TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1")
        self.email, self.password, self.totp_secret = email, password, totp_secret
        self.step = time.time()
        self.csrf = ""

    def code(self) -> str:
        # A fresh TOTP step each time (a used step is refused): move along the clock by hand.
        self.step += 30
        return totp_code(self.totp_secret, self.step)

    def sign_in(self) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/session", json={"email": self.email, "password": self.password, "totp": self.code()}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        self.csrf = body["csrf_token"]
        return body

    def set_own_password(self, new: str) -> None:
        response = self.client.post(
            "/api/v1/session/password",
            json={"current_password": self.password, "new_password": new},
            headers={"X-CSRF-Token": self.csrf},
        )
        assert response.status_code == 204, response.text
        self.password = new

    def page_token(self, path: str) -> str:
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        return csrf_token(page.text)


def clock_for(runtime: Runtime) -> None:
    # The CLI's accounts and the app's must use the weak Argon2 parameters the tests use everywhere.
    runtime.accounts = AccountService(
        runtime.secrets.session_key, key_peppers=runtime.secrets.key_peppers, params=WEAK, audit=runtime.audit
    )


def test_the_operator_who_ran_every_command_opens_no_case(env_settings: Settings) -> None:
    """Given an operator who created every account and organisation, saw every initial password and TOTP
    secret, and holds a dump, the data folder and every server secret: the cases filed after the members set
    their own passwords stay closed to them. A member's own password (or the custodians' shares) opens them:
    the check is not blind."""
    operator = Operator([])
    operator.run("migrate")
    operator.run("org", "create", "Beratungsstelle Bayern", "--slug", "beratung-by")
    lead_credentials = printed_credentials(
        operator.run("user", "create", "lead@example.org", "--name", "Lea")
    )
    anna_credentials = printed_credentials(
        operator.run("user", "create", "anna@example.org", "--name", "Anna")
    )
    operator.run("user", "create", "admin@example.org", "--name", "Paul", "--admin")
    operator.run("user", "create", "koord@example.org", "--name", "Kim", "--coordinator")
    operator.run("org", "add-member", "beratung-by", "lead@example.org", "--role", "lead")

    runtime = build_runtime(env_settings)
    clock_for(runtime)
    try:
        lead = Browser(runtime, "lead@example.org", *lead_credentials)
        assert lead.sign_in()["must_change_password"] is True
        lead.set_own_password("Lea-eigenes-Passwort-2026")
        with runtime.sessions() as db:
            organisation = organisations.by_slug(db, "beratung-by")
            assert organisation is not None
            org_id = organisation.id
        path = f"/intern/organisationen/{org_id}"
        shares_page = lead.client.post(
            f"{path}/schluessel",
            data={"csrf_token": lead.page_token(path), "custodians": "Lea\nMax\nVorstand", "threshold": "2"},
        )
        assert shares_page.status_code == 200, shares_page.text
        shares = shares_in(shares_page.text)
        assert len(shares) == 3

        anna = Browser(runtime, "anna@example.org", *anna_credentials)
        anna.sign_in()
        anna.set_own_password("Annas-eigenes-Passwort-2026")
        granted = lead.client.post(
            f"/api/v1/organisations/{org_id}/members",
            json={"email": "anna@example.org", "role": "counsellor"},
            headers={"X-CSRF-Token": lead.csrf},
        )
        assert granted.status_code == 201, granted.text

        filed = anna.client.post("/api/v1/reports", json=BAYERN_REPORT)
        assert filed.status_code == 201, filed.text
        assert filed.json()["routed_to"], "routed to the organisation that has a key"
        receipt = filed.json()["receipt"]
        operator.run("org", "rotate", "beratung-by")
        operator.run("user", "list")
        operator.run("org", "list")
        operator.run("audit", "verify")
        second = anna.client.post("/api/v1/reports", json=BAYERN_REPORT)
        assert second.status_code == 201, second.text

        dump = dump_database(runtime.engine)
        case_ids = {row["id"] for row in dump["case_file"]}
        assert len(case_ids) == 2
        loot = Loot(peppers=secrets_in(env_settings.data_dir))
        for output in operator.outputs:
            loot.add_text(output)
        for stored in env_settings.data_dir.rglob("*"):
            if stored.is_file() and stored.suffix != ".db":
                loot.add_text(stored.read_text(errors="replace"))
        assert lead_credentials[0] in loot.passwords
        assert anna_credentials[0] in loot.passwords
        assert len(loot.peppers) >= 7, "every server secret, the key pepper among them"

        assert cases_opened(dump, loot) == set()

        # Not blind: a member's own password opens both cases, so do two custodians' shares, so does the
        # reporter's receipt (their own case).
        with_password = Loot(passwords={"Annas-eigenes-Passwort-2026"}, peppers=loot.peppers)
        assert cases_opened(dump, with_password) == case_ids
        assert cases_opened(dump, Loot(shares=set(shares[:2]))) == case_ids
        assert len(cases_opened(dump, Loot(shares=set(shares[:1])))) == 0
        assert len(cases_opened(dump, Loot(receipts={receipt}))) == 1
    finally:
        runtime.dispose()


def test_shares_typed_at_the_operators_terminal_open_nothing_after_the_renewal(
    env_settings: Settings,
) -> None:
    """Given a recovery at the operator's terminal (every member lost their password), the operator may have
    captured the shares, and with them every epoch key of that day: those open the cases of that day until
    they are purged. The lead is asked for new shares; once renewed, every epoch is wrapped to the new
    recovery key only, the captured shares open nothing in the database, and a case filed after the renewal
    is beyond the kept epoch keys too."""
    operator = Operator([])
    operator.run("migrate")
    operator.run("org", "create", "Beratungsstelle Bayern", "--slug", "beratung-by")
    lead_credentials = printed_credentials(
        operator.run("user", "create", "lead@example.org", "--name", "Lea")
    )
    operator.run("org", "add-member", "beratung-by", "lead@example.org", "--role", "lead")
    new_credentials = printed_credentials(operator.run("user", "create", "neu@example.org", "--name", "Neu"))
    runtime = build_runtime(env_settings)
    clock_for(runtime)
    try:
        lead = Browser(runtime, "lead@example.org", *lead_credentials)
        lead.sign_in()
        lead.set_own_password("Lea-eigenes-Passwort-2026")
        with runtime.sessions() as db:
            organisation = organisations.by_slug(db, "beratung-by")
            assert organisation is not None
            org_id = organisation.id
        path = f"/intern/organisationen/{org_id}"
        page = lead.client.post(
            f"{path}/schluessel",
            data={"csrf_token": lead.page_token(path), "custodians": "Lea\nMax\nVorstand", "threshold": "2"},
        )
        shares = shares_in(page.text)
        before = lead.client.post("/api/v1/reports", json=BAYERN_REPORT).json()
        newcomer = Browser(runtime, "neu@example.org", *new_credentials)
        newcomer.sign_in()
        newcomer.set_own_password("Neu-eigenes-Passwort-2026")
        # The recovery: two custodians type their shares at the operator's terminal.
        operator.run("org", "recover", "beratung-by", "neu@example.org", stdin=f"{shares[0]}\n{shares[1]}\n")
        captured = Loot(shares=set(shares))
        dump_at_recovery = dump_database(runtime.engine)
        first = {row["id"] for row in dump_at_recovery["case_file"]}
        assert cases_opened(dump_at_recovery, captured) == first, "the captured shares did open that day"
        # What the shares gave that day: every live epoch key, which the operator may have kept.
        with runtime.sessions() as db:
            organisation = organisations.by_slug(db, "beratung-by")
            assert organisation is not None
            kept = list(
                open_epochs_with_recovery(
                    db, organisation, recovery_private_key(organisation, shares[:2])
                ).values()
            )
        renewal_page = lead.client.get(path)
        assert "müssen erneuert werden" in renewal_page.text
        renewed = lead.client.post(
            f"{path}/anteile",
            data={"csrf_token": lead.page_token(path), "custodians": "Lea\nMax\nVorstand", "threshold": "2"},
        )
        assert renewed.status_code == 200, renewed.text
        assert "müssen erneuert werden" not in lead.client.get(path).text
        after = lead.client.post("/api/v1/reports", json=BAYERN_REPORT).json()
        dump = dump_database(runtime.engine)
        cases = {row["id"] for row in dump["case_file"]}
        assert len(cases) == 2
        # After the renewal every epoch is wrapped to the new recovery key only: the captured shares open
        # nothing in the database from now on. The epoch keys they gave that day still open the case of
        # that day (until it is purged), never the one filed after the renewal (a new epoch).
        assert cases_opened(dump, captured) == set()
        assert cases_opened(dump, Loot(organisation_keys=kept)) == first
        new_shares = shares_in(renewed.text)
        assert cases_opened(dump, Loot(shares=set(new_shares[1:]))) == cases
        assert before["receipt"] != after["receipt"]
    finally:
        runtime.dispose()


def test_the_thief_of_a_dump_cannot_test_a_password(
    runtime: Runtime, make_staff: MakeStaff, client: TestClient
) -> None:
    """Given a dump with a member's sealed key and a case of her organisation, and the right password but not
    the server's key pepper: the sealed key does not open, by any reading of its format, and no case opens;
    with the pepper the same password opens both (the control)."""
    anna = make_staff(email="anna@example.org", memberships=[("beratung-by", MembershipRole.counsellor)])
    assert client.post("/api/v1/reports", json=BAYERN_REPORT).status_code == 201
    dump = dump_database(runtime.engine)
    row = next(user for user in dump["staff_user"] if user["email"] == "anna@example.org")
    sealed = bytes(row["sealed_private_key"])
    context = user_key_context(anna.user_id)
    assert sealed[0] == 2
    with pytest.raises(UnsupportedFormatError):
        open_with_password_and_pepper(PASSWORD, sealed, context, (os.urandom(32),))
    with pytest.raises(UnsupportedFormatError):
        open_with_password(PASSWORD, sealed, context)
    # Read as if it were format 1 (Argon2id of the password alone as the key): no.
    header = sealed[: 1 + 12 + 16 + 4]
    stretched = derive_password_key(PASSWORD, sealed[13:29], WEAK)
    with pytest.raises(DecryptionError):
        gcm_decrypt(
            stretched, sealed[33:45], sealed[45:], b"rueckhalt/password-seal/v2" + header + context.encode()
        )
    cases = {case["id"] for case in dump["case_file"]}
    assert len(cases) == 1
    assert cases_opened(dump, Loot(passwords={PASSWORD}, peppers=[os.urandom(32)])) == set()
    assert cases_opened(dump, Loot(passwords={PASSWORD}, peppers=list(runtime.secrets.key_peppers))) == cases
    opened = open_with_password_and_pepper(PASSWORD, sealed, context, runtime.secrets.key_peppers)
    assert PrivateKey(opened).public_key().raw == bytes(row["public_key"])


def test_a_removed_member_with_a_copy_of_the_key_opens_no_later_case(
    runtime: Runtime, accounts: AccountService, make_staff: MakeStaff, subject_of: Any, client: TestClient
) -> None:
    """Given a counsellor who copied every organisation key they held, then was removed: a case filed after
    the removal stays closed to the copy; one filed before still opens with it (they could read it then)."""
    lead = subject_of(make_staff(memberships=[("beratung-by", MembershipRole.lead)]))
    leaving = make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])
    leaving_subject = subject_of(leaving)
    before = client.post("/api/v1/reports", json=BAYERN_REPORT).json()
    with runtime.sessions() as db:
        organisation = organisations.by_slug(db, "beratung-by")
        assert organisation is not None
        copies = list(
            member_epoch_keys(db, leaving.user_id, leaving_subject.private_key, organisation.id).values()
        )
        assert copies
        assert accounts.revoke_as_lead(db, lead, organisation.id, leaving.user_id)
        db.commit()
    after = client.post("/api/v1/reports", json=BAYERN_REPORT).json()
    dump = dump_database(runtime.engine)
    opened = cases_opened(dump, Loot(organisation_keys=copies))
    ids = {row["id"] for row in dump["case_file"]}
    assert len(ids) == 2
    assert len(opened) == 1
    assert before["receipt"] != after["receipt"]
    # The remaining lead opens both: the rotation granted the new epoch to every remaining member.
    with runtime.sessions() as db:
        remaining = list(member_epoch_keys(db, lead.user_id, lead.private_key, organisation.id).values())
    assert cases_opened(dump, Loot(organisation_keys=remaining)) == ids


def test_a_purged_case_stays_closed_in_an_older_dump_to_the_keys_made_after(
    runtime: Runtime, make_staff: MakeStaff, subject_of: Any, client: TestClient
) -> None:
    """Given a closed case wrapped to an epoch that a rotation retired, when the case is purged, the epoch is
    destroyed: no grant or recovery wrap of it is left in the database. A dump taken before the purge,
    together with every organisation key that exists after it, opens nothing of the purged case."""
    lead = subject_of(make_staff(memberships=[("beratung-by", MembershipRole.lead)]))
    shares = runtime.recovery_shares["beratung-by"]  # type: ignore[attr-defined]
    assert client.post("/api/v1/reports", json=BAYERN_REPORT).status_code == 201
    with runtime.sessions() as db:
        organisation = organisations.by_slug(db, "beratung-by")
        assert organisation is not None
        org_id, old_epoch = organisation.id, organisation.current_epoch
        runtime.accounts.custody.rotate(db, organisation, "operator", None)
        db.commit()
    old_dump = dump_database(runtime.engine)
    case_id = old_dump["case_file"][0]["id"]
    assert cases_opened(old_dump, Loot(shares=set(shares[:2]))) == {case_id}
    with runtime.sessions() as db:
        # Closed long ago: the retention run purges it, then destroys the epoch nobody needs any more.
        db.execute(
            update(Case).values(
                status="closed", outcome="supported", closed_at=datetime(2000, 1, 1, tzinfo=UTC)
            )
        )
        db.commit()
        report = runtime.retention.purge(db, utcnow(), dry_run=False)
        db.commit()  # the task's transaction
        # An epoch is destroyed a day after it was retired at the earliest (a wrap may still be in flight).
        assert report.key_epochs == 0
        later = runtime.retention.purge(db, utcnow() + timedelta(days=2), dry_run=False)
        db.commit()  # the task's transaction
    assert len(report.purged) == 1
    assert later.key_epochs >= 1
    new_dump = dump_database(runtime.engine)
    epoch_row = next(
        row
        for row in new_dump["organisation_key_epoch"]
        if row["organisation_id"] == org_id and row["epoch"] == old_epoch
    )
    assert epoch_row["destroyed_at"] is not None
    assert epoch_row["recovery_wrapped_private_key"] is None
    left = [
        g for g in new_dump["member_key_grant"] if g["organisation_id"] == org_id and g["epoch"] == old_epoch
    ]
    assert left == []
    # Every key of the organisation that exists now: the lead's grants (the shares open the same epochs).
    with runtime.sessions() as db:
        now_keys = member_epoch_keys(db, lead.user_id, lead.private_key, org_id)
    assert old_epoch not in now_keys
    assert cases_opened(old_dump, Loot(organisation_keys=list(now_keys.values()))) == set()
    # The old dump's own copies of the epoch (under the shares of that day) still open it: that is why
    # backups expire (docs/key-custody.md, "What an older backup still holds").
    assert cases_opened(old_dump, Loot(shares=set(shares[:2]))) == {case_id}
