"""Backup tests: cases made the way users make them, a backup key pair, and an empty place to restore into.

The commands run through typer's CliRunner on the main command line, configured from the environment
(``RUECKHALT_*``) as an operator's shell would be: first the service's data folder and database, then a new
empty database and data folder that hold nothing but the server secrets.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.config import Settings, get_settings
from service.crypto import encode_public_key
from service.db import utcnow
from service.identity.models import MembershipRole
from service.runtime import Runtime
from service.statistics.dashboard.service import make_snapshot
from service.statistics.domains import domains_from
from service.statistics.policy import load_statistics_policy
from tests.support.backup import (
    EVIDENCE,
    LARGE_TEXT,
    BackupKey,
    Filed,
    Target,
    file_with_files,
    point_cli_at,
    reporter_answers,
    write_key,
)
from tests.support.retention import PDF
from tests.support.staff import MakeStaff, Staff


@pytest.fixture
def backup_key(tmp_path: Path) -> BackupKey:
    return write_key(tmp_path, "backup.key")


@pytest.fixture
def cli_env(settings: Settings, backup_key: BackupKey, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    point_cli_at(monkeypatch, settings.data_dir, settings.resolved_database_url)
    monkeypatch.setenv("RUECKHALT_BACKUP_PUBLIC_KEY", encode_public_key(backup_key.public))
    yield
    get_settings.cache_clear()


@pytest.fixture
def restore_target(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[Target]:
    data_dir = tmp_path / "restored"
    data_dir.mkdir()
    # The operator keeps the secrets apart from the backups; here, they are simply copied over.
    shutil.copytree(settings.data_dir / "secrets", data_dir / "secrets")
    if settings.is_sqlite:
        yield Target(data_dir, f"sqlite:///{data_dir / 'rueckhalt.db'}")
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = f"r_{uuid.uuid4().hex[:16]}"
    with cluster.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield Target(data_dir, cluster.url(name))
    with cluster.admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def counsellor_staff(make_staff: MakeStaff) -> Staff:
    # beratung-by receives the Bavarian reports of REPORT (policies/routing.yaml).
    return make_staff(memberships=[("beratung-by", MembershipRole.counsellor)])


@pytest.fixture
def filed(
    runtime: Runtime,
    client: TestClient,
    counsellor_staff: Staff,
    login: Callable[[Staff], TestClient],
) -> Filed:
    """Three reports with files; the first worked: a counsellor's message and the reporter's answer with a
    PDF; then the coordinators' statistics snapshot of this month."""
    cases = [
        file_with_files(
            client,
            "Todesdrohung im Briefkasten, handschriftlich.",
            {"Notiz.txt": EVIDENCE, "Chat.txt": LARGE_TEXT},
        ),
        file_with_files(client, "Anruf im Rathaus, Drohung gegen die Familie.", {"Anruf.txt": EVIDENCE * 3}),
        file_with_files(client, "Beleidigungen in der Ratssitzung.", {}),
    ]
    counsellor = login(counsellor_staff)
    case_ids = [item["id"] for item in counsellor.get("/api/v1/cases").json()]
    assert len(case_ids) == 3
    worked = next(
        case_id
        for case_id in case_ids
        if counsellor.get(f"/api/v1/cases/{case_id}").json()["incidents"][0]["description"]
        == cases[0].description
    )
    posted = counsellor.post(f"/api/v1/cases/{worked}/messages", json={"body": "Wir sind für Sie da."})
    assert posted.status_code == 201, posted.text
    reporter_answers(client, cases[0], "Danke, anbei das Foto als PDF.", PDF)
    month = utcnow().strftime("%Y-%m")
    with runtime.sessions() as db:
        make_snapshot(
            db,
            as_of=month,
            domains=domains_from(runtime.taxonomy),
            rules=load_statistics_policy(runtime.settings.policies_dir).coordinator,
            audit=runtime.audit,
        )
        db.commit()
    return Filed(cases, month)
