"""``rueckhalt user ...`` and ``rueckhalt org add-member|remove-member``: the operator's account commands.

Secrets (initial passwords, TOTP secrets) are printed once and stored nowhere readable; the organisation
recovery key is read from a hidden prompt or a file, never from the command line (shell history).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from service.auth.service import AccountError, AccountService, NewCredentials, PasswordRejected
from service.config import Settings, get_settings, load_secrets
from service.db import make_engine, make_sessionmaker
from service.organisations import repository as organisations
from service.organisations.models import MembershipRole

user_app = typer.Typer(help="Staff accounts: create, list, disable, reset.", no_args_is_help=True)


def account_service(session_key: bytes) -> AccountService:
    """The service the commands use; production Argon2 parameters (tests replace this function)."""
    return AccountService(session_key)


@contextmanager
def _accounts(settings: Settings) -> Iterator[tuple[Session, AccountService]]:
    secrets = load_secrets(settings)
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session, account_service(secrets.session_key)
    finally:
        engine.dispose()


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _print_credentials(credentials: NewCredentials) -> None:
    typer.echo("")
    typer.echo("INITIAL PASSWORD (shown once; hand it over in person or by a channel other than the e-mail):")
    typer.echo(f"    {credentials.password}")
    typer.echo("It must be changed at the first sign-in.")
    typer.echo("")
    typer.echo("TWO-FACTOR SECRET (shown once; turn the link into a QR code for the authenticator app,")
    typer.echo("or type the secret into the app by hand):")
    typer.echo(f"    {credentials.totp_uri}")
    typer.echo(f"    secret: {credentials.totp_secret_base32}")


def _roles(is_admin: bool, is_coordinator: bool) -> str:
    roles = [name for name, flag in (("administrator", is_admin), ("coordinator", is_coordinator)) if flag]
    return ", ".join(roles) or "no global role"


_settings_source: Callable[[], Settings] = get_settings


def _settings() -> Settings:
    return _settings_source()


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="E-mail address (the sign-in name)")],
    name: Annotated[str, typer.Option("--name", help="Display name, e.g. 'Anna Berger'")],
    admin: Annotated[
        bool, typer.Option("--admin", help="Administrator (accounts, policies; no cases)")
    ] = False,
    coordinator: Annotated[
        bool, typer.Option("--coordinator", help="Coordinator (statistics; no cases)")
    ] = False,
) -> None:
    """Create a staff account; prints its initial password and two-factor secret ONCE."""
    with _accounts(_settings()) as (session, accounts):
        try:
            credentials = accounts.create_user(
                session, email, name, is_admin=admin, is_coordinator=coordinator
            )
        except AccountError as exc:
            raise _fail(str(exc)) from None
        session.commit()
        address = credentials.user.email
    typer.echo(f"account {address} created ({_roles(admin, coordinator)}).")
    _print_credentials(credentials)
    typer.echo("")
    if admin or coordinator:
        typer.echo("Administrators and coordinators never open cases, so they cannot join an organisation.")
    else:
        typer.echo("Next: give them access to an organisation's cases with")
        typer.echo(f"    rueckhalt org add-member ORG_SLUG {address} --role counsellor")


@user_app.command("list")
def user_list() -> None:
    """List staff accounts with their roles and organisations."""
    with _accounts(_settings()) as (session, _):
        from service.auth import repository

        users = repository.all_users(session)
        if not users:
            typer.echo("no staff accounts yet (create one with: rueckhalt user create EMAIL --name NAME)")
            return
        for user in users:
            memberships = ", ".join(
                f"{org.slug} ({membership.role})"
                for membership, org in organisations.memberships_of(session, user.id)
            )
            flags = [_roles(user.is_admin, user.is_coordinator)]
            if user.disabled:
                flags.append("DISABLED")
            if user.must_change_password:
                flags.append("initial password")
            typer.echo(f"{user.email:40} {user.display_name:30} {'; '.join(flags)}; {memberships or '-'}")


@user_app.command("disable")
def user_disable(email: Annotated[str, typer.Argument(help="E-mail address of the account")]) -> None:
    """Lock an account at once and end its sessions."""
    with _accounts(_settings()) as (session, accounts):
        try:
            user = accounts.user_by_email(session, email)
        except AccountError as exc:
            raise _fail(str(exc)) from None
        ended = accounts.disable(session, user)
        session.commit()
        address = user.email
    typer.echo(f"account {address} disabled; {ended} open session(s) ended.")
    typer.echo("Its memberships stay in place but cannot be used while the account is disabled;")
    typer.echo(f"remove them with: rueckhalt org remove-member ORG_SLUG {address}")


@user_app.command("reset")
def user_reset(email: Annotated[str, typer.Argument(help="E-mail address of the account")]) -> None:
    """New initial password and two-factor secret (lost password or phone). Prints them ONCE."""
    with _accounts(_settings()) as (session, accounts):
        try:
            user = accounts.user_by_email(session, email)
            reset = accounts.reset(session, user)
        except AccountError as exc:
            raise _fail(str(exc)) from None
        session.commit()
        address = user.email
        disabled = user.disabled
    typer.echo(f"account {address} reset; {reset.ended_sessions} open session(s) ended.")
    _print_credentials(reset.credentials)
    typer.echo("")
    typer.echo(
        "The account has a NEW KEY PAIR: its old private key could only be opened with the old password."
    )
    if reset.dropped_memberships:
        typer.echo(
            "Its access to these organisations was removed and must be granted again, by a lead of the"
        )
        typer.echo("organisation or here with the organisation's recovery key:")
        for dropped in reset.dropped_memberships:
            typer.echo(
                f"    rueckhalt org add-member {dropped.organisation_slug} {address} --role {dropped.role}"
                f"    # {dropped.organisation_name}"
            )
    else:
        typer.echo("It was not a member of any organisation, so no access has to be granted again.")
    if disabled:
        typer.echo("Note: the account is still disabled.")


def _read_recovery_key(slug: str, recovery_key_file: Path | None) -> str:
    if recovery_key_file is not None:
        try:
            return recovery_key_file.read_text(encoding="utf-8").strip()
        except OSError:
            raise _fail(f"cannot read {recovery_key_file}") from None
    return str(typer.prompt(f"Recovery key of organisation {slug}", hide_input=True))


def add_member(
    org_slug: Annotated[str, typer.Argument(help="Organisation slug, e.g. beratung-by")],
    email: Annotated[str, typer.Argument(help="E-mail address of the staff account")],
    role: Annotated[MembershipRole, typer.Option(help="counsellor or lead")] = MembershipRole.counsellor,
    recovery_key_file: Annotated[
        Path | None,
        typer.Option(help="Read the organisation recovery key from this file instead of asking for it"),
    ] = None,
) -> None:
    """Grant a staff member the organisation's key (asks for the organisation recovery key)."""
    with _accounts(_settings()) as (session, accounts):
        organisation = organisations.by_slug(session, org_slug)
        if organisation is None:
            raise _fail(f"no organisation {org_slug}")
        try:
            user = accounts.user_by_email(session, email)
        except AccountError as exc:
            raise _fail(str(exc)) from None
        recovery_key = _read_recovery_key(org_slug, recovery_key_file)
        try:
            accounts.grant_with_recovery_key(session, organisation, user, role, recovery_key)
        except (AccountError, PasswordRejected) as exc:
            raise _fail(str(exc)) from None
        session.commit()
        address, name = user.email, organisation.display_name
    typer.echo(f"{address} is now {role.value} of {org_slug} ({name}) and can open its cases.")
    if role is MembershipRole.lead:
        typer.echo("As lead they can also grant other members access themselves.")


def remove_member(
    org_slug: Annotated[str, typer.Argument(help="Organisation slug")],
    email: Annotated[str, typer.Argument(help="E-mail address of the staff account")],
) -> None:
    """Delete a member's grant of the organisation key; their next request cannot open its cases."""
    with _accounts(_settings()) as (session, accounts):
        organisation = organisations.by_slug(session, org_slug)
        if organisation is None:
            raise _fail(f"no organisation {org_slug}")
        try:
            user = accounts.user_by_email(session, email)
        except AccountError as exc:
            raise _fail(str(exc)) from None
        removed = accounts.revoke_membership(session, organisation.id, user.id)
        session.commit()
        address = user.email
    if not removed:
        raise _fail(f"{address} is not a member of {org_slug}")
    typer.echo(f"{address} is no longer a member of {org_slug}; the grant of its key is deleted.")
    typer.echo("Cases they already read may still be on their screen or in their memory; nothing new opens.")


def register(app: typer.Typer, org_app: typer.Typer, settings: Callable[[], Settings]) -> None:
    """Add the commands; ``settings`` is the main command line's checked settings (refuses a bad config)."""
    global _settings_source
    _settings_source = settings
    app.add_typer(user_app, name="user")
    org_app.command("add-member")(add_member)
    org_app.command("remove-member")(remove_member)
