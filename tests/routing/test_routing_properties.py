"""Properties of the engine over random reports, random key sets and random policies.

Given any report, any set of organisations with keys and any policy (including rules that name the police
with or without a consent condition), the engine never routes to the police (they receive a case only on a
counsellor's handover), never grants a key to
an organisation that cannot receive, and gives the same answer for the same input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.routing import (
    OrganisationKind,
    ReportFacts,
    RoutingDecision,
    RoutingPolicy,
    evaluate,
    load_policy,
)
from service.taxonomy import load_taxonomy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
# Module-level, not fixtures: hypothesis runs each example without re-entering function fixtures.
TAXONOMY = load_taxonomy(POLICIES)
DEMO = load_policy(POLICIES, TAXONOMY)

LANDS = [f"{n:02d}" for n in range(1, 17)]
TYPES = sorted(TAXONOMY.valid_codes("incident_types"))
SELECTORS = [*TYPES, *TAXONOMY.group_codes()]
CHANNELS = sorted(TAXONOMY.valid_codes("channels"))
OFFICES = sorted(TAXONOMY.valid_codes("offices"))
TARGETS = sorted(TAXONOMY.valid_codes("targets"))
URGENCY = sorted(TAXONOMY.valid_codes("urgency"))
REPORTED_BY = sorted(TAXONOMY.valid_codes("reported_by"))


@st.composite
def report_facts(draw: st.DrawFn) -> ReportFacts:
    land = draw(st.sampled_from(LANDS))
    types = tuple(draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=4, unique=True)))
    channel = draw(st.sampled_from(CHANNELS))
    district = draw(st.none() | st.from_regex(r"\A[0-9]{3}\Z").map(lambda tail: land + tail))
    return ReportFacts(
        land=land,
        district_ags=district,
        type_codes=types,
        severity=TAXONOMY.severity_of(types),
        urgency=draw(st.sampled_from(URGENCY)),
        channel=channel,
        channel_online=TAXONOMY.channel_is_online(channel),
        office=draw(st.none() | st.sampled_from(OFFICES)),
        targets=tuple(draw(st.lists(st.sampled_from(TARGETS), min_size=1, max_size=3, unique=True))),
        consent_counselling=draw(st.booleans()),
        consent_police=draw(st.booleans()),
        reported_by=draw(st.sampled_from(REPORTED_BY)),
    )


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def random_policies(draw: st.DrawFn) -> RoutingPolicy:
    """Small policies with arbitrary conditions and targets, police included, consent conditions or not."""
    orgs = [
        {"slug": "beratung", "display_name": "Beratung", "kind": "counselling"},
        {"slug": "online", "display_name": "Online", "kind": "online_hate"},
        {"slug": "recht", "display_name": "Recht", "kind": "legal_aid"},
        {"slug": "polizei", "display_name": "Polizei", "kind": "police_liaison"},
        {"slug": "polizei-zwei", "display_name": "Polizei 2", "kind": "police_liaison"},
        {"slug": "rota", "display_name": "Rota", "kind": "fallback_rota"},
    ]
    slugs = [org["slug"] for org in orgs]
    rules = []
    for index in range(draw(st.integers(min_value=0, max_value=5))):
        when: dict[str, Any] = {}
        for name, strategy in (
            ("land", st.lists(st.sampled_from(LANDS), min_size=1, max_size=3)),
            ("types_any", st.lists(st.sampled_from(SELECTORS), min_size=1, max_size=3)),
            ("severity_at_most", st.integers(min_value=1, max_value=6)),
            ("urgency", st.lists(st.sampled_from(URGENCY), min_size=1, max_size=2)),
            ("channel_online", st.booleans()),
            ("reported_by", st.lists(st.sampled_from(REPORTED_BY), min_size=1, max_size=2)),
            ("consent", st.fixed_dictionaries({"police_contact": st.booleans()})),
        ):
            value = draw(_optional(strategy))
            if value is not None:
                when[name] = value
        escalation = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"org": st.sampled_from(slugs), "after_minutes": st.integers(min_value=1, max_value=2000)}
                ),
                max_size=3,
            )
        )
        rules.append(
            {
                "id": f"r{index}",
                "when": when,
                "then": {
                    "targets": draw(st.lists(st.sampled_from(slugs), max_size=3)),
                    "escalation": escalation,
                    "ack_deadline_minutes": draw(_optional(st.integers(min_value=1, max_value=2000))),
                    "stop": draw(st.booleans()),
                },
            }
        )
    fallback = draw(st.sampled_from(slugs))
    return RoutingPolicy.model_validate(
        {"organisations": orgs, "rules": rules, "fallback": {"org": fallback, "ack_deadline_minutes": 240}}
    )


def check_invariants(policy: RoutingPolicy, facts: ReportFacts, reachable: frozenset[str]) -> RoutingDecision:
    decision = evaluate(policy, facts, reachable)
    granted = list(decision.targets) + [slug for slug, _ in decision.escalation]
    police = {org.slug for org in policy.organisations if org.kind is OrganisationKind.police_liaison}
    # Never the police, whatever the rules say and whatever the reporter consented to: handover only.
    assert not police & set(granted)
    assert set(granted) <= reachable
    assert len(decision.targets) == len(set(decision.targets))
    assert len(granted) == len(set(granted))  # an escalation step is never also a target
    if not decision.targets:
        assert decision.escalation == ()
    else:
        # Whoever receives, at least one of them can support the reporter (not only the police).
        assert set(decision.targets) - police
    minutes = [after for _, after in decision.escalation]
    assert minutes == sorted(minutes)
    assert decision.ack_deadline_minutes >= 1
    # Deterministic: same input, same decision, same bytes.
    again = evaluate(policy, facts, reachable)
    assert again == decision
    assert again.to_json() == decision.to_json()
    assert RoutingDecision.from_json(decision.to_json()) == decision
    return decision


@settings(max_examples=300, deadline=None)
@given(facts=report_facts(), reachable=st.sets(st.sampled_from(sorted(DEMO.organisation_map))).map(frozenset))
def test_demo_policy_invariants(facts: ReportFacts, reachable: frozenset[str]) -> None:
    decision = check_invariants(DEMO, facts, reachable)
    if "rufbereitschaft" in reachable:
        # The demo's fallback has a key: every report finds someone.
        assert decision.routed


@settings(max_examples=300, deadline=None)
@given(
    policy=random_policies(),
    facts=report_facts(),
    reachable=st.sets(
        st.sampled_from(["beratung", "online", "recht", "polizei", "polizei-zwei", "rota"])
    ).map(frozenset),
)
def test_random_policy_invariants(
    policy: RoutingPolicy, facts: ReportFacts, reachable: frozenset[str]
) -> None:
    check_invariants(policy, facts, reachable)


@settings(max_examples=200, deadline=None)
@given(facts=report_facts())
def test_with_every_key_the_demo_always_reaches_the_lands_counselling(facts: ReportFacts) -> None:
    decision = evaluate(DEMO, facts, frozenset(DEMO.organisation_map))
    counselling = [slug for slug in decision.targets if slug.startswith("beratung-")]
    assert len(counselling) == 1
    org = DEMO.organisation(counselling[0])
    assert org is not None
    assert org.lands == (facts.land,)
    assert not decision.fallback_used
