"""Setting up an organisation's webhook (CLI, audited) and the verification example of docs/webhooks.md."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from service.audit.models import AuditEvent
from service.cli import app
from service.config import PROJECT_ROOT, Settings, get_settings
from service.crypto import sign_webhook, webhook_secret
from service.identity.models import Organisation
from service.runtime import Runtime

runner = CliRunner()


@pytest.fixture
def cli_env(runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("RUECKHALT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RUECKHALT_DATABASE_URL", settings.resolved_database_url)
    get_settings.cache_clear()
    yield runtime
    get_settings.cache_clear()


def test_the_operator_sets_and_removes_a_webhook(cli_env: Runtime) -> None:
    runtime = cli_env
    result = runner.invoke(app, ["org", "webhook", "beratung-by", "https://oncall.example/hook"])
    assert result.exit_code == 0, result.output
    with runtime.sessions() as db:
        org = db.scalars(select(Organisation).where(Organisation.slug == "beratung-by")).one()
        assert org.webhook_url == "https://oncall.example/hook"
        expected = webhook_secret(runtime.secrets.notification_key, org.id).hex()
    assert f"signing secret (hex; give it to the receiver, see docs/webhooks.md): {expected}" in result.output
    again = runner.invoke(app, ["org", "webhook", "beratung-by", "https://oncall.example/hook"])
    assert expected in again.output, "the secret is derived: the same every time"

    assert runner.invoke(app, ["org", "webhook", "beratung-by", "--off"]).exit_code == 0
    with runtime.sessions() as db:
        assert (
            db.scalars(select(Organisation.webhook_url).where(Organisation.slug == "beratung-by")).one()
            is None
        )
        events = db.scalars(select(AuditEvent).where(AuditEvent.action == "organisation.webhook")).all()
    assert [event.details["enabled"] for event in events] == [True, True, False]

    assert runner.invoke(app, ["org", "webhook", "beratung-by"]).exit_code == 2
    assert runner.invoke(app, ["org", "webhook", "beratung-by", "ftp://x"]).exit_code == 2
    assert runner.invoke(app, ["org", "webhook", "gibt-es-nicht", "https://x.example"]).exit_code == 1


def test_the_documented_verification_accepts_our_signature_and_nothing_else() -> None:
    """The Python example in docs/webhooks.md, run as written (with a real secret), against sign_webhook."""
    doc = (PROJECT_ROOT / "docs" / "webhooks.md").read_text()
    section = doc.split("## Verifying the signature", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code
    secret = bytes(range(32))
    namespace: dict[str, object] = {}
    exec(code.group(1).replace('bytes.fromhex("3f1c…")', f'bytes.fromhex("{secret.hex()}")'), namespace)
    verify = namespace["verify"]
    body = b'{"event":"new_case"}'
    now = int(time.time())
    headers = {"rueckhalt-timestamp": str(now), "rueckhalt-signature": sign_webhook(secret, now, body)}
    assert verify(headers, body) is True  # type: ignore[operator]
    assert verify(headers, body + b" ") is False  # type: ignore[operator]
    old = {
        "rueckhalt-timestamp": str(now - 600),
        "rueckhalt-signature": sign_webhook(secret, now - 600, body),
    }
    assert verify(old, body) is False  # type: ignore[operator]
