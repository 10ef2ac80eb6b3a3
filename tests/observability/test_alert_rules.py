"""The alert rules and the dashboard (ops/): valid for Prometheus, complete, and about metrics that exist.

A rule over a metric that the code does not write never fires, and nobody notices until the day it should
have: every ``rueckhalt_*`` name in a rule or a dashboard panel is checked against what the code exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import service.observability.metrics  # noqa: F401 - registers the metrics with the default registry
from service.config import PROJECT_ROOT
from service.observability.collectors import FAMILIES

RULES = PROJECT_ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = PROJECT_ROOT / "ops" / "grafana" / "rueckhalt.json"
RUNBOOK = PROJECT_ROOT / "docs" / "metrics.md"
# The rules the operators were promised (issue 20), by what they watch.
REQUIRED = {
    "rueckhalt_outbox_oldest_pending_age_seconds",
    "rueckhalt_outbox_dead_letters_total",
    "rueckhalt_worker_heartbeat_age_seconds",
    "rueckhalt_reports_total",
}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported_names() -> set[str]:
    """Every series name the code can write, whether or not anything was counted yet."""
    names = set(FAMILIES)
    for family in REGISTRY.collect():
        if family.name.startswith("rueckhalt_"):
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def anchors(markdown: str) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", heading.lower()).strip().replace(" ", "-") for heading in headings}


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `make apt-test-deps` installs Debian's prometheus package")
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_rule_is_complete_and_has_its_runbook_section() -> None:
    sections = anchors(RUNBOOK.read_text(encoding="utf-8"))
    for rule in rules():
        assert {"alert", "expr", "for", "labels", "annotations"} <= rule.keys(), rule.get("alert")
        assert rule["labels"].get("severity"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations.get("summary"), rule["alert"]
        assert annotations.get("description"), rule["alert"]
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "docs/metrics.md", rule["alert"]
        assert anchor in sections, rule["alert"]


def test_rules_and_panels_name_only_metrics_the_code_writes() -> None:
    exported = exported_names()
    expressions = [rule["expr"] for rule in rules()]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"\brueckhalt_[a-z_]+\b", expr)}
    assert used - exported == set()
    ruled = {name for rule in rules() for name in re.findall(r"\brueckhalt_[a-z_]+\b", rule["expr"])}
    assert ruled >= REQUIRED


def test_the_scrape_config_matches_the_listeners_and_compose_publishes_none(tmp_path: Path) -> None:
    scrape = yaml.safe_load((PROJECT_ROOT / "ops" / "prometheus" / "scrape.yml").read_text(encoding="utf-8"))
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in scrape["scrape_configs"]}
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    base = int(compose["x-app"]["environment"]["RUECKHALT_METRICS_PORT"])
    for offset, role in enumerate(("api", "worker", "beat")):
        assert targets[f"rueckhalt-{role}"] == [f"{role}:{base + offset}"]
        service = compose["services"][role]
        assert str(base + offset) in [str(port) for port in service.get("expose", [])]
        # Published ports are the api's application port on loopback only, never a metrics port.
        for published in service.get("ports", []):
            assert str(base + offset) not in str(published)
