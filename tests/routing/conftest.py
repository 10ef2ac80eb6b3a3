"""Fixtures for the routing tests: the shipped demo policy and a way to write report facts briefly."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.routing import ReportFacts, RoutingPolicy, load_policy
from service.routing import cli as routing_cli
from service.routing.cli import set_org_source
from service.taxonomy import Districts, Taxonomy, load_districts, load_taxonomy

POLICIES = Path(__file__).resolve().parents[2] / "policies"

MakeFacts = Callable[..., ReportFacts]


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy(POLICIES)


@pytest.fixture(scope="session")
def districts() -> Districts:
    return load_districts(POLICIES)


@pytest.fixture(scope="session")
def policy(taxonomy: Taxonomy, districts: Districts) -> RoutingPolicy:
    return load_policy(POLICIES, taxonomy, districts)


@pytest.fixture(scope="session")
def all_orgs(policy: RoutingPolicy) -> frozenset[str]:
    return frozenset(org.slug for org in policy.organisations)


@pytest.fixture(scope="session")
def make_facts(taxonomy: Taxonomy) -> MakeFacts:
    """Facts as the intake derives them: severity and online-ness come from the taxonomy."""

    def make(**overrides: Any) -> ReportFacts:
        values: dict[str, Any] = {
            "land": "09",
            "district_ags": None,
            "type_codes": ("A1",),
            "urgency": "normal",
            "channel": "letter",
            "office": None,
            "targets": ("self",),
            "consent_counselling": True,
            "consent_police": False,
        }
        values.update(overrides)
        values["type_codes"] = tuple(values["type_codes"])
        values["targets"] = tuple(values["targets"])
        values.setdefault("severity", taxonomy.severity_of(values["type_codes"]))
        values.setdefault("channel_online", taxonomy.channel_is_online(values["channel"]))
        return ReportFacts(**values)

    return make


@pytest.fixture
def policies_copy(tmp_path: Path) -> Path:
    """A writable copy of policies/ for tests that edit files."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


@pytest.fixture(autouse=True)
def _no_org_source() -> Iterator[None]:
    """The CLI's organisation hook is module state: no test may leak it into the next, and the one the main
    command line installed (it reads the database) is back afterwards for the tests that use it."""
    installed = routing_cli._org_source
    set_org_source(None)
    yield
    set_org_source(installed)
