"""Migration 0011 (key custody) with data in the formats before it, on SQLite and PostgreSQL.

Written at revision 0010 exactly as the code before wrote it: a counsellor's key, made under the initial
password the operator printed and later re-sealed under her own password with Argon2id alone (format 1:
the same key, so a backup from before her change plus that initial password opens it), a second account
still on the initial password the operator saw (its key sealed under that), both granted the organisation
key, the organisation's private key sealed under the recovery key printed to the operator, and a case
wrapped to it. Then `rueckhalt migrate`, as an operator upgrading would run it, and the counsellor's next
sign-in.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from service.app import create_app
from service.audit import AuditLog
from service.auth.service import AccountService
from service.cli import app
from service.config import Settings, get_settings, load_secrets
from service.crypto import (
    Context,
    PrivateKey,
    generate_keypair,
    keyed_hash,
    new_data_key,
    new_recovery_key,
    new_totp_secret,
    open_with_password,
    recovery_wrapping_key,
    seal,
    seal_private_key,
    seal_with_password,
    totp_code,
    wrap_key,
)
from service.db import make_engine
from service.identity.grants import seal_member_grant
from service.identity.models import MemberKeyGrant, Membership, Organisation, OrganisationKeyEpoch, StaffUser
from service.organisations.upgrade import upgrade_key_custody
from service.runtime import build_runtime
from tests.support.custody import Loot, cases_opened, dump_database
from tests.support.forms import report_body
from tests.support.migration import insert_old_case, insert_row, migrate_to
from tests.support.staff import WEAK

OWN = "Eigenes-Passwort-aus-2025"
INITIAL = "abcd-efgh-jkmn-pqrs-tvwx"
ANNAS_INITIAL = "zyxw-vtsr-qpnm-kjhg-fedc"


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, empty_database: str) -> Iterator[Settings]:
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", empty_database)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_the_upgrade_moves_keys_grants_and_organisations_to_the_new_custody(env_settings: Settings) -> None:
    secrets = load_secrets(env_settings)
    engine = make_engine(env_settings.resolved_database_url)
    migrate_to(engine, "0010")
    now = datetime.now(UTC)
    totp_key = keyed_hash(secrets.session_key, "totp-at-rest", b"")
    org_id, case_id = str(uuid.uuid4()), str(uuid.uuid4())
    org_private, org_public = generate_keypair()
    recovery_key = new_recovery_key()
    insert_row(
        engine,
        "organisation",
        id=org_id,
        slug="beratung-by",
        display_name="Beratung Bayern",
        kind="counselling",
        public_key=org_public.raw,
        recovery_sealed_private_key=seal_private_key(
            org_private,
            recovery_wrapping_key(recovery_key),
            Context("org_private", record_id=org_id, field="recovery"),
        ),
        active=True,
        created_at=now,
    )
    users = {}
    old_backup_seal = b""
    for email, password, pending in (("anna@example.org", OWN, False), ("neu@example.org", INITIAL, True)):
        user_id = str(uuid.uuid4())
        private, public = generate_keypair()
        totp_secret = new_totp_secret()
        users[email] = (user_id, totp_secret)
        if not pending:
            # What a backup taken before Anna changed her initial password holds.
            old_backup_seal = seal_with_password(
                ANNAS_INITIAL, private.raw, Context("user_private", record_id=user_id), WEAK
            )
        insert_row(
            engine,
            "staff_user",
            id=user_id,
            email=email,
            display_name=email.split("@")[0],
            is_admin=False,
            is_coordinator=False,
            public_key=public.raw,
            sealed_private_key=seal_with_password(
                password, private.raw, Context("user_private", record_id=user_id), WEAK
            ),
            sealed_totp_secret=seal(totp_key, totp_secret, Context("totp_secret", record_id=user_id)),
            must_change_password=pending,
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
        wrapped, sealed = seal_member_grant(org_private, public, org_id, user_id, 1)
        insert_row(
            engine,
            "membership",
            id=str(uuid.uuid4()),
            user_id=user_id,
            organisation_id=org_id,
            role="counsellor",
            wrapped_grant_key=wrapped,
            sealed_organisation_key=sealed,
            created_at=now,
        )
    data_key = new_data_key()
    insert_old_case(
        engine,
        case_id,
        now,
        details_ciphertext=seal(
            data_key, json.dumps({"municipality": "X"}).encode(), Context("case_details", case_id)
        ),
        ack_deadline_at=now + timedelta(hours=4),
    )
    insert_row(
        engine,
        "case_key_grant",
        id=str(uuid.uuid4()),
        case_id=case_id,
        organisation_id=org_id,
        wrapped_key=wrap_key(data_key, org_public, Context("case_key", case_id=case_id, record_id=org_id)),
        role="target",
        active=True,
        granted_at=now,
        opened_at=now,
    )
    old_dump = dump_database(engine)
    # Before: a thief of the dump tests Anna's password offline, and it opens the case.
    assert cases_opened(old_dump, Loot(passwords={OWN})) == {case_id}
    # The operator's way: the old backup and the initial password he printed give Anna's key itself.
    anna_id = users["anna@example.org"][0]
    inherited_key = PrivateKey(
        open_with_password(ANNAS_INITIAL, old_backup_seal, Context("user_private", record_id=anna_id))
    )
    assert cases_opened(old_dump, Loot(staff_keys=[inherited_key])) == {case_id}

    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "1 staff keys now need the key pepper" in result.output
    assert "1 keys under initial passwords removed" in result.output
    # Not yet: Anna's key is inherited, and a new epoch wrapped to it would be open to the operator.
    assert "0 organisations began a new key epoch" in result.output
    again = CliRunner().invoke(app, ["migrate"])
    assert "key custody" not in again.output, "the upgrade runs once"

    dump = dump_database(engine)
    anna = next(row for row in dump["staff_user"] if row["email"] == "anna@example.org")
    newcomer = next(row for row in dump["staff_user"] if row["email"] == "neu@example.org")
    assert bytes(anna["sealed_private_key"])[0] == 3
    assert newcomer["public_key"] is None
    assert newcomer["sealed_private_key"] is None
    assert newcomer["initial_password_seal"] is not None
    # The thief's offline guess no longer checks anything; with the pepper the same password still works.
    assert cases_opened(dump, Loot(passwords={OWN, INITIAL})) == set()
    assert cases_opened(dump, Loot(passwords={OWN}, peppers=[secrets.key_pepper])) == {case_id}
    assert cases_opened(dump, Loot(passwords={INITIAL}, peppers=[secrets.key_pepper])) == set()

    runtime = build_runtime(env_settings)
    runtime.accounts = AccountService(
        secrets.session_key, key_peppers=secrets.key_peppers, params=WEAK, audit=AuditLog(secrets.audit_key)
    )
    try:
        with runtime.sessions() as db:
            organisation = db.scalars(select(Organisation)).one()
            assert organisation.current_epoch == 1
            assert organisation.recovery_renewal_needed is True
            assert [m.user_id for m in db.scalars(select(Membership))] == [anna_id]
        after_upgrade = dump_database(engine)
        assert cases_opened(after_upgrade, Loot(staff_keys=[inherited_key])) == {case_id}
        with runtime.sessions() as db:
            # Anna signs in with her password: a new key pair (format 2), her grants move to it, and the
            # organisation begins epoch 2, wrapped to no key the operator may know.
            step = time.time()
            logged_in = runtime.accounts.login(
                db, "anna@example.org", OWN, totp_code(users["anna@example.org"][1], step)
            )
            assert logged_in is not None
            assert logged_in.private_key is not None
            db.commit()
            anna_row = db.get(StaffUser, anna_id)
            assert anna_row is not None
            assert anna_row.sealed_private_key is not None
            assert anna_row.sealed_private_key[0] == 2
            assert anna_row.key_inherited is False
            assert logged_in.private_key != inherited_key
            organisation = db.scalars(select(Organisation)).one()
            assert organisation.current_epoch == 2
            epochs = db.scalars(select(OrganisationKeyEpoch).order_by(OrganisationKeyEpoch.epoch)).all()
            assert [(e.epoch, e.retired_at is not None) for e in epochs] == [(1, True), (2, False)]
            assert sorted(g.epoch for g in db.scalars(select(MemberKeyGrant))) == [1, 2]
            # The account on its initial password signs in with it, holding no key.
            keyless = runtime.accounts.login(
                db, "neu@example.org", INITIAL, totp_code(users["neu@example.org"][1], step)
            )
            assert keyless is not None
            assert keyless.private_key is None
            db.commit()
        with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
            filed = client.post(
                "/api/v1/reports",
                json=report_body(type_codes=["A3a"], description="Neu.", channel="letter"),
            )
            assert filed.status_code == 201, filed.text
        new_dump = dump_database(engine)
        new_case = next(row["id"] for row in new_dump["case_file"] if row["id"] != case_id)
        # The recovery key the operator was shown opens the old case (epoch 1) until it is purged, never the
        # new one (epoch 2); Anna opens both.
        assert cases_opened(new_dump, Loot(recovery_keys={recovery_key})) == {case_id}
        assert cases_opened(new_dump, Loot(passwords={OWN}, peppers=[secrets.key_pepper])) == {
            case_id,
            new_case,
        }
        # The inherited key (old backup + printed initial password) opens nothing in the database any more.
        assert cases_opened(new_dump, Loot(staff_keys=[inherited_key])) == set()
        with runtime.sessions() as db:
            assert not upgrade_key_custody(db, secrets, AuditLog(secrets.audit_key)).changed
    finally:
        runtime.dispose()
        engine.dispose()
