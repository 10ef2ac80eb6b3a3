"""The example reports in policies/tests/*.yaml: each passes, and together they exercise every demo rule,
the fallback, an organisation without key, and reports with and without police consent (the police never
receive a case by routing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.routing import ReasonKind, RoutingDecision, RoutingPolicy, evaluate
from service.routing.cases import PolicyCase, load_cases, run_case
from service.taxonomy import PolicyFileError, Taxonomy

CASES_DIR = Path(__file__).resolve().parents[2] / "policies" / "tests"
LOADED = load_cases(CASES_DIR)
CASES = [(file, case) for file, case in LOADED if isinstance(case, PolicyCase)]


def test_every_case_file_loads() -> None:
    broken = [(file, str(case)) for file, case in LOADED if isinstance(case, PolicyFileError)]
    assert broken == []
    assert len(CASES) >= 30


@pytest.mark.parametrize(("file", "case"), CASES, ids=[f"{file}:{case.name}" for file, case in CASES])
def test_case(file: str, case: PolicyCase, policy: RoutingPolicy, taxonomy: Taxonomy) -> None:
    result = run_case(policy, taxonomy, case, file)
    assert result.error is None
    assert result.ok, f"expected {result.expected}, got {result.got}"


def decisions(policy: RoutingPolicy, taxonomy: Taxonomy) -> list[tuple[PolicyCase, RoutingDecision]]:
    slugs = frozenset(policy.organisation_map)
    return [
        (case, evaluate(policy, case.report.to_facts(taxonomy), slugs - set(case.no_key)))
        for _, case in CASES
    ]


def test_the_cases_exercise_every_rule_and_the_fallback(policy: RoutingPolicy, taxonomy: Taxonomy) -> None:
    matched = {
        reason.rule_id
        for _, decision in decisions(policy, taxonomy)
        for reason in decision.reasons
        if reason.kind is ReasonKind.matched
    }
    assert matched == {rule.id for rule in policy.rules}
    results = decisions(policy, taxonomy)
    assert any(decision.fallback_used and case.no_key for case, decision in results)
    # No rule names the police liaison, and no example routes to it, with or without the reporter's consent:
    # it receives a case only on a counsellor's handover.
    with_consent = [decision for case, decision in results if case.report.consent_police]
    assert with_consent
    for decision in [decision for _, decision in results]:
        assert "polizei-kontakt" not in decision.targets
        assert "polizei-kontakt" not in [slug for slug, _ in decision.escalation]
