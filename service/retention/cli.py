"""``rueckhalt retention list | purge [--dry-run]``: mounted by the main command line as ``retention``.

The runtime is built from the process's settings (``RUECKHALT_*``) the way the service builds it, so the
policy, the audit key and the blob folder are the ones the service uses. Output is one line per case
(id, outcome, closed date, due since; dates in UTC), then one summary line. It holds identifiers, codes
and dates only, never content.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from service.cli_runtime import cli_runtime
from service.retention.service import CasePurge, CaseResult, PurgeCandidate, PurgeReport

if TYPE_CHECKING:
    pass

retention_app = typer.Typer(
    name="retention",
    help="Purge closed cases past their retention period (policies/retention.yaml).",
    no_args_is_help=True,
    add_completion=False,
)


def _day(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


def format_candidate(candidate: PurgeCandidate, status: str) -> str:
    return (
        f"{candidate.case_id}  {candidate.outcome or '-':<18}  closed {_day(candidate.closed_at)}  "
        f"due since {_day(candidate.due_since)}  {status}"
    )


def _status(case: CasePurge) -> str:
    if case.result is CaseResult.purged:
        return "purged"
    if case.result is CaseResult.not_due:
        return "kept: no longer due (re-opened?)"
    return f"FAILED ({case.error}), rolled back"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary(report: PurgeReport) -> str:
    if report.dry_run:
        return (
            f"dry run: {_plural(len(report.candidates), 'case')} would be purged; "
            f"{_plural(report.outbox_messages, 'completed outbox message')} and "
            f"{_plural(report.orphan_blobs, 'orphan blob file')} would be deleted"
            + (
                f"; {_plural(report.key_epochs, 'organisation key epoch')} would be destroyed"
                if report.key_epochs
                else ""
            )
            + (
                f"; {_plural(report.submission_tokens, 'expired submission token')} would be deleted"
                if report.submission_tokens
                else ""
            )
            + (
                f"; {_plural(report.expired_sessions, 'expired session')} would be deleted"
                if report.expired_sessions
                else ""
            )
            + (f"; {_plural(report.notices, 'reporter')} would be told first" if report.notices else "")
            + "; nothing was changed"
        )
    leftover = sum(case.leftover_blobs for case in report.purged)
    line = (
        f"purged {len(report.purged)} of {_plural(len(report.candidates), 'due case')} "
        f"({len(report.not_due)} no longer due, {len(report.failed)} failed); deleted "
        f"{_plural(report.outbox_messages, 'completed outbox message')} and "
        f"{_plural(report.orphan_blobs, 'orphan blob file')}"
    )
    if leftover:
        line += f"; {_plural(leftover, 'blob file')} left for the next sweep"
    if report.key_epochs:
        line += f"; destroyed {_plural(report.key_epochs, 'organisation key epoch')} no case needs any more"
    if report.submission_tokens:
        line += f"; deleted {_plural(report.submission_tokens, 'expired submission token')}"
    if report.expired_sessions:
        line += f"; deleted {_plural(report.expired_sessions, 'expired session')}"
    if report.notices:
        line += f"; told {_plural(report.notices, 'reporter')} of a purge to come"
    return line


def print_report(report: PurgeReport) -> None:
    if report.dry_run:
        for candidate in report.candidates:
            typer.echo(format_candidate(candidate, "would be purged"))
    else:
        for case in report.cases:
            typer.echo(format_candidate(case.candidate, _status(case)))
    typer.echo(summary(report))


def _run(*, dry_run: bool) -> None:
    from service.audit.policies import record_policy_state
    from service.db import utcnow

    with cli_runtime() as runtime:
        if not dry_run:
            # Like a start of the service: a purge must never run under a policy the audit log has not
            # recorded (edit retention.yaml, purge, restore the file — and no trace of the edit).
            with runtime.sessions() as session:
                record_policy_state(session, runtime.audit, runtime.settings.policies_dir)
                session.commit()  # recorded before the purge begins, whatever the purge then does
        with runtime.sessions() as session:
            report = runtime.retention.purge(session, utcnow(), dry_run=dry_run)
            # The cases and notices committed one by one in the purge; the command commits the rest.
            session.commit()
    print_report(report)
    if report.failed:
        raise typer.Exit(1)


@retention_app.command("list")
def list_command() -> None:
    """Show what a purge would remove now, with dates; changes nothing (the same as `purge --dry-run`)."""
    _run(dry_run=True)


@retention_app.command("purge")
def purge_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be purged; change nothing.")
    ] = False,
) -> None:
    """Purge the closed cases past their period: keys, ciphertext, files and reporter sessions.

    Each case is purged in its own transaction and audited as `case.purged`. Exit 1 if any case failed
    (it is left intact and tried again on the next run).
    """
    _run(dry_run=dry_run)
