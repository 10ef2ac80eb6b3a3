"""The SMTP relay's certificate expiry: read from a real aiosmtpd relay with a self-signed certificate
(STARTTLS and implicit TLS), exposed by the worker's task as ``rueckhalt_smtp_certificate_expiry_seconds``,
and the alert rule fires under 14 days and not above (promtool's rule unit test)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from prometheus_client import REGISTRY

from service.config import PROJECT_ROOT, Settings
from service.notifications.certificate import smtp_certificate_not_after
from tests.support.notification import Inbox, self_signed_certificate
from tests.support.stack import free_port
from workers import context
from workers import tasks as worker_tasks
from workers.celery_app import celery_config

RULES = PROJECT_ROOT / "ops" / "prometheus" / "alerts.yml"
GAUGE = "rueckhalt_smtp_certificate_expiry_seconds"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, datetime]:
    """A self-signed certificate valid for ten days, as a relay nobody renewed would have."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("relay-tls"), days=10, name="relay.test")
    not_after = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    return cert, key, not_after


@pytest.fixture(params=["starttls", "tls"])
def relay(request: pytest.FixtureRequest, certificate: tuple[Path, Path, datetime]) -> Iterator[Settings]:
    cert, key, _ = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    options: dict[str, Any] = (
        {"tls_context": tls, "require_starttls": True}
        if request.param == "starttls"
        else {"ssl_context": tls}
    )
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    yield Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_security=request.param)
    controller.stop()
    assert inbox.messages == [], "the check sends nothing"


def test_the_relay_certificate_date_is_read_as_the_mailer_connects(
    relay: Settings, certificate: tuple[Path, Path, datetime]
) -> None:
    # Self-signed and so untrusted by the mailer: the date is read all the same (the point of the alert).
    assert smtp_certificate_not_after(relay) == certificate[2]


def test_the_worker_task_exposes_the_date_as_a_gauge(
    relay: Settings, certificate: tuple[Path, Path, datetime], tmp_path: Path
) -> None:
    ctx = context.WorkerContext(runtime=None, settings=relay, notifications=None, schedule=None)  # type: ignore[arg-type]
    context.use(ctx)
    try:
        assert worker_tasks.smtp_certificate.run() == certificate[2].timestamp()
    finally:
        context.use(None)
    assert REGISTRY.get_sample_value(GAUGE) == certificate[2].timestamp()
    days_left = (certificate[2] - datetime.now(UTC)).total_seconds() / 86400
    assert 9 < days_left <= 10


def test_no_relay_or_no_tls_reads_nothing_and_an_unreachable_one_is_logged_by_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert smtp_certificate_not_after(Settings()) is None
    assert smtp_certificate_not_after(Settings(smtp_host="127.0.0.1", smtp_security="none")) is None
    closed = Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_seconds=2)
    ctx = context.WorkerContext(runtime=None, settings=closed, notifications=None, schedule=None)  # type: ignore[arg-type]
    context.use(ctx)
    try:
        assert worker_tasks.smtp_certificate.run() is None
    finally:
        context.use(None)
    assert "the SMTP relay's certificate could not be read (ConnectionRefusedError)" in caplog.text


def test_the_beat_checks_hourly() -> None:
    schedule = celery_config(Settings())["beat_schedule"]
    entry = next(item for item in schedule.values() if item["task"] == "system.smtp_certificate")
    assert entry["schedule"] == 3600.0


def test_the_alert_fires_under_fourteen_days_and_not_above(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `make apt-test-deps` installs Debian's prometheus package")
    # promtool's clock starts at 0: a certificate expiring at 10 days fires, one at 30 days does not.
    tests = tmp_path / "smtp_certificate_test.yml"
    tests.write_text(
        textwrap.dedent(
            f"""\
            rule_files:
              - {RULES}
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
                  - series: '{GAUGE}{{job="rueckhalt-worker"}}'
                    values: '864000x120'
                alert_rule_test:
                  - eval_time: 30m
                    alertname: RueckhaltSmtpCertificateExpiring
                    exp_alerts:
                      - exp_labels:
                          severity: ticket
                        exp_annotations:
                          summary: The SMTP relay's certificate expires within 14 days
                          description: >-
                            The relay's certificate expires in 9d 23h 30m 0s. When it has expired the
                            worker cannot hand over any mail: counsellors are not told of new reports. Renew
                            it on the relay.
                          runbook: docs/metrics.md#smtp-certificate-expiring
              - interval: 1m
                input_series:
                  - series: '{GAUGE}{{job="rueckhalt-worker"}}'
                    values: '2592000x120'
                alert_rule_test:
                  - eval_time: 30m
                    alertname: RueckhaltSmtpCertificateExpiring
                    exp_alerts: []
            """
        ),
        encoding="utf-8",
    )
    checked = subprocess.run(
        [promtool, "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
