"""``rueckhalt stats``: public releases (differential privacy) from the operator's console."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli_runtime import cli_runtime

stats_app = typer.Typer(help="Anonymised statistics: public releases.", no_args_is_help=True)


@stats_app.command("release")
def release_command(
    year: Annotated[int, typer.Option(help="The year to release (e.g. 2026)")],
) -> None:
    """Compute, store and publish the year's differentially private release (or show the stored one)."""
    from service.statistics.domains import domains_from
    from service.statistics.policy import load_statistics_policy
    from service.statistics.public.ledger import MICRO, BudgetExceeded, release_year

    steps = iter(range(1, 10))
    with cli_runtime() as runtime:
        policy = load_statistics_policy(runtime.settings.policies_dir).public
        with runtime.sessions() as session:
            try:
                stored = release_year(
                    session,
                    year=year,
                    policy=policy,
                    domains=domains_from(runtime.taxonomy),
                    audit=runtime.audit,
                    progress=lambda step: typer.echo(f"[{next(steps)}] {step} ..."),
                )
                session.commit()  # the command is the release's transaction
            except BudgetExceeded as exc:
                typer.echo(f"refused: the privacy budget of {year} does not cover this release", err=True)
                for problem in exc.detail:
                    typer.echo(f"  {problem['msg']}", err=True)
                raise typer.Exit(1) from None
    state = "computed and published" if stored.fresh else "already published; the stored numbers are kept"
    typer.echo(f"release {stored.id} for {year}: {state}")
    for table in stored.release.tables:
        cells = len(table.cells)
        typer.echo(f"  {table.id}: {table.measure} by {table.by}, epsilon {table.epsilon:g}, {cells} cells")
    spent, total = stored.spent_micro_epsilon / MICRO, stored.total_micro_epsilon / MICRO
    typer.echo(f"budget {year}: {spent:g} of {total:g} spent")


@stats_app.command("snapshot")
def snapshot_command(
    month: Annotated[str, typer.Option(help="The last month the snapshot covers, YYYY-MM")],
) -> None:
    """Build, check (LP attacker) and store the coordinators' snapshot as of a month."""
    from service.statistics.dashboard.service import make_snapshot
    from service.statistics.domains import domains_from
    from service.statistics.policy import load_statistics_policy

    with cli_runtime() as runtime:
        rules = load_statistics_policy(runtime.settings.policies_dir).coordinator
        typer.echo(f"building the snapshot as of {month} and checking it against an LP attacker ...")
        with runtime.sessions() as session:
            snapshot = make_snapshot(
                session, as_of=month, domains=domains_from(runtime.taxonomy), rules=rules, audit=runtime.audit
            )
            session.commit()  # the command is the snapshot's transaction
    gate = snapshot.gate
    state = "released" if snapshot.released else "NOT released (the gate failed; it will not be shown)"
    typer.echo(
        f"snapshot {snapshot.as_of}: {state}; {gate.hidden_numbers} hidden numbers checked, "
        f"narrowest interval {gate.narrowest_width}"
    )
    if not snapshot.released:
        raise typer.Exit(1)
