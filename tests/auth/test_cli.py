"""`rueckhalt user ...` and `rueckhalt org add-member|remove-member`, through typer's CliRunner."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from staff_helpers import WEAK
from typer.testing import CliRunner

from service.auth import cli as auth_cli
from service.auth.models import StaffUser
from service.auth.service import AccountService
from service.cli import app
from service.config import Settings, get_settings
from service.crypto import totp_code, totp_secret_from_base32
from service.organisations.models import Membership
from service.runtime import Runtime, build_runtime

runner = CliRunner()


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Iterator[Settings]:
    """Settings from the environment, as the command line reads them; on SQLite and on PostgreSQL."""
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", database_url)
    monkeypatch.setattr(auth_cli, "account_service", lambda key: AccountService(key, params=WEAK))
    get_settings.cache_clear()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def cli_runtime(env_settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(env_settings)
    runtime.accounts = AccountService(runtime.secrets.session_key, params=WEAK)
    yield runtime
    runtime.dispose()


def create_org(slug: str) -> str:
    result = runner.invoke(app, ["org", "create", f"Beratung {slug}", "--slug", slug])
    assert result.exit_code == 0, result.output
    return result.output.split("RECOVERY KEY")[1].splitlines()[1].strip()


def printed_secrets(output: str) -> tuple[str, bytes]:
    password = output.split("INITIAL PASSWORD")[1].splitlines()[1].strip()
    match = re.search(r"secret: ([A-Z2-7]+)", output)
    assert match
    return password, totp_secret_from_base32(match.group(1))


def test_user_create_prints_working_credentials_once(env_settings: Settings, cli_runtime: Runtime) -> None:
    result = runner.invoke(app, ["user", "create", "Anna.Berger@Example.org", "--name", "Anna Berger"])
    assert result.exit_code == 0, result.output
    assert "account anna.berger@example.org created" in result.output
    assert "otpauth://totp/" in result.output
    assert "rueckhalt org add-member ORG_SLUG anna.berger@example.org --role counsellor" in result.output
    password, secret = printed_secrets(result.output)
    with cli_runtime.sessions() as db:
        user = db.scalars(select(StaffUser)).one()
        assert user.must_change_password is True
        assert password.encode() not in user.sealed_private_key
        logged_in = cli_runtime.accounts.login(
            db, "anna.berger@example.org", password, totp_code(secret, time.time())
        )
    assert logged_in is not None
    # Nothing of the secrets is left in the data folder.
    for path in env_settings.data_dir.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes()

    again = runner.invoke(app, ["user", "create", "anna.berger@example.org", "--name", "Anna"])
    assert again.exit_code == 1
    assert "exists already" in again.output


def test_user_list_shows_roles_and_memberships(env_settings: Settings) -> None:
    recovery = create_org("beratung-nord")
    runner.invoke(app, ["user", "create", "admin@example.org", "--name", "Paul", "--admin"])
    runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    added = runner.invoke(
        app,
        ["org", "add-member", "beratung-nord", "anna@example.org", "--role", "lead"],
        input=f"{recovery}\n",
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["user", "list"])
    assert listed.exit_code == 0
    lines = {line.split()[0]: line for line in listed.output.splitlines()}
    assert "administrator" in lines["admin@example.org"]
    assert "beratung-nord (lead)" in lines["anna@example.org"]
    assert "initial password" in lines["anna@example.org"]


def test_add_member_grants_the_key_from_a_file_or_the_prompt(
    env_settings: Settings, cli_runtime: Runtime, tmp_path: Path
) -> None:
    recovery = create_org("beratung-nord")
    runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    key_file = tmp_path / "recovery.txt"
    key_file.write_text(recovery + "\n")
    result = runner.invoke(
        app, ["org", "add-member", "beratung-nord", "anna@example.org", "--recovery-key-file", str(key_file)]
    )
    assert result.exit_code == 0, result.output
    assert "anna@example.org is now counsellor of beratung-nord" in result.output
    assert recovery not in result.output
    with cli_runtime.sessions() as db:
        assert db.scalars(select(Membership)).one().role == "counsellor"

    prompted = runner.invoke(
        app,
        ["org", "add-member", "beratung-nord", "anna@example.org", "--role", "lead"],
        input=f"{recovery}\n",
    )
    assert prompted.exit_code == 0, prompted.output
    assert recovery not in prompted.output, "the prompt does not echo the key"
    with cli_runtime.sessions() as db:
        assert db.scalars(select(Membership)).one().role == "lead"


def test_add_member_refuses_a_wrong_key_an_administrator_and_unknowns(env_settings: Settings) -> None:
    create_org("beratung-nord")
    other = create_org("beratung-sued")
    runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    runner.invoke(app, ["user", "create", "admin@example.org", "--name", "Paul", "--admin"])
    wrong = runner.invoke(app, ["org", "add-member", "beratung-nord", "anna@example.org"], input=f"{other}\n")
    assert wrong.exit_code == 1
    assert "does not open" in wrong.output
    assert other not in wrong.output
    own = create_org("beratung-west")
    admin = runner.invoke(app, ["org", "add-member", "beratung-west", "admin@example.org"], input=f"{own}\n")
    assert admin.exit_code == 1
    assert "cannot be members" in admin.output
    assert runner.invoke(app, ["org", "add-member", "nope", "anna@example.org"]).exit_code == 1
    assert runner.invoke(app, ["org", "add-member", "beratung-west", "x@example.org"]).exit_code == 1
    bad_role = runner.invoke(
        app, ["org", "add-member", "beratung-west", "anna@example.org", "--role", "boss"]
    )
    assert bad_role.exit_code == 2


def test_remove_member_deletes_the_grant(env_settings: Settings, cli_runtime: Runtime) -> None:
    recovery = create_org("beratung-nord")
    runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    runner.invoke(app, ["org", "add-member", "beratung-nord", "anna@example.org"], input=f"{recovery}\n")
    removed = runner.invoke(app, ["org", "remove-member", "beratung-nord", "anna@example.org"])
    assert removed.exit_code == 0, removed.output
    assert "no longer a member" in removed.output
    with cli_runtime.sessions() as db:
        assert db.scalars(select(Membership)).all() == []
    twice = runner.invoke(app, ["org", "remove-member", "beratung-nord", "anna@example.org"])
    assert twice.exit_code == 1


def test_disable_and_reset(env_settings: Settings, cli_runtime: Runtime) -> None:
    recovery = create_org("beratung-nord")
    created = runner.invoke(app, ["user", "create", "anna@example.org", "--name", "Anna"])
    old_password, old_secret = printed_secrets(created.output)
    runner.invoke(app, ["org", "add-member", "beratung-nord", "anna@example.org"], input=f"{recovery}\n")

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
    assert "NEW KEY PAIR" in reset.output
    assert "rueckhalt org add-member beratung-nord anna@example.org --role counsellor" in reset.output
    assert "still disabled" in reset.output
    new_password, _ = printed_secrets(reset.output)
    assert new_password != old_password
    with cli_runtime.sessions() as db:
        assert db.scalars(select(Membership)).all() == []
        user = db.scalars(select(StaffUser)).one()
        assert user.must_change_password is True

    unknown = runner.invoke(app, ["user", "reset", "nobody@example.org"])
    assert unknown.exit_code == 1
    assert "no account" in unknown.output
