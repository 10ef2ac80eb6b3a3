"""The routing engine: every demo rule, the fallback, organisations without keys, and the police rule that
no policy can override (a police liaison is never a recipient of routing, only of a counsellor's handover)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from service.routing import (
    ReasonKind,
    ReportFacts,
    RoutingDecision,
    RoutingPolicy,
    evaluate,
    evaluate_conditions,
)
from service.routing.models import Conditions

MakeFacts = Callable[..., ReportFacts]  # the make_facts fixture (tests/routing/conftest.py)

ORGS: list[dict[str, Any]] = [
    {"slug": "beratung-by", "display_name": "Beratung Bayern (Test)", "kind": "counselling", "lands": ["09"]},
    {"slug": "online", "display_name": "Online (Test)", "kind": "online_hate"},
    {"slug": "recht", "display_name": "Recht (Test)", "kind": "legal_aid"},
    {"slug": "polizei", "display_name": "Polizei (Test)", "kind": "police_liaison"},
    {"slug": "rota", "display_name": "Rota (Test)", "kind": "fallback_rota"},
]
EVERYONE = frozenset(org["slug"] for org in ORGS)


def small_policy(rules: list[dict[str, Any]], fallback: str = "rota") -> RoutingPolicy:
    return RoutingPolicy.model_validate(
        {"organisations": ORGS, "rules": rules, "fallback": {"org": fallback, "ack_deadline_minutes": 240}}
    )


# -- the demo policy, rule by rule -----------------------------------------------------------------------
def test_acute_danger_adds_legal_aid_with_one_hour(
    policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    decision = evaluate(
        policy, make_facts(land="14", type_codes=["A3b"], urgency="acute", channel="in_person.home"), all_orgs
    )
    assert decision.targets == ("rechtshilfe", "beratung-sn")
    assert decision.escalation == (("rufbereitschaft", 60),)
    assert decision.ack_deadline_minutes == 60
    assert not decision.fallback_used
    matched = [reason.rule_id for reason in decision.reasons if reason.kind is ReasonKind.matched]
    assert matched == ["akut", "land-sn"]


def test_physical_attacks_are_routed_like_acute_danger(
    policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    decision = evaluate(
        policy, make_facts(land="05", type_codes=["D4"], channel="in_person.public_space"), all_orgs
    )
    assert decision.targets == ("rechtshilfe", "beratung-nw")
    assert decision.ack_deadline_minutes == 60
    detail = next(r.detail for r in decision.reasons if r.rule_id == "schwere-gewalt")
    assert detail == "severity=2 <= 2"


def test_online_hostility_adds_the_online_specialists(
    policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    decision = evaluate(
        policy, make_facts(land="08", type_codes=["A1"], channel="social_media.public_post"), all_orgs
    )
    assert decision.targets == ("online-hass", "beratung-bw")
    assert decision.escalation == (("rufbereitschaft", 1440),)
    assert decision.ack_deadline_minutes == 1440
    offline = evaluate(policy, make_facts(land="08", type_codes=["A1"], channel="letter"), all_orgs)
    assert offline.targets == ("beratung-bw",)
    technical = evaluate(policy, make_facts(land="08", type_codes=["B1"], channel="email"), all_orgs)
    assert technical.targets == ("beratung-bw",)


def test_the_police_liaison_gets_no_key_at_intake_even_with_consent(
    policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    """The consent in the report allows a counsellor's handover later; intake grants the police nothing."""
    threat = make_facts(land="12", type_codes=["A3b", "D5"], channel="phone", consent_police=True)
    decision = evaluate(policy, threat, all_orgs)
    assert "polizei-kontakt" not in decision.targets
    assert "polizei-kontakt" not in [slug for slug, _ in decision.escalation]
    assert decision.targets == ("rechtshilfe", "beratung-bb")


def test_no_police_without_consent(
    policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    decision = evaluate(policy, make_facts(land="12", type_codes=["A3b", "D5"], channel="phone"), all_orgs)
    assert "polizei-kontakt" not in decision.targets
    assert "polizei-kontakt" not in [slug for slug, _ in decision.escalation]


@pytest.mark.parametrize("land", [f"{n:02d}" for n in range(1, 17)])
def test_every_land_reaches_its_counselling(
    land: str, policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    decision = evaluate(policy, make_facts(land=land, type_codes=["A2"], channel="letter"), all_orgs)
    (target,) = decision.targets
    org = policy.organisation(target)
    assert org is not None
    assert org.lands == (land,)
    assert decision.escalation == (("rufbereitschaft", 1440),)
    assert decision.ack_deadline_minutes == 1440
    assert (decision.reasons[0].rule_id, decision.reasons[0].detail) == (
        f"land-{org.slug[-2:]}",
        f"land={land} in [{land}]",
    )


def test_land_counselling_without_key_falls_back(
    policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    decision = evaluate(policy, make_facts(land="10", type_codes=["A12"]), all_orgs - {"beratung-sl"})
    assert decision.targets == ("rufbereitschaft",)
    assert decision.fallback_used
    assert decision.escalation == ()  # the rota is a target now, not a later step
    assert decision.ack_deadline_minutes == 240
    kinds = [(reason.rule_id, reason.kind) for reason in decision.reasons]
    assert ("land-sl", ReasonKind.skipped_unreachable) in kinds
    assert (None, ReasonKind.fallback) in kinds
    skipped = next(r for r in decision.reasons if r.kind is ReasonKind.skipped_unreachable)
    assert skipped.detail == "target beratung-sl has no key"


def test_a_severe_case_keeps_its_short_deadline_on_the_fallback(
    policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    facts = make_facts(land="11", type_codes=["A3a"], urgency="acute", channel="phone")
    decision = evaluate(policy, facts, all_orgs - {"beratung-be", "rechtshilfe"})
    assert decision.targets == ("rufbereitschaft",)
    assert decision.ack_deadline_minutes == 60


def test_without_the_lands_counselling_the_fallback_joins_not_the_police(
    policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    facts = make_facts(land="10", type_codes=["A4"], consent_police=True)
    decision = evaluate(policy, facts, all_orgs - {"beratung-sl"})
    assert decision.targets == ("rufbereitschaft",)
    assert decision.fallback_used


def test_nothing_reachable_means_no_targets_and_no_keys(
    policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    facts = make_facts(land="09", type_codes=["D4"], consent_police=True)
    decision = evaluate(policy, facts, frozenset())
    assert decision.targets == ()
    assert decision.escalation == ()
    assert not decision.routed
    assert decision.reasons[-1].kind is ReasonKind.fallback_unreachable
    # Only the police could receive: still nothing, a police liaison alone is no support.
    only_police = evaluate(policy, facts, frozenset({"polizei-kontakt"}))
    assert only_police.targets == ()
    assert only_police.escalation == ()


# -- engine semantics on small policies ---------------------------------------------------------------------
def test_no_matching_rule_goes_to_the_fallback(make_facts: MakeFacts) -> None:
    policy = small_policy(
        [{"id": "nur-bayern", "when": {"land": ["09"]}, "then": {"targets": ["beratung-by"]}}]
    )
    decision = evaluate(policy, make_facts(land="05"), EVERYONE)
    assert decision.targets == ("rota",)
    assert decision.fallback_used
    assert [reason.kind for reason in decision.reasons] == [ReasonKind.no_match, ReasonKind.fallback]
    assert decision.reasons[1].detail == "no rule matched: fallback rota"


def test_first_stop_rule_wins_and_add_on_rules_accumulate(make_facts: MakeFacts) -> None:
    policy = small_policy(
        [
            {
                "id": "add",
                "when": {"types_any": ["A"]},
                "then": {"targets": ["online"], "stop": False, "ack_deadline_minutes": 30},
            },
            {"id": "first", "when": {"land": ["09"]}, "then": {"targets": ["beratung-by", "online"]}},
            {"id": "never", "then": {"targets": ["recht"]}},
        ]
    )
    decision = evaluate(policy, make_facts(land="09", type_codes=["A1"]), EVERYONE)
    assert decision.targets == ("online", "beratung-by")  # no duplicates, rule order
    assert decision.ack_deadline_minutes == 30  # smallest of the matched rules
    assert "never" not in [reason.rule_id for reason in decision.reasons]


def test_escalation_steps_are_key_grants_and_filtered_too(make_facts: MakeFacts) -> None:
    policy = small_policy(
        [
            {
                "id": "a",
                "then": {
                    "targets": ["beratung-by"],
                    "stop": False,
                    "escalation": [
                        {"org": "rota", "after_minutes": 120},
                        {"org": "recht", "after_minutes": 90},
                    ],
                },
            },
            {
                "id": "b",
                "then": {
                    "targets": ["online"],
                    "escalation": [
                        {"org": "rota", "after_minutes": 60},
                        {"org": "polizei", "after_minutes": 10},
                    ],
                },
            },
        ]
    )
    decision = evaluate(policy, make_facts(), EVERYONE - {"recht"})
    # recht has no key; rota keeps the earlier time; a police step is never taken.
    assert decision.escalation == (("rota", 60),)
    kinds = {(reason.rule_id, reason.kind) for reason in decision.reasons}
    assert ("a", ReasonKind.skipped_unreachable) in kinds
    assert ("b", ReasonKind.handover_only) in kinds
    with_consent = evaluate(policy, make_facts(consent_police=True), EVERYONE)
    assert with_consent.escalation == (("rota", 60), ("recht", 90))


@pytest.mark.parametrize("consent_police", [False, True])
def test_the_engine_drops_police_that_a_rule_names_with_or_without_consent(
    make_facts: MakeFacts, consent_police: bool
) -> None:
    policy = small_policy(
        [
            {
                "id": "immer-polizei",
                "when": {"consent": {"police_contact": True}} if consent_police else {},
                "then": {"targets": ["polizei", "beratung-by"]},
            }
        ]
    )
    decision = evaluate(policy, make_facts(consent_police=consent_police), EVERYONE)
    assert decision.targets == ("beratung-by",)
    refusal = next(reason for reason in decision.reasons if reason.kind is ReasonKind.handover_only)
    assert refusal.rule_id == "immer-polizei"
    assert "only when a counsellor hands it on" in refusal.detail


@pytest.mark.parametrize("consent_police", [False, True])
def test_a_police_fallback_is_never_used(make_facts: MakeFacts, consent_police: bool) -> None:
    policy = small_policy([], fallback="polizei")
    decision = evaluate(policy, make_facts(consent_police=consent_police), EVERYONE)
    assert decision.targets == ()
    assert decision.reasons[-1].kind is ReasonKind.fallback_unreachable


def test_the_deadline_without_any_rule_deadline_is_the_fallbacks(make_facts: MakeFacts) -> None:
    policy = small_policy([{"id": "x", "then": {"targets": ["beratung-by"]}}])
    assert evaluate(policy, make_facts(), EVERYONE).ack_deadline_minutes == 240


# -- conditions --------------------------------------------------------------------------------------------
def conditions(**values: Any) -> Conditions:
    return Conditions.model_validate(values)


@pytest.mark.parametrize(
    ("when", "facts", "ok", "detail"),
    [
        ({"land": ["09", "14"]}, {"land": "14"}, True, "land=14 in [09, 14]"),
        ({"district_prefix": ["091"]}, {"district_ags": "09162"}, True, "district=09162 starts with 091"),
        ({"district_prefix": ["091"]}, {}, False, "district=unknown starts with none of [091]"),
        ({"types_any": ["A3"]}, {"type_codes": ["A3c"]}, True, "types [A3c] match [A3]"),
        ({"types_any": ["A1"]}, {"type_codes": ["A10"]}, False, "types [A10] match none of [A1]"),
        ({"types_any": ["D"]}, {"type_codes": ["A1", "D2"]}, True, "types [A1, D2] match [D]"),
        ({"types_all": ["A", "C"]}, {"type_codes": ["A1", "C5"]}, True, "types [A1, C5] match all of [A, C]"),
        ({"types_all": ["A", "C"]}, {"type_codes": ["A1"]}, False, "types [A1] miss [C]"),
        ({"severity_at_most": 3}, {"type_codes": ["C1"]}, True, "severity=3 <= 3"),
        ({"severity_at_most": 3}, {"type_codes": ["A3"]}, False, "severity=4 > 3"),
        ({"urgency": ["acute", "high"]}, {"urgency": "normal"}, False, "urgency=normal not in [acute, high]"),
        ({"channel_online": True}, {"channel": "web"}, True, "channel_online=true"),
        ({"channel_online": True}, {"channel": "phone"}, False, "channel_online=false, wanted true"),
        (
            {"channel": ["in_person"]},
            {"channel": "in_person.home"},
            True,
            "channel=in_person.home within [in_person]",
        ),
        (
            {"channel": ["in_person.home"]},
            {"channel": "in_person"},
            False,
            "channel=in_person not within [in_person.home]",
        ),
        ({"office": ["candidate"]}, {}, False, "office=none not in [candidate]"),
        ({"office": ["candidate"]}, {"office": "candidate"}, True, "office=candidate in [candidate]"),
        (
            {"targets_any": ["children"]},
            {"targets": ["self", "children"]},
            True,
            "targets [self, children] include [children]",
        ),
        (
            {"reported_by": ["administration"]},
            {"reported_by": "administration"},
            True,
            "reported_by=administration in [administration]",
        ),
        ({"reported_by": ["administration"]}, {}, False, "reported_by=self not in [administration]"),
        ({"consent": {"counselling": False}}, {}, False, "consent counselling=true, wanted false"),
        (
            {"consent": {"police_contact": True}},
            {"consent_police": True},
            True,
            "consent police_contact=true",
        ),
    ],
)
def test_conditions(
    when: dict[str, Any], facts: dict[str, Any], ok: bool, detail: str, make_facts: MakeFacts
) -> None:
    (result,) = evaluate_conditions(conditions(**when), make_facts(**facts))
    assert (result.ok, result.detail) == (ok, detail)


def test_no_conditions_match_every_report(make_facts: MakeFacts) -> None:
    assert evaluate_conditions(Conditions(), make_facts()) == ()
    policy = small_policy([{"id": "alle", "then": {"targets": ["beratung-by"]}}])
    reason = evaluate(policy, make_facts(land="01"), EVERYONE).reasons[0]
    assert reason.detail == "no conditions (matches every report)"


# -- the stored decision ----------------------------------------------------------------------------------
def test_decision_json_is_stable_and_round_trips(
    policy: RoutingPolicy, make_facts: MakeFacts, all_orgs: frozenset[str]
) -> None:
    facts = make_facts(land="09", type_codes=["A3a"], urgency="acute", channel="email", consent_police=True)
    decision = evaluate(policy, facts, all_orgs - {"rechtshilfe"})
    text = decision.to_json()
    assert text == evaluate(policy, facts, all_orgs - {"rechtshilfe"}).to_json()
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["format"] == 1
    assert data["policy_version"] == policy.policy_version
    assert RoutingDecision.from_json(text) == decision
    with pytest.raises(ValueError, match="format"):
        RoutingDecision.from_dict({**decision.to_dict(), "format": 99})


def test_policy_version_is_a_hash_of_the_content_only(policy: RoutingPolicy) -> None:
    assert len(policy.policy_version) == 64
    same = RoutingPolicy.model_validate(json.loads(json.dumps(policy.model_dump(mode="json"))))
    assert same.policy_version == policy.policy_version
    changed = policy.model_dump(mode="json")
    changed["fallback"]["ack_deadline_minutes"] = 241
    assert RoutingPolicy.model_validate(changed).policy_version != policy.policy_version
