"""``rueckhalt secrets rotate NAME [--finish]`` and ``rueckhalt secrets status``.

Embedded mode keeps the secrets as files in ``DATA_DIR/secrets``: the command writes the new value, keeps the
old one in ``NAME.previous`` and does the re-keying at once (the service must be stopped: its processes read
the files at start). Production takes the secrets from the environment, which no command can change: the
command prints the new value once with the exact changes to deploy, and ``--finish`` (after the deployment)
does the re-keying and says when the previous value may go.

Nothing here logs; the only secret ever printed is a new value that production must deploy. Audited as
``secret.rotation_started``, ``secret.rekeyed`` (counts only) and ``secret.rotation_finished``.
"""

from __future__ import annotations

import secrets as random
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.audit import AuditLog, verify
from service.config import SECRET_BYTES, SECRET_NAMES, Mode, Secrets, Settings, load_secrets, secrets_folder
from service.db import make_engine, make_sessionmaker, utcnow
from service.outbox.models import WorkerHeartbeat
from service.secrets.rotation import ROTATIONS, Keep, Rotation, name_unrecorded_lookup_keys
from service.secrets.store import drop_previous, write_rotation

secrets_app = typer.Typer(
    help="Rotate the server secrets (docs/runbooks.md) and show rotations under way.",
    no_args_is_help=True,
    add_completion=False,
)
# A worker's heartbeat younger than this means the service is running (the beat sends one every 30 s).
RUNNING_HEARTBEAT = timedelta(seconds=90)

_settings: Callable[[], Settings] = Settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _audit(
    sessions: sessionmaker[Session], secrets: Secrets, action: str, name: str, **details: int | str
) -> None:
    with sessions() as session:
        AuditLog.of(secrets).append(
            session,
            actor_kind="operator",
            actor_id=None,
            action=action,
            object_type="secret",
            object_id=name,
            details={"secret": name, **details},
        )
        session.commit()


def _running_for(sessions: sessionmaker[Session]) -> timedelta | None:
    with sessions() as session:
        beat = session.scalar(select(WorkerHeartbeat.beat_at).where(WorkerHeartbeat.name == "worker"))
    if beat is None:
        return None
    age = utcnow() - beat
    return age if age < RUNNING_HEARTBEAT else None


def _new_value(secrets: Secrets) -> bytes:
    taken = {getattr(secrets, name) for name in SECRET_NAMES}
    taken |= {value for name in SECRET_NAMES for value in secrets.previous_of(name)}
    while True:
        value = random.token_bytes(SECRET_BYTES)
        if value not in taken and len(set(value)) >= 8:
            return value


def _explain(rotation: Rotation, settings: Settings) -> None:
    typer.echo(f"{rotation.variable} protects {rotation.protects}")
    typer.echo("Rotating it:")
    for line in rotation.consequences:
        typer.echo(f"  - {line}")
    if settings.mode is Mode.embedded:
        typer.echo(
            f"Embedded mode: the new value goes to {secrets_folder(settings)}/{rotation.name}.key, the old "
            "one to "
            f"{rotation.name}.previous; stop the service first (its processes read the files at start)."
        )
    else:
        typer.echo(
            "Production: the secrets come from the environment. This prints the new value ONCE and the exact "
            f"changes to deploy; after deploying, `rueckhalt secrets rotate {rotation.name} --finish`."
        )


def _print_deployment(rotation: Rotation, new: bytes) -> None:
    name = rotation.name
    typer.echo("")
    typer.echo(
        "New value, shown once (put it into your secret store / .env.production; never beside backups):"
    )
    typer.echo(f"  {rotation.variable}={new.hex()}")
    if rotation.keep is Keep.always:
        typer.echo(
            f"  {rotation.variable}_PREVIOUS= the value {rotation.variable} has now, then the values "
            f"{rotation.variable}_PREVIOUS holds already (comma-separated). Keep it FOR GOOD: the audit "
            "chain's "
            "older segments are verified with it. (Not printed: copy it from where it is.)"
        )
    elif rotation.keep is not Keep.none or rotation.rekey_needs_previous:
        typer.echo(
            f"  {rotation.variable}_PREVIOUS= the value {rotation.variable} has now (copy it over; it is not "
            "printed here)."
        )
    typer.echo(
        "Then stop every process (docker compose stop api worker beat), deploy the environment, start them "
        "(docker compose up -d), and run:"
    )
    typer.echo(f"  rueckhalt secrets rotate {name} --finish")


def _complete(
    rotation: Rotation,
    settings: Settings,
    sessions: sessionmaker[Session],
    secrets: Secrets,
    *,
    finishing: bool,
    force: bool,
) -> None:
    """The re-keying and the end of a rotation, with the new value current and the old one previous."""
    name = rotation.name
    if finishing and rotation.keep is Keep.until_done and not secrets.previous_of(name):
        raise _fail(
            f"no rotation of {name} is under way ({rotation.variable}_PREVIOUS is not set): start one with "
            f"`rueckhalt secrets rotate {name}`, and in production deploy its new value with the old one as "
            f"{rotation.variable}_PREVIOUS before --finish"
        )
    if rotation.rekey is not None:
        if rotation.rekey_needs_previous and not secrets.previous_of(name):
            raise _fail(
                f"{rotation.variable}_PREVIOUS is not set: the re-keying needs the value before the rotation "
                f"beside the new {rotation.variable}"
            )
        with sessions() as session:
            try:
                done = rotation.rekey(session, secrets, settings)
            except Exception as exc:  # rolled back whole: say so, by the error's type only
                session.rollback()
                raise _fail(
                    f"the re-keying failed ({type(exc).__name__}); nothing of it was stored and the previous "
                    f"value is kept: fix the cause, then run `rueckhalt secrets rotate {name} --finish`"
                ) from None
            AuditLog.of(secrets).append(
                session,
                actor_kind="operator",
                actor_id=None,
                action="secret.rekeyed",
                object_type="secret",
                object_id=name,
                details={"secret": name, **done.counts},
            )
            session.commit()
        for line in done.notes:
            typer.echo(line)
    if rotation.keep is Keep.until_done:
        assert rotation.remaining is not None
        with sessions() as session:
            left = rotation.remaining(session, secrets)
        if not finishing:
            typer.echo(
                f"{left} still under the previous value; `rueckhalt secrets status` counts them. When it "
                "says 0: "
                f"rueckhalt secrets rotate {name} --finish"
            )
            return
        if left and not force:
            raise _fail(
                f"{left} still under the previous value: they would be lost with it (see "
                f"`rueckhalt secrets status`); wait, or --force to drop it anyway"
            )
    if rotation.keep is Keep.always:
        # The first append under the new key begins the new segment (if no process of the service did yet).
        _audit(sessions, secrets, "secret.rotation_finished", name, mode=settings.mode.value)
        with sessions() as session:
            result = verify(session, secrets.audit_key, previous=secrets.previous_of(name))
        if not result.ok:
            raise _fail(f"audit chain BROKEN at seq {result.first_bad_seq}: {result.explanation}")
        typer.echo(f"audit chain intact across the rotation: {result.checked} events checked")
        typer.echo(
            f"Keep the previous audit keys for good ({len(secrets.previous_of(name))} now): verification "
            "needs them."
        )
        return
    if settings.mode is Mode.embedded:
        drop_previous(secrets_folder(settings), name)
    elif secrets.previous_of(name):
        typer.echo(
            f"Now remove {rotation.variable}_PREVIOUS from the environment and restart every process: the "
            "old value is needed no more."
        )
    _audit(sessions, secrets, "secret.rotation_finished", name, mode=settings.mode.value)
    typer.echo(f"{rotation.variable}: rotation finished.")


@secrets_app.command("rotate")
def rotate(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(ROTATIONS)}")],
    finish: Annotated[
        bool,
        typer.Option(
            "--finish", help="After deploying (production) or when status shows 0: re-key and end it"
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Go on although the service runs, or data is still under the old value"),
    ] = False,
) -> None:
    """Replace a server secret; says first what that does to the running service."""
    rotation = ROTATIONS.get(name)
    if rotation is None:
        raise _fail(f"no secret {name!r}; the secrets are: {', '.join(ROTATIONS)}", 2)
    settings = _settings()
    try:
        secrets = load_secrets(settings)
    except Exception as exc:  # a ConfigurationError names what to fix
        raise _fail(str(exc), 2) from None
    engine = make_engine(settings.resolved_database_url)
    try:
        sessions = make_sessionmaker(engine)
        if finish:
            _complete(rotation, settings, sessions, secrets, finishing=True, force=force)
            return
        if rotation.keep is not Keep.always and secrets.previous_of(name):
            raise _fail(
                f"a rotation of {name} is under way ({rotation.variable}_PREVIOUS is set): end it first with "
                f"`rueckhalt secrets rotate {name} --finish`"
            )
        _explain(rotation, settings)
        if not yes:
            typer.confirm(f"Rotate {rotation.variable} now?", abort=True)
        embedded = settings.mode is Mode.embedded
        running = _running_for(sessions) if embedded else None
        if running is not None and not force:
            raise _fail(
                f"the service is running (a worker's heartbeat {int(running.total_seconds())} s ago): stop "
                "it "
                "(rueckhalt up / make run), then rotate; it reads the secrets at start"
            )
        new = _new_value(secrets)
        with sessions() as session:
            if name == "lookup_pepper":
                # Cases filed before their pepper was recorded are under this (the old) one.
                name_unrecorded_lookup_keys(session, secrets)
            AuditLog.of(secrets).append(
                session,
                actor_kind="operator",
                actor_id=None,
                action="secret.rotation_started",
                object_type="secret",
                object_id=name,
                details={"secret": name, "mode": settings.mode.value},
            )
            session.commit()
        if not embedded:
            _print_deployment(rotation, new)
            return
        write_rotation(
            secrets_folder(settings), name, new, getattr(secrets, name), keep_all=rotation.keep is Keep.always
        )
        typer.echo(f"{rotation.variable}: new value written; the old one kept as {name}.previous.")
        _complete(rotation, settings, sessions, load_secrets(settings), finishing=False, force=force)
    finally:
        engine.dispose()


@secrets_app.command("status")
def status() -> None:
    """Rotations under way: which previous values are still read, and what still depends on them."""
    settings = _settings()
    try:
        secrets = load_secrets(settings)
    except Exception as exc:
        raise _fail(str(exc), 2) from None
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            for name, rotation in ROTATIONS.items():
                previous = secrets.previous_of(name)
                if not previous:
                    typer.echo(f"{name:18} no rotation under way")
                elif rotation.keep is Keep.always:
                    typer.echo(f"{name:18} {len(previous)} previous key(s) kept for verifying older segments")
                elif rotation.remaining is not None:
                    left = rotation.remaining(session, secrets)
                    what = "cases" if name == "lookup_pepper" else "accounts"
                    typer.echo(
                        f"{name:18} rotation under way: {left} {what} still under the previous value"
                        + (f" (then: rueckhalt secrets rotate {name} --finish)" if left == 0 else "")
                    )
                else:
                    typer.echo(f"{name:18} previous value set: rueckhalt secrets rotate {name} --finish")
    finally:
        engine.dispose()


def register(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    global _settings
    _settings = settings
    app.add_typer(secrets_app, name="secrets")
