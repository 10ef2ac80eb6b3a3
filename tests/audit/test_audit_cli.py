"""``rueckhalt audit verify | tail`` through typer's CliRunner, against the test database of each kind.

The sub-app is mounted on a local typer app the way service/cli.py mounts it (``audit``), and builds its
runtime from the environment, so these tests also prove it finds the same audit key the service uses.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner, Result

from service.audit import AuditLog
from service.audit.cli import audit_app
from service.config import Settings, get_settings
from service.runtime import Runtime, build_runtime

app = typer.Typer()
app.add_typer(audit_app, name="audit")
runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, ["audit", *args])


@pytest.fixture
def service_runtime(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """The service's runtime on the test database, with the CLI's environment pointing at the same place."""
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", settings.resolved_database_url)
    get_settings.cache_clear()
    runtime = build_runtime(settings)
    yield runtime
    runtime.dispose()
    get_settings.cache_clear()


def _append(runtime: Runtime, count: int) -> None:
    log = AuditLog(runtime.secrets.audit_key)
    for number in range(count):
        with runtime.sessions() as session:
            log.append(
                session,
                actor_kind="staff",
                actor_id=f"staff-{number}",
                action="case.decrypt",
                object_type="case",
                object_id=f"case-{number}",
                details={"field": "description", "count": number},
            )
            session.commit()


def _checkpoint_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_verify_prints_the_count_and_a_checkpoint_that_a_later_run_accepts(service_runtime: Runtime) -> None:
    """Given three events, then verify exits 0, prints "3 events checked" and the head as SEQ:MAC; given
    that checkpoint after two more events, it exits 0 again and prints the new head."""
    _append(service_runtime, 3)

    first = invoke("verify")
    assert first.exit_code == 0, first.output
    assert "3 events checked" in first.output
    checkpoint = _checkpoint_line(first.output)
    with service_runtime.sessions() as session:
        head_mac = session.execute(text("SELECT mac FROM audit_event WHERE seq = 3")).scalar_one()
    assert checkpoint == f"3:{head_mac}"

    _append(service_runtime, 2)
    second = invoke("verify", "--since-checkpoint", checkpoint)
    assert second.exit_code == 0, second.output
    assert "5 events checked" in second.output
    assert "checkpoint 3 is still in the chain" in second.output
    assert _checkpoint_line(second.output).startswith("5:")


def test_verify_exits_1_naming_the_first_bad_seq_and_the_problem(service_runtime: Runtime) -> None:
    _append(service_runtime, 4)
    with service_runtime.engine.begin() as connection:
        connection.execute(text("UPDATE audit_event SET action = 'case.view' WHERE seq = 2"))

    result = invoke("verify")
    assert result.exit_code == 1
    assert "BROKEN at seq 2: bad_mac" in result.stderr
    assert "1 events before it are intact" in result.stderr
    # A broken chain offers no checkpoint to keep.
    assert "checkpoint" not in result.stdout


def test_verify_catches_a_cut_tail_only_against_the_checkpoint(service_runtime: Runtime) -> None:
    _append(service_runtime, 3)
    checkpoint = _checkpoint_line(invoke("verify").output)
    with service_runtime.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_event WHERE seq = 3"))

    assert invoke("verify").exit_code == 0
    result = invoke("verify", "--since-checkpoint", checkpoint)
    assert result.exit_code == 1
    assert "BROKEN at seq 3: truncated" in result.stderr


def test_verify_on_an_empty_log_has_no_checkpoint_yet(service_runtime: Runtime) -> None:
    result = invoke("verify")
    assert result.exit_code == 0, result.output
    assert "0 events checked" in result.output
    assert "no checkpoint yet" in result.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("checkpoint", ["3", "3:xyz", "0:" + "a" * 64])
def test_verify_refuses_a_malformed_checkpoint_as_a_usage_error(
    service_runtime: Runtime, checkpoint: str
) -> None:
    result = invoke("verify", "--since-checkpoint", checkpoint)
    assert result.exit_code == 2
    assert "SEQ:MAC" in result.output


def test_tail_shows_the_newest_events_oldest_first(service_runtime: Runtime) -> None:
    _append(service_runtime, 5)
    result = invoke("tail", "-n", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].split()[0] == "4"
    assert lines[1].split()[0] == "5"
    assert "staff:staff-4" in lines[1]
    assert "case.decrypt" in lines[1]
    assert "case:case-4" in lines[1]
    assert 'count=4 field="description"' in lines[1]
    assert lines[1].split()[1].endswith("Z")

    assert len(invoke("tail").output.strip().splitlines()) == 5


def test_tail_shows_one_actors_events_only(service_runtime: Runtime) -> None:
    """What a compromised account opened: its events only, by id (or e-mail for a staff account)."""
    _append(service_runtime, 5)
    with service_runtime.sessions() as session:
        AuditLog(service_runtime.secrets.audit_key).append(
            session, actor_kind="operator", actor_id=None, action="secret.rekeyed", object_type="secret"
        )
        session.commit()
    lines = invoke("tail", "--actor", "staff-3", "-n", "100").output.strip().splitlines()
    assert len(lines) == 1
    assert "staff:staff-3" in lines[0]
    assert "case:case-3" in lines[0]
    assert len(invoke("tail", "--action", "case.").output.strip().splitlines()) == 5
    assert "secret.rekeyed" in invoke("tail", "--action", "secret.").output
    unknown = invoke("tail", "--actor", "nobody@example.org")
    assert unknown.exit_code == 2
    assert "no staff account" in unknown.output


def test_tail_on_an_empty_log_says_so(service_runtime: Runtime) -> None:
    result = invoke("tail")
    assert result.exit_code == 0
    assert "empty" in result.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tail_escapes_control_characters(service_runtime: Runtime) -> None:
    """Given a row written past the service with a terminal escape in it, then tail prints it escaped: the
    log must not be able to drive the operator's terminal."""
    _append(service_runtime, 1)
    with service_runtime.engine.begin() as connection:
        connection.execute(text("UPDATE audit_event SET object_id = 'x' || char(27) || '[2J' WHERE seq = 1"))
    result = invoke("tail")
    assert result.exit_code == 0
    assert "\x1b" not in result.output
    assert "x\\x1b[2J" in result.output


def test_tail_refuses_a_nonsense_count(service_runtime: Runtime) -> None:
    assert invoke("tail", "-n", "0").exit_code == 2


def test_verify_warns_when_the_newest_events_are_under_a_retired_key(
    service_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events under an old audit key, the CLI run with the new one (the old one kept as previous): the chain
    is intact, exit 0, and the run says the newest events are under a retired key and what that may mean."""
    old = AuditLog(bytes(range(100, 132)))
    with service_runtime.sessions() as session:
        old.append(session, actor_kind="system", actor_id=None, action="before.rotation")
        session.commit()
    monkeypatch.setenv("RUECKHALT_AUDIT_KEY_PREVIOUS", bytes(range(100, 132)).hex())
    get_settings.cache_clear()
    result = invoke("verify")
    assert result.exit_code == 0, result.output
    assert "1 events checked" in result.output
    assert "under a retired audit key" in result.output
    assert "cut by someone who holds the old key" in result.output
