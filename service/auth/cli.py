"""``rueckhalt user ...`` and ``rueckhalt org add-member|remove-member|recover``: the operator's commands.

Secrets (initial passwords, TOTP secrets) are printed once and stored nowhere readable. None of them opens
a case: an initial password opens only the password-change page, and the account's key pair is made under
its owner's own password. Recovery shares are typed by their custodians at a hidden prompt, never taken
from the command line (shell history).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from service.audit import AuditLog
from service.auth.errors import AccountError
from service.auth.service import AccountService, NewCredentials
from service.config import Secrets, Settings, get_settings, load_secrets
from service.db import make_engine, make_sessionmaker
from service.identity import repository as organisations
from service.identity.models import MembershipRole

user_app = typer.Typer(help="Staff accounts: create, list, disable, reset.", no_args_is_help=True)


def account_service(secrets: Secrets) -> AccountService:
    """The service the commands use; production Argon2 parameters (tests replace this function)."""
    return AccountService(secrets.session_key, key_peppers=secrets.key_peppers, audit=AuditLog.of(secrets))


@contextmanager
def _accounts(settings: Settings) -> Iterator[tuple[Session, AccountService]]:
    secrets = load_secrets(settings)
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session, account_service(secrets)
    finally:
        engine.dispose()


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _print_credentials(credentials: NewCredentials) -> None:
    typer.echo("")
    typer.echo("INITIAL PASSWORD (shown once; hand it over in person or by a channel other than the e-mail):")
    typer.echo(f"    {credentials.password}")
    typer.echo("It opens only the password change at the first sign-in; the account's key is made under the")
    typer.echo("password its owner then chooses, so this one never opens a case.")
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
        typer.echo("Next: after their first sign-in, a lead of their organisation grants them its key at")
        typer.echo("/intern/organisationen (the first lead of a new organisation: rueckhalt org add-member")
        typer.echo(f"ORG_SLUG {address} --role lead).")


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
                flags.append("initial password (no key yet)")
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
    typer.echo("The account's KEY PAIR IS GONE (it could only be opened with the old password); its owner's")
    typer.echo("next own password makes a new one.")
    if reset.dropped_memberships:
        typer.echo("Its memberships were removed and each organisation began a new key epoch. A lead grants")
        typer.echo("access again at /intern/organisationen once the new password is set:")
        for dropped in reset.dropped_memberships:
            typer.echo(f"    {dropped.organisation_slug} ({dropped.role})    # {dropped.organisation_name}")
    else:
        typer.echo("It was not a member of any organisation, so no access has to be granted again.")
    if disabled:
        typer.echo("Note: the account is still disabled.")


def add_member(
    org_slug: Annotated[str, typer.Argument(help="Organisation slug, e.g. beratung-by")],
    email: Annotated[str, typer.Argument(help="E-mail address of the staff account")],
    role: Annotated[MembershipRole, typer.Option(help="lead (the only role for a new organisation)")] = (
        MembershipRole.lead
    ),
) -> None:
    """Name the first lead of an organisation that has no key yet (grants nothing: there is no key).

    Every other grant is a lead's, in the web UI (/intern/organisationen) or the API; after all members lost
    their passwords, ``rueckhalt org recover`` with the custodians' shares.
    """
    with _accounts(_settings()) as (session, accounts):
        organisation = organisations.by_slug(session, org_slug)
        if organisation is None:
            raise _fail(f"no organisation {org_slug}")
        if organisation.public_key is not None:
            raise _fail(
                f"{org_slug} has a key: its leads grant access at /intern/organisationen "
                "(or, if every member lost their password: rueckhalt org recover)"
            )
        if role is not MembershipRole.lead:
            raise _fail("an organisation without a key gets its first lead here; counsellors come later")
        try:
            user = accounts.user_by_email(session, email)
            accounts.name_first_lead(session, organisation, user)
        except AccountError as exc:
            raise _fail(str(exc)) from None
        session.commit()
        address = user.email
    typer.echo(f"{address} is the first lead of {org_slug}. After setting a password of their own they make")
    typer.echo("the organisation's key pair at /intern/organisationen and hand the recovery shares to the")
    typer.echo("custodians named there. Until then the organisation receives no case.")


def recover(
    org_slug: Annotated[str, typer.Argument(help="Organisation slug")],
    email: Annotated[str, typer.Argument(help="The member to grant the keys to (own password set)")],
    role: Annotated[MembershipRole, typer.Option(help="counsellor or lead")] = MembershipRole.lead,
) -> None:
    """Grant every key of the organisation to a member with k custodians' recovery shares.

    For when every member lost their password. Each custodian types their share at the hidden prompt. The
    shares then passed through this terminal, so the organisation's leads are asked to make new ones.
    """
    from service.identity.grants import CustodyError

    with _accounts(_settings()) as (session, accounts):
        organisation = organisations.by_slug(session, org_slug)
        if organisation is None:
            raise _fail(f"no organisation {org_slug}")
        threshold = organisation.recovery_threshold
        if organisation.recovery_public_key is None or threshold is None:
            raise _fail(f"{org_slug} has no recovery shares")
        try:
            user = accounts.user_by_email(session, email)
        except AccountError as exc:
            raise _fail(str(exc)) from None
        typer.echo(f"{threshold} of {organisation.recovery_share_count} custodians type their share.")
        shares = [
            str(typer.prompt(f"Share {index} of {threshold}", hide_input=True))
            for index in range(1, threshold + 1)
        ]
        try:
            accounts.custody.recover(session, organisation, shares, user, role)
        except CustodyError as exc:
            raise _fail(str(exc)) from None
        accounts.record_membership_grant(session, organisation, user.id, role, granted_by=None)
        session.commit()
        address = user.email
    typer.echo(f"{address} is {role.value} of {org_slug} and holds every key epoch of it.")
    typer.echo("The shares passed through this terminal: the lead is asked to make new ones at")
    typer.echo("/intern/organisationen (which also starts a new key epoch).")


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
    typer.echo(f"{address} is no longer a member of {org_slug}; its key grants are deleted and the")
    typer.echo("organisation began a new key epoch, so a copy of its keys opens no case filed from now on.")
    typer.echo("Cases they already read may still be on their screen or in their memory.")


def register(app: typer.Typer, org_app: typer.Typer, settings: Callable[[], Settings]) -> None:
    """Add the commands; ``settings`` is the main command line's checked settings (refuses a bad config)."""
    global _settings_source
    _settings_source = settings
    app.add_typer(user_app, name="user")
    org_app.command("add-member")(add_member)
    org_app.command("remove-member")(remove_member)
    org_app.command("recover")(recover)
