"""``rueckhalt retention list | purge [--dry-run]`` through typer's CliRunner on the main command line.

The commands build their runtime from the environment (``RUECKHALT_*``), pointed here at the test's data
folder and database, so they use the same secrets, audit key and blob folder as the test's runtime.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner, Result

from service.audit.models import AuditEvent
from service.audit.policies import ACTION as POLICY_CHANGED
from service.cli import app
from service.config import PROJECT_ROOT, Settings, get_settings
from service.retention.policy import RETENTION_FILE
from service.retention.service import PURGED_ACTION
from service.runtime import Runtime
from tests.support.retention import Filed, FileReport, case_rows, set_closure, table_census

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", settings.resolved_database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def three_cases(runtime: Runtime, file_report: FileReport, now: datetime) -> dict[str, Filed]:
    """A duplicate closed 45 days ago and a supported case closed 400 days ago (both due), and a withdrawn
    case closed 45 days ago (due only after 90)."""
    cases = {"duplicate": file_report(), "supported": file_report(), "withdrawn": file_report()}
    for (outcome, filed), days in zip(cases.items(), (45, 400, 45), strict=True):
        set_closure(runtime, filed.case_id, closed_at=now - timedelta(days=days), outcome=outcome)
    return cases


def day(now: datetime, days_ago: int) -> str:
    return (now - timedelta(days=days_ago)).astimezone(UTC).date().isoformat()


@pytest.mark.usefixtures("cli_env")
def test_list_shows_each_due_case_with_its_dates_and_changes_nothing(
    runtime: Runtime, three_cases: dict[str, Filed], now: datetime
) -> None:
    """Given two due cases and one that is not, then `retention list` prints one line per due case, oldest
    closure first (id, outcome, closed date, due since), then a summary; it changes nothing, and
    `purge --dry-run` prints the same."""
    census = table_census(runtime)

    listed = invoke("retention", "list")

    assert listed.exit_code == 0, listed.output
    *lines, summary = listed.stdout.strip().splitlines()
    supported, duplicate = three_cases["supported"].case_id, three_cases["duplicate"].case_id
    assert lines == [
        f"{supported}  supported           closed {day(now, 400)}  due since {day(now, 35)}  would be purged",
        f"{duplicate}  duplicate           closed {day(now, 45)}  due since {day(now, 15)}  would be purged",
    ]
    assert summary.startswith("dry run: 2 cases would be purged; ")
    assert summary.endswith("nothing was changed")
    assert three_cases["withdrawn"].case_id not in listed.stdout
    assert table_census(runtime) == census
    assert invoke("retention", "purge", "--dry-run").stdout == listed.stdout


@pytest.mark.usefixtures("cli_env")
def test_purge_removes_the_listed_cases_and_the_audit_chain_still_verifies(
    runtime: Runtime, three_cases: dict[str, Filed]
) -> None:
    """Given the same three cases, then `retention purge` purges the two due ones, prints a line each and a
    summary, and exits 0; the audit log records the policy files it ran under before the purges, each
    purge names that policy's digest, and `rueckhalt audit verify` passes."""
    listed = invoke("retention", "list").stdout.strip().splitlines()[:-1]

    purged = invoke("retention", "purge")

    assert purged.exit_code == 0, purged.output
    *lines, summary = purged.stdout.strip().splitlines()
    assert [line.rsplit("  ", 1)[0] for line in lines] == [line.rsplit("  ", 1)[0] for line in listed]
    assert all(line.endswith("  purged") for line in lines)
    assert summary.startswith("purged 2 of 2 due cases (0 no longer due, 0 failed); deleted ")
    for outcome, filed in three_cases.items():
        assert case_rows(runtime, filed.case_id)["case_file"] == (1 if outcome == "withdrawn" else 0)
    with runtime.sessions() as db:
        events = list(db.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    policy = [e for e in events if e.action == POLICY_CHANGED]
    purges = [e for e in events if e.action == PURGED_ACTION]
    assert len(policy) == 1
    assert len(purges) == 2
    assert policy[0].seq < purges[0].seq
    assert {e.details["policy_sha256"] for e in purges} == {policy[0].details[RETENTION_FILE]}
    verified = invoke("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert f"{len(events)} events checked" in verified.stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("cli_env")
def test_a_retention_file_it_does_not_understand_stops_the_command(
    runtime: Runtime, three_cases: dict[str, Filed], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a retention.yaml with a period of 0 days, then `retention purge` exits 2 naming the file and
    the place, and purges nothing."""
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies)
    text = (policies / RETENTION_FILE).read_text(encoding="utf-8")
    (policies / RETENTION_FILE).write_text(text.replace("duplicate: 30", "duplicate: 0"), encoding="utf-8")
    monkeypatch.setenv("RUECKHALT_POLICIES_DIR", str(policies))
    get_settings.cache_clear()

    result = invoke("retention", "purge")

    assert result.exit_code == 2
    assert "policy error" in result.stderr
    assert "retention_days_by_outcome.duplicate" in result.stderr
    assert all(case_rows(runtime, filed.case_id)["case_file"] == 1 for filed in three_cases.values())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("cli_env")
def test_a_case_that_fails_is_named_and_the_command_exits_1(
    runtime: Runtime, three_cases: dict[str, Filed]
) -> None:
    """Given a database that refuses to delete one due case (a trigger, as a fault of the database), then
    `retention purge` prints that case as failed with the error's class name only, purges the other due
    case, and exits 1 so that a scheduler notices."""
    held = three_cases["supported"].case_id
    with runtime.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER hold_case BEFORE DELETE ON case_file "
                f"WHEN old.id = '{held}' BEGIN SELECT RAISE(ABORT, 'secret reason'); END"
            )
        )

    result = invoke("retention", "purge")

    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(held)
    assert lines[0].endswith("FAILED (IntegrityError), rolled back")
    assert lines[1].endswith("  purged")
    assert lines[2].startswith("purged 1 of 2 due cases (0 no longer due, 1 failed)")
    assert "secret reason" not in result.output
    assert case_rows(runtime, held)["case_key_grant.case_id"] > 0
    assert case_rows(runtime, three_cases["duplicate"].case_id)["case_file"] == 0
