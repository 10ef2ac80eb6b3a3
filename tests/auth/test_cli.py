"""`rueckhalt user ...` and `rueckhalt org create|add-member|remove-member|recover|rotate`, through typer's
CliRunner. Played as the operator: nothing any of these commands prints opens a case."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from service.audit import AuditLog
from service.auth import cli as auth_cli
from service.auth.service import AccountService
from service.cli import app
from service.config import Settings, get_settings
from service.crypto import totp_code, totp_secret_from_base32
from service.identity import repository as organisations
from service.identity.custody import KeyCustody
from service.identity.models import MemberKeyGrant, Membership, MembershipRole, Organisation, StaffUser
from service.runtime import Runtime, build_runtime
from tests.support.staff import WEAK

runner = CliRunner()


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Iterator[Settings]:
    """Settings from the environment, as the command line reads them; on SQLite and on PostgreSQL."""
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
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def cli_runtime(env_settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(env_settings)
    runtime.accounts = AccountService(
        runtime.secrets.session_key, key_peppers=runtime.secrets.key_peppers, params=WEAK, audit=runtime.audit
    )
    yield runtime
    runtime.dispose()


def create_org(slug: str) -> None:
    result = runner.invoke(app, ["org", "create", f"Beratung {slug}", "--slug", slug])
    assert result.exit_code == 0, result.output
    assert "cannot receive cases until it has a key" in result.output
    assert "RECOVERY" not in result.output


def keyed_org(runtime: Runtime, slug: str) -> list[str]:
    """An organisation with its key pair and recovery shares, as its first lead makes them in the browser."""
    create_org(slug)
    with runtime.sessions() as db:
        organisation = organisations.by_slug(db, slug)
        assert organisation is not None
        shares = KeyCustody(runtime.audit).set_up(
            db, organisation, ["A", "B", "C"], 2, lead=None, actor_id=None
        )
        db.commit()
    return [item.share for item in shares]


def printed_secrets(output: str) -> tuple[str, bytes]:
    password = output.split("INITIAL PASSWORD")[1].splitlines()[1].strip()
    match = re.search(r"secret: ([A-Z2-7]+)", output)
    assert match
    return password, totp_secret_from_base32(match.group(1))


def own_password(runtime: Runtime, email: str, initial: str) -> None:
    """The account's owner sets a password of their own (which makes the key pair)."""
    with runtime.sessions() as db:
        user = runtime.accounts.user_by_email(db, email)
        runtime.accounts.change_password(db, user, initial, "Kirchturm-Nebel-Apfelbaum-7", keep_session="")
        db.commit()


def test_user_create_prints_credentials_that_open_no_key(
    env_settings: Settings, cli_runtime: Runtime
) -> None:
    result = runner.invoke(app, ["user", "create", "Anna.Berger@Example.org", "--name", "Anna Berger"])
    assert result.exit_code == 0, result.output
    assert "account anna.berger@example.org created" in result.output
    assert "otpauth://totp/" in result.output
    assert "never opens a case" in result.output
    password, secret = printed_secrets(result.output)
    with cli_runtime.sessions() as db:
        user = db.scalars(select(StaffUser)).one()
        assert user.must_change_password is True
        assert user.public_key is None
        assert user.sealed_private_key is None
        logged_in = cli_runtime.accounts.login(
            db, "anna.berger@example.org", password, totp_code(secret, time.time())
        )
    assert logged_in is not None
    assert logged_in.private_key is None
    # Nothing of the secrets is left in the data folder.
    for path in env_settings.data_dir.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes()

    again = runner.invoke(app, ["user", "create", "anna.berger@example.org", "--name", "Anna"])
    assert again.exit_code == 1
    assert "exists already" in again.output


def test_user_list_shows_roles_and_memberships(env_settings: Settings) -> None:
    create_org("beratung-nord")
    runner.invoke(app, ["user", "create", "admin@example.org", "--name", "Paul", "--admin"])
    runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    added = runner.invoke(app, ["org", "add-member", "beratung-nord", "anna@example.org", "--role", "lead"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["user", "list"])
    assert listed.exit_code == 0
    lines = {line.split()[0]: line for line in listed.output.splitlines()}
    assert "administrator" in lines["admin@example.org"]
    assert "beratung-nord (lead)" in lines["anna@example.org"]
    assert "initial password" in lines["anna@example.org"]


def test_add_member_names_the_first_lead_and_grants_nothing(
    env_settings: Settings, cli_runtime: Runtime
) -> None:
    create_org("beratung-nord")
    runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    result = runner.invoke(app, ["org", "add-member", "beratung-nord", "anna@example.org"])
    assert result.exit_code == 0, result.output
    assert "first lead of beratung-nord" in result.output
    with cli_runtime.sessions() as db:
        assert db.scalars(select(Membership)).one().role == "lead"
        assert db.scalars(select(MemberKeyGrant)).all() == []
        organisation = organisations.by_slug(db, "beratung-nord")
        assert organisation is not None
        assert organisation.public_key is None


def test_add_member_refuses_an_organisation_with_a_key_an_administrator_and_unknowns(
    env_settings: Settings, cli_runtime: Runtime
) -> None:
    keyed_org(cli_runtime, "beratung-nord")
    create_org("beratung-west")
    runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    runner.invoke(app, ["user", "create", "admin@example.org", "--name", "Paul", "--admin"])
    keyed = runner.invoke(app, ["org", "add-member", "beratung-nord", "anna@example.org"])
    assert keyed.exit_code == 1
    assert "/intern/organisationen" in keyed.output
    admin = runner.invoke(app, ["org", "add-member", "beratung-west", "admin@example.org"])
    assert admin.exit_code == 1
    assert "cannot be members" in admin.output
    counsellor = runner.invoke(
        app, ["org", "add-member", "beratung-west", "anna@example.org", "--role", "counsellor"]
    )
    assert counsellor.exit_code == 1
    assert runner.invoke(app, ["org", "add-member", "nope", "anna@example.org"]).exit_code == 1
    assert runner.invoke(app, ["org", "add-member", "beratung-west", "x@example.org"]).exit_code == 1
    bad_role = runner.invoke(
        app, ["org", "add-member", "beratung-west", "anna@example.org", "--role", "boss"]
    )
    assert bad_role.exit_code == 2
    with cli_runtime.sessions() as db:
        assert db.scalars(select(Membership)).all() == []


def test_recover_grants_every_epoch_with_k_shares_typed_hidden(
    env_settings: Settings, cli_runtime: Runtime
) -> None:
    """Given an organisation whose members all lost their passwords, two custodians type their shares and a
    member with an own password holds every key epoch; the leads are then asked for new shares."""
    shares = keyed_org(cli_runtime, "beratung-nord")
    assert runner.invoke(app, ["org", "rotate", "beratung-nord"]).exit_code == 0
    created = runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    own_password(cli_runtime, "anna@example.org", printed_secrets(created.output)[0])
    result = runner.invoke(
        app, ["org", "recover", "beratung-nord", "anna@example.org"], input=f"{shares[2]}\n{shares[0]}\n"
    )
    assert result.exit_code == 0, result.output
    assert "holds every key epoch" in result.output
    assert all(share not in result.output for share in shares), "the prompt does not echo a share"
    with cli_runtime.sessions() as db:
        grants = db.scalars(select(MemberKeyGrant)).all()
        assert sorted(grant.epoch for grant in grants) == [1, 2]
        organisation = organisations.by_slug(db, "beratung-nord")
        assert organisation is not None
        assert organisation.recovery_renewal_needed is True


def test_recover_refuses_too_few_foreign_or_mistyped_shares(
    env_settings: Settings, cli_runtime: Runtime
) -> None:
    shares = keyed_org(cli_runtime, "beratung-nord")
    foreign = keyed_org(cli_runtime, "beratung-sued")
    created = runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    own_password(cli_runtime, "anna@example.org", printed_secrets(created.output)[0])
    typo = shares[1][:-1] + ("0" if shares[1][-1] != "0" else "1")
    for typed, message in (
        (f"{foreign[0]}\n{foreign[1]}\n", "do not belong"),
        (f"{shares[0]}\n{shares[0]}\n", "twice"),
        (f"{shares[0]}\n{typo}\n", "typing error"),
    ):
        result = runner.invoke(app, ["org", "recover", "beratung-nord", "anna@example.org"], input=typed)
        assert result.exit_code == 1, result.output
        assert message in result.output
        assert all(share not in result.output for share in shares + foreign)
    with cli_runtime.sessions() as db:
        assert db.scalars(select(Membership)).all() == []


def test_remove_member_deletes_the_grants_and_begins_a_new_epoch(
    env_settings: Settings, cli_runtime: Runtime
) -> None:
    shares = keyed_org(cli_runtime, "beratung-nord")
    created = runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    own_password(cli_runtime, "anna@example.org", printed_secrets(created.output)[0])
    with cli_runtime.sessions() as db:
        organisation = organisations.by_slug(db, "beratung-nord")
        user = cli_runtime.accounts.user_by_email(db, "anna@example.org")
        assert organisation is not None
        cli_runtime.accounts.grant_with_shares(db, organisation, shares[:2], user, MembershipRole.counsellor)
        db.commit()
    removed = runner.invoke(app, ["org", "remove-member", "beratung-nord", "anna@example.org"])
    assert removed.exit_code == 0, removed.output
    assert "new key epoch" in removed.output
    with cli_runtime.sessions() as db:
        assert db.scalars(select(Membership)).all() == []
        assert db.scalars(select(MemberKeyGrant)).all() == []
        after = db.scalars(select(Organisation).where(Organisation.slug == "beratung-nord")).one()
        assert after.current_epoch == 2
    twice = runner.invoke(app, ["org", "remove-member", "beratung-nord", "anna@example.org"])
    assert twice.exit_code == 1


def test_disable_and_reset(env_settings: Settings, cli_runtime: Runtime) -> None:
    create_org("beratung-nord")
    created = runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    old_password, old_secret = printed_secrets(created.output)
    runner.invoke(app, ["org", "add-member", "beratung-nord", "anna@example.org"])

    disabled = runner.invoke(app, ["user", "disable", "anna@example.org"])
    assert disabled.exit_code == 0
    assert "disabled" in disabled.output
    with cli_runtime.sessions() as db:
        now = time.time()
        assert (
            cli_runtime.accounts.login(db, "anna@example.org", old_password, totp_code(old_secret, now))
            is None
        )

    reset = runner.invoke(app, ["user", "reset", "ANNA@example.org"])
    assert reset.exit_code == 0, reset.output
    assert "KEY PAIR IS GONE" in reset.output
    assert "beratung-nord (lead)" in reset.output
    assert "still disabled" in reset.output
    new_password, _ = printed_secrets(reset.output)
    assert new_password != old_password
    with cli_runtime.sessions() as db:
        assert db.scalars(select(Membership)).all() == []
        user = db.scalars(select(StaffUser)).one()
        assert user.must_change_password is True
        assert user.public_key is None

    unknown = runner.invoke(app, ["user", "reset", "nobody@example.org"])
    assert unknown.exit_code == 1
    assert "no account" in unknown.output
