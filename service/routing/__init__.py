"""Routing: loads ``policies/routing.yaml`` and decides, as a pure function, which organisations receive a
report (and so get its key), with the reasons. See ``engine.evaluate``."""

from service.routing.cases import CaseResult, PolicyCase, ReportInput, load_cases, run_case, run_cases
from service.routing.check import Finding, FindingLevel, check_policies_dir, check_policy, implies
from service.routing.engine import (
    ConditionResult,
    Reason,
    ReasonKind,
    ReportFacts,
    RoutingDecision,
    StoredDecision,
    StoredEscalationStep,
    StoredReason,
    evaluate,
    evaluate_conditions,
)
from service.routing.explain import explain
from service.routing.loader import load_policy, parse_policy, read_policy, reference_problems
from service.routing.models import (
    Action,
    Conditions,
    ConsentCondition,
    EscalationStep,
    Fallback,
    Organisation,
    OrganisationKind,
    RoutingPolicy,
    Rule,
)

__all__ = [
    "Action",
    "CaseResult",
    "ConditionResult",
    "Conditions",
    "ConsentCondition",
    "EscalationStep",
    "Fallback",
    "Finding",
    "FindingLevel",
    "Organisation",
    "OrganisationKind",
    "PolicyCase",
    "Reason",
    "ReasonKind",
    "ReportFacts",
    "ReportInput",
    "RoutingDecision",
    "RoutingPolicy",
    "Rule",
    "StoredDecision",
    "StoredEscalationStep",
    "StoredReason",
    "check_policies_dir",
    "check_policy",
    "evaluate",
    "evaluate_conditions",
    "explain",
    "implies",
    "load_cases",
    "load_policy",
    "parse_policy",
    "read_policy",
    "reference_problems",
    "run_case",
    "run_cases",
]
