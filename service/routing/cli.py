"""``rueckhalt policy check | explain | test``.

The main command line mounts ``policy_app`` and tells it where organisations come from by calling
``set_org_source`` with a function that reads the database (slug -> has a key). Without that hook, as in a
checkout without a database or in CI, every organisation in routing.yaml counts as set up with a key, so
the commands still check the policy's own logic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from service.routing.cases import CaseResult, ReportInput, run_cases
from service.routing.check import FindingLevel, check_policies_dir
from service.routing.explain import explain
from service.routing.loader import load_policy
from service.routing.models import RoutingPolicy
from service.taxonomy import PolicyFileError, load_taxonomy
from service.taxonomy.files import problems_from_validation

OrgSource = Callable[[], Mapping[str, bool]]

DEFAULT_POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"

policy_app = typer.Typer(
    name="policy",
    help="Check, explain and test the routing policy in policies/.",
    no_args_is_help=True,
    add_completion=False,
)

_org_source: OrgSource | None = None


def set_org_source(source: OrgSource | None) -> None:
    """Install (or, with None, remove) the function that lists the organisations set up in the service."""
    # A hook set once at start-up by the main command line (and by tests).
    global _org_source
    _org_source = source


def known_organisations(policy: RoutingPolicy) -> Mapping[str, bool]:
    if _org_source is not None:
        return _org_source()
    return {org.slug: True for org in policy.organisations}


PoliciesDir = Annotated[
    Path,
    typer.Option(
        "--policies-dir",
        envvar="RUECKHALT_POLICIES_DIR",
        help="Folder with routing.yaml, taxonomy.yaml and districts.csv.",
        file_okay=False,
    ),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@policy_app.command("check")
def check_command(
    policies_dir: PoliciesDir = DEFAULT_POLICIES_DIR,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Check the files alone, without the database: every organisation counts as having a key.",
        ),
    ] = False,
) -> None:
    """Validate the policy: codes, organisations, dead rules, gaps, police without consent."""

    def from_files(policy: RoutingPolicy) -> Mapping[str, bool]:
        return {org.slug: True for org in policy.organisations}

    findings = check_policies_dir(policies_dir, from_files if offline else known_organisations)
    for finding in findings:
        typer.echo(str(finding))
    errors = sum(1 for finding in findings if finding.level is FindingLevel.error)
    warnings = len(findings) - errors
    typer.echo(f"{errors} error(s), {warnings} warning(s)")
    if errors:
        raise typer.Exit(1)


@policy_app.command("explain")
def explain_command(
    report_json: Annotated[
        Path, typer.Argument(help="JSON file with the report's routing fields.", dir_okay=False, exists=True)
    ],
    policies_dir: PoliciesDir = DEFAULT_POLICIES_DIR,
) -> None:
    """Show which rules match a report and why, and where it would go now."""
    try:
        taxonomy = load_taxonomy(policies_dir)
        policy = load_policy(policies_dir, taxonomy)
    except PolicyFileError as exc:
        raise _fail(str(exc)) from None
    try:
        raw = json.loads(report_json.read_text(encoding="utf-8"))
        facts = ReportInput.model_validate(raw).to_facts(taxonomy)
    except json.JSONDecodeError as exc:
        raise _fail(f"{report_json}: not valid JSON (line {exc.lineno})", 2) from None
    except ValidationError as exc:
        problems = "\n".join(f"{report_json}: {p}" for p in problems_from_validation(exc, raw))
        raise _fail(problems, 2) from None
    except ValueError as exc:
        raise _fail(f"{report_json}: {exc}", 2) from None
    known = known_organisations(policy)
    reachable = frozenset(slug for slug, has_key in known.items() if has_key)
    typer.echo(explain(policy, facts, reachable), nl=False)


def _table(results: list[CaseResult]) -> str:
    rows = [("case", "expected", "got", "ok")]
    for result in results:
        if result.error is not None:
            rows.append((result.name, result.error, "", "ERROR"))
        else:
            rows.append((result.name, result.expected, result.got, "ok" if result.ok else "FAIL"))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


@policy_app.command("test")
def run_tests_command(
    policies_dir: PoliciesDir = DEFAULT_POLICIES_DIR,
    cases_dir: Annotated[
        Path | None,
        typer.Option(
            "--cases-dir", help="Folder with the case files (default: <policies-dir>/tests).", file_okay=False
        ),
    ] = None,
) -> None:
    """Run the example reports in policies/tests/*.yaml against the policy; exit 1 on any mismatch."""
    try:
        taxonomy = load_taxonomy(policies_dir)
        policy = load_policy(policies_dir, taxonomy)
    except PolicyFileError as exc:
        raise _fail(str(exc)) from None
    folder = cases_dir if cases_dir is not None else policies_dir / "tests"
    results = run_cases(policy, taxonomy, folder)
    if not results:
        raise _fail(f"no test cases found in {folder}")
    typer.echo(_table(results))
    failed = sum(1 for result in results if not result.ok)
    typer.echo(f"policy examples: {len(results) - failed} as expected, {failed} not as expected")
    if failed:
        raise typer.Exit(1)
