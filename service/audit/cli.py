"""``rueckhalt audit verify | tail``: mounted by the main command line as ``audit``.

The runtime is built from the process's settings (``RUECKHALT_*``) the way the service builds it, so the
audit key is the one the service writes with.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated

import typer

from service.audit import repository
from service.audit.checkpoint import Checkpoint, find_checkpoints, newest
from service.audit.repository import StoredEvent
from service.audit.verification import verify
from service.cli_runtime import cli_runtime

audit_app = typer.Typer(
    name="audit",
    help="The hash-chained audit log: verify it, show the newest events.",
    no_args_is_help=True,
    add_completion=False,
)


# A checkpoint mail is a few kilobytes; anything far larger is not one.
MAX_CHECKPOINT_FILE_BYTES = 1024 * 1024


def _checkpoint(value: str) -> Checkpoint:
    try:
        return Checkpoint.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since-checkpoint") from None


def _mail_text(raw: bytes) -> str:
    """The readable text of a saved mail (.eml: headers, quoted-printable), or the bytes as text.

    A saved checkpoint mail carries its long lines quoted-printable encoded, which splits the checkpoint;
    decoding it as a mail gives back the text the recipient saw. Pasted text is not a mail and is read as is.
    """
    text = raw.decode("utf-8", errors="replace")
    parsed = message_from_bytes(raw, policy=policy.default)
    if not isinstance(parsed, EmailMessage) or parsed["Subject"] is None:
        return text
    body = parsed.get_body(preferencelist=("plain",))
    if not isinstance(body, EmailMessage):
        return text
    try:
        return f"{body.get_content()}\n{text}"
    except (LookupError, ValueError):
        return text


def _checkpoints_in_file(path: Path) -> list[Checkpoint]:
    if str(path) == "-":
        raw = sys.stdin.buffer.read(MAX_CHECKPOINT_FILE_BYTES + 1)
    else:
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_CHECKPOINT_FILE_BYTES + 1)
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {path} ({exc.strerror})", param_hint="--checkpoint-file"
            ) from None
    if len(raw) > MAX_CHECKPOINT_FILE_BYTES:
        raise typer.BadParameter(f"{path} is larger than a checkpoint mail", param_hint="--checkpoint-file")
    found = find_checkpoints(_mail_text(raw))
    # A saved mail shows a signed checkpoint; its bare SEQ:MAC adds nothing and is not counted twice.
    signed = {(c.seq, c.mac) for c in found if c.is_signed}
    found = [c for c in found if c.is_signed or (c.seq, c.mac) not in signed]
    if not found:
        raise typer.BadParameter(f"no checkpoint found in {path}", param_hint="--checkpoint-file")
    return found


def _gather(values: list[str], files: list[Path]) -> list[Checkpoint]:
    gathered: list[Checkpoint] = []
    for checkpoint in [*map(_checkpoint, values), *(c for f in files for c in _checkpoints_in_file(f))]:
        if checkpoint not in gathered:
            gathered.append(checkpoint)
    return gathered


@audit_app.command("verify")
def verify_command(
    since_checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--since-checkpoint",
            metavar="SEQ:MAC",
            help="A checkpoint printed by an earlier run (SEQ:MAC) or mailed by the daily checkpoint "
            "(SEQ:MAC:TIME:TAG); may be repeated. The chain must still contain each unchanged, which detects "
            "a cut tail; without one, deleting the newest events goes unnoticed.",
        ),
    ] = None,
    checkpoint_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint-file",
            metavar="FILE",
            help="A saved checkpoint mail (.eml) or text with checkpoints in it ('-' reads standard input); "
            "may be repeated.",
        ),
    ] = None,
) -> None:
    """Check every row from the first; print a checkpoint to keep offline. Exit 1 if the chain is broken,
    a checkpoint shows a cut or rewritten tail, or a mailed checkpoint is forged.

    With several checkpoints a cut is reported against the newest. Events appended after the newest kept
    checkpoint are protected against change, but a cut of them can only be detected against a later
    checkpoint: keep the daily checkpoint mail, and the one printed by every run.
    """
    checkpoints = _gather(since_checkpoint or [], checkpoint_file or [])
    latest = newest(checkpoints)
    if latest is not None:
        dated = f" from {latest.when}" if latest.at is not None else ""
        typer.echo(
            f"checking against {len(checkpoints)} checkpoint(s); the newest: seq {latest.seq}{dated}"
            + ("" if latest.is_signed else " (unsigned)")
        )
    with cli_runtime() as runtime, runtime.sessions() as session:
        result = verify(
            session,
            runtime.secrets.audit_key,
            previous=runtime.secrets.previous_of("audit_key"),
            checkpoints=checkpoints,
        )
    for line in result.refusals:
        typer.echo(line, err=True)
    if not result.ok and result.first_bad_seq is not None:
        typer.echo(
            f"audit chain BROKEN at seq {result.first_bad_seq}: {result.problem} — {result.explanation}. "
            f"{result.checked} events before it are intact.",
            err=True,
        )
        if result.finding:
            typer.echo(result.finding, err=True)
        raise typer.Exit(1)
    typer.echo(f"audit chain intact: {result.checked} events checked")
    if result.tail_under_retired_key:
        typer.echo(
            "WARNING: the newest events are under a retired audit key. Either nothing was written since the "
            "key was rotated, or events after the rotation were cut by someone who holds the old key. Check "
            "against a checkpoint mailed after the rotation (--checkpoint-file).",
            err=True,
        )
    if not result.ok:
        # Only a refused (forged) checkpoint is left: the chain is fine, the checkpoint is not.
        raise typer.Exit(1)
    if result.checkpoint is not None:
        typer.echo(f"checkpoint {result.checkpoint.seq} is still in the chain, unchanged")
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
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            metavar="EMAIL_OR_ID",
            help="Only this staff account's events (its e-mail address or id): what a compromised account "
            "opened, downloaded or changed (docs/runbooks.md)",
        ),
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", metavar="PREFIX", help="Only actions starting with this, e.g. case. or secret."
        ),
    ] = None,
) -> None:
    """Show the newest events, oldest first. This only reads; run `verify` to trust what it shows."""
    with cli_runtime() as runtime, runtime.sessions() as session:
        actor_id = actor
        if actor is not None and "@" in actor:
            # Through the runtime's account service: the audit log imports no feature, staff accounts
            # included (it is the leaf every feature writes to).
            try:
                actor_id = runtime.accounts.user_by_email(session, actor).id
            except ValueError:
                raise typer.BadParameter(f"no staff account {actor}", param_hint="--actor") from None
        events = repository.latest(session, lines, actor_id=actor_id, action_prefix=action)
    if not events:
        typer.echo("the audit log is empty")
        return
    for event in events:
        typer.echo(format_event(event))
