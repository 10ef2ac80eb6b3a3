"""`rueckhalt secrets rotate NAME`: after each rotation the service still keeps its promises (receipts open,
the audit chain verifies across the rotation, reporters' addresses are still delivered to, sessions ended),
and no secret value appears in a log line or in the audit log. On SQLite and PostgreSQL.

The command runs as an operator's shell runs it (typer's runner, the environment pointing at the test's data
folder and database); the service after it is a new runtime that reads the secrets as a restarted
process does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from typer.testing import CliRunner, Result

from service.app import create_app
from service.audit import AuditKeyMismatch, AuditLog, verify
from service.auth import sessions as web_sessions
from service.auth.models import RecoveryCode, WebSession
from service.auth.sessions import REPORTER_SESSION, STAFF_SESSION
from service.cases.contact import open_address
from service.cases.models import Case
from service.cli import app
from service.config import SECRET_NAMES, Mode, Settings, get_settings, load_secrets
from service.crypto import keyed_hash, totp_code
from service.errors import NotFound
from service.extract.models import StatisticsExtract
from service.identity.models import Organisation
from service.ratelimit.models import RateLimitCounter
from service.runtime import Runtime, build_runtime
from service.secrets import ROTATIONS
from tests.support.backup import point_cli_at
from tests.support.retention import REPORT
from tests.support.staff import WEAK, Clock, MakeStaff, weak_accounts
from workers.context import context_for

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    point_cli_at(monkeypatch, settings.data_dir, settings.resolved_database_url)
    yield
    get_settings.cache_clear()


@pytest.fixture
def restarted(settings: Settings) -> Iterator[list[Runtime]]:
    """Runtimes built after a rotation (a restarted process); disposed at the end."""
    built: list[Runtime] = []
    yield built
    for runtime in built:
        runtime.dispose()


def restart(settings: Settings, built: list[Runtime]) -> Runtime:
    runtime = build_runtime(settings)
    built.append(runtime)
    return runtime


def file_report(client: TestClient, **extra: str) -> str:
    response = client.post("/api/v1/reports", json={**REPORT, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["receipt"])


def every_secret_value(settings: Settings) -> list[str]:
    """Every secret value there has been in this data folder, in the encodings a leak would show."""
    folder = settings.data_dir / "secrets"
    values: list[str] = []
    for path in folder.iterdir():
        for line in path.read_text().split():
            raw = bytes.fromhex(line)
            values += [line, line.upper(), raw.hex()]
    return values


def audit_text(runtime: Runtime) -> str:
    with runtime.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM audit_event")).all()
    return "\n".join(repr(tuple(row)) for row in rows)


def assert_no_secret_anywhere(settings: Settings, runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    logged = caplog.text + "\n".join(str(record.args) for record in caplog.records)
    recorded = audit_text(runtime)
    for value in every_secret_value(settings):
        assert value not in logged
        assert value not in recorded


def rotate(name: str, *more: str) -> Result:
    result = invoke("secrets", "rotate", name, "--yes", *more)
    assert result.exit_code == 0, result.output
    return result


# -- the table and the command -------------------------------------------------------------------------------


def test_every_secret_has_its_rotation_and_the_help_names_them() -> None:
    assert set(ROTATIONS) == set(SECRET_NAMES)
    for rotation in ROTATIONS.values():
        assert rotation.protects
        assert rotation.consequences
    shown = invoke("secrets", "rotate", "--help").output
    for name in SECRET_NAMES:
        assert name in shown
    refused = invoke("secrets", "rotate", "no_such_secret", "--yes")
    assert refused.exit_code == 2
    assert "lookup_pepper" in refused.output


def test_the_consequences_are_printed_and_nothing_happens_without_confirmation(
    runtime: Runtime, settings: Settings, cli_env: None
) -> None:
    before = (settings.data_dir / "secrets" / "session_key.key").read_text()
    result = runner.invoke(app, ["secrets", "rotate", "session_key"], input="n\n")
    assert result.exit_code != 0
    assert "Sessions end" in result.output
    assert "Rotate RUECKHALT_SESSION_KEY now?" in result.output
    assert (settings.data_dir / "secrets" / "session_key.key").read_text() == before
    assert not (settings.data_dir / "secrets" / "session_key.previous").exists()


# -- lookup pepper -------------------------------------------------------------------------------------------


def test_receipts_open_under_both_peppers_until_rekeyed_then_only_the_new_one(
    runtime: Runtime,
    client: TestClient,
    settings: Settings,
    cli_env: None,
    restarted: list[Runtime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    signs_in, stays_away = file_report(client), file_report(client)
    old_pepper = runtime.secrets.lookup_pepper
    rotated = rotate("lookup_pepper")
    assert "Receipts keep working" in rotated.output
    assert "2 still under the previous value" in rotated.output

    service = restart(settings, restarted)
    assert service.secrets.lookup_pepper != old_pepper
    assert service.secrets.previous_of("lookup_pepper") == (old_pepper,)
    assert "2 cases still under the previous value" in invoke("secrets", "status").output
    with TestClient(create_app(runtime=service), base_url="http://127.0.0.1") as reporter:
        assert reporter.post("/api/v1/reports/lookup", json={"receipt": signs_in}).status_code == 200
        # A case filed during the rotation is under the new pepper from the start.
        filed_now = file_report(reporter)
    assert "1 cases still under the previous value" in invoke("secrets", "status").output

    refused = invoke("secrets", "rotate", "lookup_pepper", "--finish")
    assert refused.exit_code == 1
    assert "1 still under the previous value" in refused.output
    assert (settings.data_dir / "secrets" / "lookup_pepper.previous").exists()
    rotate("lookup_pepper", "--finish", "--force")
    assert not (settings.data_dir / "secrets" / "lookup_pepper.previous").exists()

    after = restart(settings, restarted)
    assert after.secrets.previous_of("lookup_pepper") == ()
    with after.sessions() as db:
        assert after.intake.open_case(db, signs_in).case is not None
        assert after.intake.open_case(db, filed_now).case is not None
        # Dropped with --force while still under the old pepper: that receipt finds nothing any more.
        with pytest.raises(NotFound):
            after.intake.open_case(db, stays_away)
    assert_no_secret_anywhere(settings, after, caplog)


def test_finishing_waits_for_every_case_and_then_drops_the_old_pepper(
    runtime: Runtime, client: TestClient, settings: Settings, cli_env: None, restarted: list[Runtime]
) -> None:
    receipt = file_report(client)
    nothing_under_way = invoke("secrets", "rotate", "lookup_pepper", "--finish")
    assert nothing_under_way.exit_code == 1
    assert "no rotation of lookup_pepper is under way" in nothing_under_way.output
    rotate("lookup_pepper")
    second = invoke("secrets", "rotate", "lookup_pepper", "--yes")
    assert second.exit_code == 1
    assert "under way" in second.output
    service = restart(settings, restarted)
    with service.sessions() as db:
        service.intake.open_case(db, receipt)
        # The transaction the sign-in would have committed: opening moved the case to the new pepper.
        db.commit()
    assert "0 cases still under the previous value" in invoke("secrets", "status").output
    finished = rotate("lookup_pepper", "--finish")
    assert "rotation finished" in finished.output
    after = restart(settings, restarted)
    with after.sessions() as db:
        assert after.intake.open_case(db, receipt).case is not None


# -- audit key -----------------------------------------------------------------------------------------------


def test_the_audit_chain_verifies_across_a_rotation_with_the_old_key_kept(
    runtime: Runtime,
    settings: Settings,
    cli_env: None,
    restarted: list[Runtime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    old_key = runtime.secrets.audit_key
    rotated = rotate("audit_key")
    assert "audit chain intact across the rotation" in rotated.output
    assert invoke("audit", "verify").exit_code == 0
    rotate("audit_key")  # twice: three segments, two previous keys
    service = restart(settings, restarted)
    assert len(service.secrets.previous_of("audit_key")) == 2
    with service.sessions() as db:
        segments = db.scalar(
            select(func.count())
            .select_from(text("audit_event"))
            .where(text("action = 'audit.segment_begun'"))
        )
        assert segments == 2
        result = verify(db, service.secrets.audit_key, previous=service.secrets.previous_of("audit_key"))
        assert result.ok, result
        # Without the earlier keys the old segments cannot be checked: verification says so, never passes.
        assert not verify(db, service.secrets.audit_key).ok
    checked = invoke("audit", "verify")
    assert checked.exit_code == 0
    assert "audit chain intact" in checked.output

    # A process still running with the first key (not restarted) must not continue the chain behind it.
    with service.sessions() as db, pytest.raises(AuditKeyMismatch):
        AuditLog(old_key).append(db, actor_kind="system", actor_id=None, action="test.stale_process")
    # A holder of the leaked old key cannot append a row the verifier accepts.
    with service.sessions() as db:
        AuditLog(old_key, [service.secrets.audit_key]).append(
            db, actor_kind="system", actor_id=None, action="test.forged"
        )
        db.commit()
    assert invoke("audit", "verify").exit_code == 1
    assert_no_secret_anywhere(settings, service, caplog)


# -- session key and rate-limit key --------------------------------------------------------------------------


def test_sessions_end_and_the_authenticator_keeps_working_after_the_session_key(
    runtime: Runtime,
    client: TestClient,
    make_staff: MakeStaff,
    clock: Clock,
    settings: Settings,
    cli_env: None,
    restarted: list[Runtime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    staff = make_staff()
    receipt = file_report(client)
    with runtime.sessions() as db:
        user = runtime.accounts.user_by_email(db, staff.email)
        runtime.accounts.second_factor.replace_recovery_codes(db, user)
        web_sessions.create(db, STAFF_SESSION, staff.user_id, b"k" * 32)
        opened = runtime.intake.open_case(db, receipt)
        web_sessions.create(db, REPORTER_SESSION, opened.case.id, opened.data_key)
        db.commit()
        assert db.scalar(select(func.count()).select_from(WebSession)) == 2

    rotated = rotate("session_key")
    assert "2 sessions ended" in rotated.output
    assert staff.email in rotated.output
    assert not (settings.data_dir / "secrets" / "session_key.previous").exists()

    service = restart(settings, restarted)
    assert service.secrets.session_key != runtime.secrets.session_key
    with service.sessions() as db:
        assert db.scalar(select(func.count()).select_from(WebSession)) == 0
        assert db.scalar(select(func.count()).select_from(RecoveryCode)) == 0
    accounts = weak_accounts(service, clock)
    clock.advance(60)
    with service.sessions() as db:
        logged_in = accounts.login(db, staff.email, staff.password, totp_code(staff.totp_secret, clock()))
        assert logged_in is not None, "the re-sealed authenticator secret opens under the new key"
        db.commit()
    assert_no_secret_anywhere(settings, service, caplog)


def test_rate_limit_windows_restart_after_the_ratelimit_key(
    runtime: Runtime, client: TestClient, settings: Settings, cli_env: None, restarted: list[Runtime]
) -> None:
    file_report(client)
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(RateLimitCounter))
    rotated = rotate("ratelimit_key")
    assert "windows restart" in rotated.output
    assert "Sessions are not affected" in rotated.output
    service = restart(settings, restarted)
    with service.sessions() as db:
        assert db.scalar(select(func.count()).select_from(RateLimitCounter)) == 0


# -- notification key ----------------------------------------------------------------------------------------


def test_addresses_are_resealed_and_webhook_organisations_listed_after_the_notification_key(
    runtime: Runtime,
    client: TestClient,
    settings: Settings,
    cli_env: None,
    restarted: list[Runtime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    file_report(client, notify_email="ich@example.org")
    with runtime.sessions() as db:
        organisation = db.scalars(select(Organisation).order_by(Organisation.slug)).first()
        assert organisation is not None
        organisation.webhook_url = "https://hooks.example.org/rueckhalt"
        slug = organisation.slug
        db.commit()
    rotated = rotate("notification_key")
    assert "1 reporters' notification addresses re-sealed" in rotated.output
    assert "Webhook signing secrets" in rotated.output
    assert f"    {slug}" in rotated.output

    service = restart(settings, restarted)
    assert service.secrets.previous_of("notification_key") == ()
    with service.sessions() as db:
        case_id, sealed = db.execute(select(Case.id, Case.notify_ciphertext)).one()
    # Deliverable under the new key alone: the worker's own directory finds the reporter's address.
    assert sealed is not None
    assert open_address(service.secrets.notification_key, case_id, sealed) == "ich@example.org"
    worker = context_for(service)
    with service.sessions() as db:
        found = worker.notifications.directory(db, "notifications.reporter_message", {"case_id": case_id})
    assert found.reporter_email == "ich@example.org"
    assert_no_secret_anywhere(settings, service, caplog)


def test_a_failed_reseal_changes_nothing(
    runtime: Runtime,
    client: TestClient,
    settings: Settings,
    cli_env: None,
    restarted: list[Runtime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file_report(client, notify_email="ich@example.org")
    file_report(client, notify_email="du@example.org")
    with runtime.sessions() as db:
        before = dict(db.execute(select(Case.id, Case.notify_ciphertext)).all())
    import service.secrets.rotation as rotation
    from service.cases.contact import seal_address as real

    calls = iter(range(100))

    def failing(key: bytes, case_id: str, address: str) -> bytes:
        if next(calls) == 1:
            raise OSError("disk gone")
        return real(key, case_id, address)

    monkeypatch.setattr(rotation, "seal_address", failing)
    result = invoke("secrets", "rotate", "notification_key", "--yes")
    assert result.exit_code == 1
    assert "the re-keying failed (OSError)" in result.output
    with runtime.sessions() as db:
        assert dict(db.execute(select(Case.id, Case.notify_ciphertext)).all()) == before
    # The previous key stays until the re-keying has run: --finish completes it.
    assert (settings.data_dir / "secrets" / "notification_key.previous").exists()
    monkeypatch.setattr(rotation, "seal_address", real)
    rotate("notification_key", "--finish")
    service = restart(settings, restarted)
    with service.sessions() as db:
        opened = {
            open_address(service.secrets.notification_key, case_id, sealed or b"")
            for case_id, sealed in db.execute(select(Case.id, Case.notify_ciphertext))
        }
    assert opened == {"ich@example.org", "du@example.org"}


# -- statistics key ------------------------------------------------------------------------------------------


def test_statistics_pseudonyms_move_to_the_new_key(
    runtime: Runtime, client: TestClient, settings: Settings, cli_env: None, restarted: list[Runtime]
) -> None:
    file_report(client)
    file_report(client)
    with runtime.sessions() as db:
        # A purged case's row: no case any more, its old pseudonym must not stay linkable by the old key.
        db.add(
            StatisticsExtract(
                **{
                    **{
                        c: getattr(db.scalars(select(StatisticsExtract)).first(), c)
                        for c in _extract_columns()
                    },
                    "id": "purged-extract",
                    "reporter_pseudonym": keyed_hash(
                        runtime.secrets.statistics_key, "reporter-pseudonym", b"purged-case"
                    ).hex(),
                }
            )
        )
        db.commit()
    rotated = rotate("statistics_key")
    assert "2 reporters' statistics pseudonyms moved" in rotated.output
    assert "1 of purged" in rotated.output
    service = restart(settings, restarted)
    with service.sessions() as db:
        case_ids = db.scalars(select(Case.id)).all()
        pseudonyms = set(db.scalars(select(StatisticsExtract.reporter_pseudonym)))
    expected = {
        keyed_hash(service.secrets.statistics_key, "reporter-pseudonym", c.encode()).hex() for c in case_ids
    }
    assert expected <= pseudonyms
    assert len(pseudonyms) == 3
    old = keyed_hash(runtime.secrets.statistics_key, "reporter-pseudonym", b"purged-case").hex()
    assert old not in pseudonyms


def _extract_columns() -> list[str]:
    return [column.key for column in StatisticsExtract.__table__.columns if column.key != "id"]


# -- key pepper ----------------------------------------------------------------------------------------------


def test_the_key_pepper_rotation_waits_for_every_sign_in(
    runtime: Runtime,
    make_staff: MakeStaff,
    clock: Clock,
    settings: Settings,
    cli_env: None,
    restarted: list[Runtime],
) -> None:
    staff = make_staff()
    rotate("key_pepper")
    assert "1 accounts still under the previous value" in invoke("secrets", "status").output
    assert invoke("secrets", "rotate", "key_pepper", "--finish").exit_code == 1
    service = restart(settings, restarted)
    accounts = weak_accounts(service, clock)
    with service.sessions() as db:
        assert (
            accounts.login(db, staff.email, staff.password, totp_code(staff.totp_secret, clock())) is not None
        )
        db.commit()
    assert "0 accounts still under the previous value" in invoke("secrets", "status").output
    rotate("key_pepper", "--finish")
    after = restart(settings, restarted)
    accounts = weak_accounts(after, clock)
    clock.advance(60)
    with after.sessions() as db:
        assert (
            accounts.login(db, staff.email, staff.password, totp_code(staff.totp_secret, clock())) is not None
        )


# -- production ----------------------------------------------------------------------------------------------


def test_production_prints_the_new_value_once_and_the_changes_to_deploy(
    runtime: Runtime,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    restarted: list[Runtime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The operator deploys the printed value with the old one as _PREVIOUS, then finishes."""
    current = {name: getattr(runtime.secrets, name).hex() for name in SECRET_NAMES}
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(settings.data_dir))
    for name, value in current.items():
        monkeypatch.setenv(f"RUECKHALT_{name.upper()}", value)
    get_settings.cache_clear()
    # The command's own view of production (check_production also wants PostgreSQL, Redis, TLS: not here).
    monkeypatch.setattr("service.secrets.cli._settings", lambda: Settings(mode=Mode.production))

    started = invoke("secrets", "rotate", "notification_key", "--yes")
    assert started.exit_code == 0, started.output
    printed = [
        line.split("=", 1)[1] for line in started.output.splitlines() if "RUECKHALT_NOTIFICATION_KEY=" in line
    ]
    assert len(printed) == 1
    assert len(bytes.fromhex(printed[0])) == 32
    assert "RUECKHALT_NOTIFICATION_KEY_PREVIOUS" in started.output
    assert "--finish" in started.output
    for value in current.values():
        assert value not in started.output, "the command prints no value but the new one"

    monkeypatch.setenv("RUECKHALT_NOTIFICATION_KEY", printed[0])
    monkeypatch.setenv("RUECKHALT_NOTIFICATION_KEY_PREVIOUS", current["notification_key"])
    finished = invoke("secrets", "rotate", "notification_key", "--finish")
    assert finished.exit_code == 0, finished.output
    assert "remove RUECKHALT_NOTIFICATION_KEY_PREVIOUS" in finished.output
    for value in [*current.values(), printed[0]]:
        assert value not in caplog.text
        assert value not in audit_text(runtime)
    secrets = load_secrets(Settings(mode=Mode.production))
    assert secrets.notification_key.hex() == printed[0]


def test_between_deploying_and_finishing_the_previous_values_are_still_read(
    runtime: Runtime, client: TestClient, make_staff: MakeStaff, clock: Clock
) -> None:
    """Production's window: the processes run with the new value and the old one as _PREVIOUS, and the data
    is still under the old one until --finish: addresses, authenticators and recovery codes still work."""
    from service.auth.service import AccountService

    staff = make_staff()
    file_report(client, notify_email="ich@example.org")
    with runtime.sessions() as db:
        user = runtime.accounts.user_by_email(db, staff.email)
        codes = runtime.accounts.second_factor.replace_recovery_codes(db, user)
        db.commit()
        case_id, sealed = db.execute(select(Case.id, Case.notify_ciphertext)).one()
    new_key = bytes(range(100, 132))
    assert sealed is not None
    assert open_address(new_key, case_id, sealed, (runtime.secrets.notification_key,)) == "ich@example.org"
    deployed = AccountService(
        bytes(range(40, 72)),
        key_peppers=runtime.secrets.key_peppers,
        params=WEAK,
        clock=clock,
        previous_session_keys=(runtime.secrets.session_key,),
    )
    with runtime.sessions() as db:
        user = deployed.user_by_email(db, staff.email)
        assert deployed.totp_secret(user) == staff.totp_secret
        assert deployed.reauthenticate(db, user, staff.password, codes[0])


def test_embedded_mode_refuses_while_the_service_runs(
    runtime: Runtime, settings: Settings, cli_env: None
) -> None:
    """The processes read the secret files at start: rotating under a running service would leave it on the
    old values (sessions not ended for it, a stale pepper). A fresh worker heartbeat means it runs."""
    from service.db import utcnow
    from service.outbox.models import WorkerHeartbeat

    with runtime.sessions() as db:
        db.add(WorkerHeartbeat(name="worker", beat_at=utcnow()))
        db.commit()
    before = (settings.data_dir / "secrets" / "ratelimit_key.key").read_text()
    refused = invoke("secrets", "rotate", "ratelimit_key", "--yes")
    assert refused.exit_code == 1
    assert "the service is running" in refused.output
    assert (settings.data_dir / "secrets" / "ratelimit_key.key").read_text() == before
    assert invoke("secrets", "rotate", "ratelimit_key", "--yes", "--force").exit_code == 0
    assert (settings.data_dir / "secrets" / "ratelimit_key.key").read_text() != before


def test_a_rotation_stopped_between_its_two_file_writes_loses_nothing(tmp_path: Path) -> None:
    """The previous file is written first: stopped before the key file, both hold the old value, which reads
    as no rotation at all; the audit key keeps its older values."""
    settings = Settings(data_dir=tmp_path)
    before = load_secrets(settings)
    folder = tmp_path / "secrets"
    (folder / "lookup_pepper.previous").write_text(before.lookup_pepper.hex() + "\n")
    assert load_secrets(settings).previous_of("lookup_pepper") == ()
    older = bytes(range(7, 39))
    (folder / "audit_key.previous").write_text(f"{before.audit_key.hex()}\n{older.hex()}\n")
    assert load_secrets(settings).previous_of("audit_key") == (older,)


def test_a_previous_value_is_one_value_except_the_audit_keys(tmp_path: Path) -> None:
    from service.config import ConfigurationError

    two = f"{bytes(range(1, 33)).hex()},{bytes(range(2, 34)).hex()}"
    with pytest.raises(ConfigurationError, match="holds one value"):
        load_secrets(Settings(data_dir=tmp_path, lookup_pepper_previous=two))
    loaded = load_secrets(Settings(data_dir=tmp_path, audit_key_previous=two))
    assert loaded.previous_of("audit_key") == (bytes(range(1, 33)), bytes(range(2, 34)))
