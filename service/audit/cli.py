"""``rueckhalt audit verify | tail``: mounted by the main command line as ``audit``.

The runtime is built from the process's settings (``RUECKHALT_*``) the way the service builds it, so the
audit key is the one the service writes with.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import TYPE_CHECKING, Annotated

import typer

from service.audit import repository
from service.audit.repository import StoredEvent
from service.audit.service import Checkpoint, verify
from service.cli_runtime import cli_runtime

if TYPE_CHECKING:
    pass

audit_app = typer.Typer(
    name="audit",
    help="The hash-chained audit log: verify it, show the newest events.",
    no_args_is_help=True,
    add_completion=False,
)


def _checkpoint(value: str | None) -> Checkpoint | None:
    if value is None:
        return None
    try:
        return Checkpoint.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@audit_app.command("verify")
def verify_command(
    since_checkpoint: Annotated[
        str | None,
        typer.Option(
            "--since-checkpoint",
            metavar="SEQ:MAC",
            help="A checkpoint printed by an earlier run. The chain must still contain it unchanged, which "
            "detects a cut tail; without one, deleting the newest events goes unnoticed.",
        ),
    ] = None,
) -> None:
    """Check every row from the first; print a checkpoint to keep offline. Exit 1 if the chain is broken.

    Events appended after the newest kept checkpoint are protected against change, but a cut of them can
    only be detected against a later checkpoint: keep the one printed by every run.
    """
    checkpoint = _checkpoint(since_checkpoint)
    with cli_runtime() as runtime, runtime.sessions() as session:
        result = verify(session, runtime.secrets.audit_key, checkpoint=checkpoint)
    if not result.ok:
        typer.echo(
            f"audit chain BROKEN at seq {result.first_bad_seq}: {result.problem} — {result.explanation}. "
            f"{result.checked} events before it are intact.",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"audit chain intact: {result.checked} events checked")
    if checkpoint is not None:
        typer.echo(f"checkpoint {checkpoint.seq} is still in the chain, unchanged")
    if result.head is None:
        typer.echo("the audit log is empty: no checkpoint yet")
        return
    typer.echo("checkpoint to keep offline (give it to --since-checkpoint next time):")
    typer.echo(f"{result.head}")


def _printable(text: str) -> str:
    """Escape control characters: a value written past the service must not drive the operator's terminal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _details(details: object) -> str:
    if not isinstance(details, dict):
        return _printable(json.dumps(details))
    # Details are scalars by construction (identifiers, codes, counts), so they are shown in full.
    return " ".join(f"{name}={json.dumps(value)}" for name, value in sorted(details.items()))


def format_event(event: StoredEvent) -> str:
    at = event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    actor = f"{event.actor_kind}:{event.actor_id or '-'}"
    target = f"{event.object_type or '-'}:{event.object_id or '-'}"
    line = f"{event.seq:>8}  {at}  {actor}  {event.action}  {target}"
    details = _details(event.details)
    return _printable(f"{line}  {details}" if details else line)


@audit_app.command("tail")
def tail_command(
    lines: Annotated[
        int, typer.Option("-n", "--lines", min=1, max=10_000, help="How many of the newest events")
    ] = 20,
) -> None:
    """Show the newest events, oldest first. This only reads; run `verify` to trust what it shows."""
    with cli_runtime() as runtime, runtime.sessions() as session:
        events = repository.latest(session, lines)
    if not events:
        typer.echo("the audit log is empty")
        return
    for event in events:
        typer.echo(format_event(event))
