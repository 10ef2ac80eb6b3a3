"""``policies/retention.yaml``: the shipped file, and the mistakes an operator can make in it."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.audit.policies import policy_digests
from service.cases.service import OUTCOMES
from service.config import PROJECT_ROOT, Settings
from service.retention import load_retention
from service.retention.policy import RETENTION_FILE
from service.runtime import build_runtime
from service.taxonomy import PolicyFileError

VALID = """\
closed_cases:
  default_retention_days: 365
  retention_days_by_outcome:
    duplicate: 30
completed_outbox_messages:
  retention_days: 30
"""


def write(folder: Path, text: str) -> Path:
    (folder / RETENTION_FILE).write_text(text, encoding="utf-8")
    return folder


def test_the_shipped_policy_loads_with_its_documented_periods() -> None:
    policy = load_retention(PROJECT_ROOT / "policies")

    assert policy.default_days == 365
    assert dict(policy.days_by_outcome) == {"duplicate": 30, "withdrawn": 90}
    assert set(policy.days_by_outcome) <= set(OUTCOMES)
    assert policy.completed_outbox_days == 30
    # The digest is the one `policy.changed` audit events record for the file.
    assert policy.sha256 == policy_digests(PROJECT_ROOT / "policies")[RETENTION_FILE]


def test_periods_per_outcome_fall_back_to_the_default(tmp_path: Path) -> None:
    policy = load_retention(write(tmp_path, VALID))
    closed = datetime(2030, 3, 1, 12, tzinfo=UTC)

    assert policy.retention_days("duplicate") == 30
    assert policy.retention_days("withdrawn") == 365
    assert policy.retention_days(None) == 365
    assert policy.due_since("duplicate", closed) == closed + timedelta(days=30)
    assert policy.sha256 == hashlib.sha256(VALID.encode()).hexdigest()


def edit(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new)


OUTBOX = "completed_outbox_messages:\n  retention_days: 30\n"
BY_OUTCOME = "retention_days_by_outcome"


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        pytest.param(
            edit("duplicate:", "dublicate:"), f"{BY_OUTCOME}.dublicate", "unknown", id="unknown-outcome"
        ),
        pytest.param(edit("30\ncompleted", "0\ncompleted"), f"{BY_OUTCOME}.duplicate", "greater", id="zero"),
        pytest.param(edit("365", "-5"), "closed_cases.default_retention_days", "greater", id="negative"),
        pytest.param(edit("duplicate: 30", 'duplicate: "30"'), "duplicate", "valid integer", id="text"),
        pytest.param(edit("duplicate: 30", "duplicate: 30.5"), "duplicate", "valid integer", id="fraction"),
        pytest.param(edit("duplicate: 30", "duplicate: true"), "duplicate", "valid integer", id="boolean"),
        pytest.param(
            edit("duplicate: 30", "duplicate: 40000"), "duplicate", "less than", id="over-a-century"
        ),
        pytest.param(
            edit("default_retention_days", "default_days"), "default_days", "not permitted", id="key"
        ),
        pytest.param(VALID + "statistics_days: 10\n", "statistics_days", "not permitted", id="section"),
        pytest.param(edit(OUTBOX, ""), "completed_outbox_messages", "required", id="missing-section"),
        pytest.param(VALID + "closed_cases: {}\n", "line 7", "duplicate key", id="duplicate-key"),
        pytest.param("- 365\n", "", "valid dictionary", id="not-a-mapping"),
    ],
)
def test_a_mistake_is_refused_naming_the_file_and_the_place(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    """Given a retention file with one mistake, then loading it fails with the file's path, where in the
    file the mistake is, and what is wrong; nothing is guessed (a purge cannot be undone)."""
    with pytest.raises(PolicyFileError) as refused:
        load_retention(write(tmp_path, text))

    message = str(refused.value)
    assert str(tmp_path / RETENTION_FILE) in message
    assert where in message
    assert what in message


def test_an_unknown_outcome_is_refused_with_the_known_codes(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError) as refused:
        load_retention(write(tmp_path, VALID.replace("duplicate: 30", "doppelt: 30")))
    assert "unknown outcome code 'doppelt' (known: " + ", ".join(OUTCOMES) + ")" in str(refused.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="file not found"):
        load_retention(tmp_path)


def test_the_service_does_not_start_on_a_retention_file_it_refuses(tmp_path: Path) -> None:
    """Given the shipped policies with a broken retention.yaml, then building the runtime (every process:
    web, worker, command line) fails before it touches the database."""
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies)
    write(policies, VALID.replace("duplicate: 30", "duplicate: 0"))
    settings = Settings(data_dir=tmp_path / "data", policies_dir=policies)

    with pytest.raises(PolicyFileError, match=r"retention_days_by_outcome\.duplicate"):
        build_runtime(settings)
