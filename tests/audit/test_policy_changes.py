"""Policy files are governance: every start with a changed set leaves an entry in the audit chain."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.audit.models import AuditEvent
from service.audit.policies import ACTION, policy_digests
from service.config import PROJECT_ROOT, Settings


def policy_events(settings: Settings) -> list[AuditEvent]:
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        with app.state.runtime.sessions() as db:
            events = list(db.scalars(select(AuditEvent).where(AuditEvent.action == ACTION)))
    return events


def test_a_start_records_the_policy_files_once_and_each_change(settings: Settings, tmp_path: Path) -> None:
    """Given a copy of the shipped policies, when the service starts twice, one event records their digests;
    when routing.yaml is edited and the service starts again, a second event names that file."""
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies)
    settings = settings.model_copy(update={"policies_dir": policies})

    first = policy_events(settings)
    assert len(first) == 1
    assert first[0].actor_kind == "system"
    assert first[0].details["routing.yaml"] == policy_digests(policies)["routing.yaml"]
    assert set(str(first[0].details["changed"]).split(",")) == set(policy_digests(policies))
    assert len(policy_events(settings)) == 1, "an unchanged start adds nothing"

    routing = policies / "routing.yaml"
    routing.write_text(routing.read_text(encoding="utf-8") + "\n# Rufbereitschaft ab Januar neu\n", "utf-8")
    after = policy_events(settings)
    assert len(after) == 2
    assert after[-1].details["changed"] == "routing.yaml"
    assert after[-1].details["routing.yaml"] != first[0].details["routing.yaml"]
    assert after[-1].details["taxonomy.yaml"] == first[0].details["taxonomy.yaml"]
