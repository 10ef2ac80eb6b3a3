"""The ``rueckhalt`` command line: serve, migrate, demo data, organisations, policies."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Annotated

import typer

from service.config import ConfigurationError, Mode, Settings, get_settings
from service.db import make_engine, make_sessionmaker

app = typer.Typer(
    help="Rückhalt: encrypted incident reporting for threatened local officials.", no_args_is_help=True
)
org_app = typer.Typer(help="Support organisations and their keys.", no_args_is_help=True)
app.add_typer(org_app, name="org")


def _settings(listen_host: str | None = None) -> Settings:
    settings = get_settings()
    try:
        from service.config_checks import check_listen_address, check_production

        check_production(settings)
        if listen_host is not None:
            check_listen_address(settings, listen_host)
    except ConfigurationError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _known_orgs() -> Mapping[str, bool]:
    """Organisations in the database and whether they hold a key (for ``policy check``)."""
    from service.identity import repository

    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return {org.slug: org.can_receive for org in repository.all_organisations(session)}
    finally:
        engine.dispose()


def _install_policy_app() -> None:
    from service.routing.cli import policy_app, set_org_source

    set_org_source(_known_orgs)
    app.add_typer(policy_app, name="policy")


_install_policy_app()


def _install_stats_app() -> None:
    from service.statistics.cli import stats_app

    app.add_typer(stats_app, name="stats")


_install_stats_app()


def _install_audit_app() -> None:
    from service.audit.cli import audit_app

    app.add_typer(audit_app, name="audit")


_install_audit_app()


def _install_retention_app() -> None:
    from service.retention.cli import retention_app

    app.add_typer(retention_app, name="retention")


_install_retention_app()


def _install_account_commands() -> None:
    from service.auth.cli import register

    register(app, org_app, _settings)


_install_account_commands()


def _install_backup_commands() -> None:
    from service.backup.cli import register

    register(app, _settings)


_install_backup_commands()


def _install_secrets_commands() -> None:
    from service.secrets.cli import register

    register(app, _settings)


_install_secrets_commands()


@app.command()
def migrate() -> None:
    """Apply the database migrations (idempotent)."""
    from service.audit import AuditLog
    from service.config import load_secrets
    from service.knowledge.seed import seed_articles
    from service.knowledge.support import SupportDirectory, seed_support
    from service.migrate import upgrade
    from service.organisations.upgrade import upgrade_key_custody
    from service.taxonomy import load_districts

    settings = _settings()
    secrets = load_secrets(settings)
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            # Formats that need a server secret to move (0011, key custody); nothing on a new database.
            report = upgrade_key_custody(session, secrets, AuditLog.of(secrets))
            session.commit()
            # The shipped Handlungsempfehlungen; articles already there (edited or not) are kept.
            added = seed_articles(session)
            # The shipped entries of the support directory, likewise: one edited or retired stays so.
            lands = [land.code for land in load_districts(settings.policies_dir).lands]
            entries = seed_support(session, SupportDirectory(lands, AuditLog(secrets.audit_key)))
            session.commit()  # the command is the seed's transaction
    finally:
        engine.dispose()
    news = [
        f"{added} knowledge articles added" if added else "",
        f"{entries} support entries added" if entries else "",
    ]
    typer.echo("; ".join(["database is up to date", *filter(None, news)]))
    if report.changed:
        typer.echo(
            f"key custody: {report.keys_wrapped} staff keys now need the key pepper; "
            f"{report.initial_keys_dropped} keys under initial passwords removed (a lead grants again after "
            f"the owner's own password); {report.organisations_rotated} organisations began a new key epoch "
            "and their leads are asked for recovery shares"
        )


@app.command()
def demo() -> None:
    """Load the demo data (embedded mode only; a second run keeps what is there)."""
    from service.demo import load_demo

    settings = _settings()
    if settings.mode is Mode.production:
        typer.echo("demo data is refused in production mode", err=True)
        raise typer.Exit(2)
    summary = load_demo(settings)
    typer.echo(json.dumps(summary, ensure_ascii=False))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default: $PORT or 8000)")] = None,
    workers: Annotated[
        str, typer.Option(help="Worker processes: a number, or 'auto' (one per CPU this process may use)")
    ] = "1",
) -> None:
    """Serve the web application: uvicorn workers, each on its own socket of the port (service/serving.py)."""
    from service.observability import logs
    from service.serving import CannotListen, Served
    from service.serving import serve as serve_workers

    count = _workers(workers)

    settings = _settings(listen_host=host)
    # The parent's own lines (a worker replaced, an app that did not start) as the workers' are written.
    logging.basicConfig(level=logging.INFO, format=logs.TEXT_FORMAT)
    logs.apply_format(settings)
    served = Served(host=host, port=port or int(os.environ.get("PORT", "8000")))
    try:
        status = serve_workers(served, count)
    except CannotListen as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(status)


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default: $PORT or 8000)")] = None,
    workers: Annotated[
        str, typer.Option(help="Api worker processes: a number, or 'auto' (one per CPU this process may use)")
    ] = "1",
) -> None:
    """Serve the api with a Celery worker and the beat schedule; when one stops, all stop."""
    from service.supervisor import run

    count = _workers(workers)
    _settings(listen_host=host)
    raise typer.Exit(run(host, port or int(os.environ.get("PORT", "8000")), count))


def _workers(text: str) -> int:
    """The ``--workers`` option as a number, or the message and exit status 2 of a usage error."""
    from service.serving import worker_count

    try:
        return worker_count(text)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="Display name, e.g. 'Beratungsstelle Nord'")],
    slug: Annotated[str, typer.Option(help="Short identifier used in routing.yaml")],
    kind: Annotated[
        str, typer.Option(help="counselling|online_hate|legal_aid|police_liaison|fallback_rota")
    ] = ("counselling"),
) -> None:
    """Create an organisation WITHOUT a key: its first lead makes the key pair and the recovery shares.

    Nobody who runs this command ever sees a key that opens the organisation's cases (docs/key-custody.md).
    """
    from service.audit import AuditLog
    from service.config import load_secrets
    from service.organisations.service import OrganisationError, create_organisation

    settings = _settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            try:
                create_organisation(session, slug, name, kind, AuditLog.of(load_secrets(settings)))
            except OrganisationError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from None
            session.commit()
    finally:
        engine.dispose()
    typer.echo(f"organisation {slug} created; it cannot receive cases until it has a key.")
    typer.echo("Next: make its first lead a member (rueckhalt org add-member SLUG EMAIL --role lead). After")
    typer.echo(
        "setting a password of their own, the lead opens /intern/organisationen, makes the key pair and"
    )
    typer.echo("hands out the recovery shares to the custodians. You see none of it.")


@org_app.command("rotate")
def org_rotate(slug: Annotated[str, typer.Argument(help="The organisation")]) -> None:
    """Start a new key epoch (new cases are wrapped to it); needs no key, shows none."""
    from service.audit import AuditLog
    from service.config import load_secrets
    from service.identity import repository
    from service.identity.custody import KeyCustody, RotationReason
    from service.identity.grants import CustodyError

    settings = _settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            organisation = repository.by_slug(session, slug)
            if organisation is None:
                typer.echo(f"error: no organisation {slug!r}", err=True)
                raise typer.Exit(1)
            try:
                epoch = KeyCustody(AuditLog.of(load_secrets(settings))).rotate(
                    session, organisation, RotationReason.operator, None
                )
            except CustodyError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from None
            session.commit()
    finally:
        engine.dispose()
    typer.echo(f"{slug}: key epoch {epoch} begins; new cases are wrapped to it, every member holds it.")


@org_app.command("list")
def org_list() -> None:
    """List organisations and whether they can receive cases."""
    for slug, can_receive in sorted(_known_orgs().items()):
        typer.echo(
            f"{slug:32} {'key: yes' if can_receive else 'key: NO (cannot receive cases; its lead makes it)'}"
        )


@org_app.command("webhook")
def org_webhook(
    slug: Annotated[str, typer.Argument(help="The organisation")],
    url: Annotated[
        str | None, typer.Argument(help="https:// address of the on-call tool; omit with --off")
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop sending webhooks to this organisation")] = False,
) -> None:
    """Set the organisation's webhook and print its signing secret (derived, so it is never stored)."""
    from service.audit import AuditLog
    from service.config import load_secrets
    from service.crypto import webhook_secret
    from service.identity import repository

    settings = _settings()
    if off == (url is not None):
        typer.echo("error: give a URL, or --off", err=True)
        raise typer.Exit(2)
    if url is not None and not (
        url.startswith("https://") or (settings.mode is Mode.embedded and url.startswith("http://"))
    ):
        typer.echo("error: webhooks go to https:// addresses (http:// only in embedded mode)", err=True)
        raise typer.Exit(2)
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            organisation = repository.by_slug(session, slug)
            if organisation is None:
                typer.echo(f"error: no organisation {slug!r}", err=True)
                raise typer.Exit(1)
            organisation.webhook_url = url
            secrets = load_secrets(settings)
            AuditLog.of(secrets).append(
                session,
                actor_kind="operator",
                actor_id=None,
                action="organisation.webhook",
                object_type="organisation",
                object_id=organisation.id,
                details={"enabled": url is not None},
            )
            session.commit()
            secret = webhook_secret(secrets.notification_key, organisation.id).hex()
    finally:
        engine.dispose()
    if url is None:
        typer.echo(f"{slug}: webhook off")
        return
    typer.echo(f"{slug}: webhook {url}")
    typer.echo(f"signing secret (hex; give it to the receiver, see docs/webhooks.md): {secret}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
