"""``policy check`` and the loader: broken policies are reported with the rule they concern."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from service.routing import (
    Conditions,
    Finding,
    FindingLevel,
    RoutingPolicy,
    check_policies_dir,
    check_policy,
    implies,
    load_policy,
)
from service.taxonomy import Districts, PolicyFileError, Taxonomy

ORGS: list[dict[str, Any]] = [
    {"slug": "beratung-by", "display_name": "Beratung Bayern (Test)", "kind": "counselling", "lands": ["09"]},
    {"slug": "online", "display_name": "Online (Test)", "kind": "online_hate"},
    {"slug": "polizei", "display_name": "Polizei (Test)", "kind": "police_liaison"},
    {"slug": "rota", "display_name": "Rota (Test)", "kind": "fallback_rota"},
]
ALL_KEYS = {org["slug"]: True for org in ORGS}


def build(rules: list[dict[str, Any]], orgs: list[dict[str, Any]] | None = None) -> RoutingPolicy:
    return RoutingPolicy.model_validate(
        {
            "organisations": orgs or ORGS,
            "rules": rules,
            "fallback": {"org": "rota", "ack_deadline_minutes": 240},
        }
    )


def errors(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings if f.level is FindingLevel.error]


def warnings(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings if f.level is FindingLevel.warning]


def test_the_demo_policy_is_clean(policy: RoutingPolicy, taxonomy: Taxonomy, districts: Districts) -> None:
    known = {org.slug: True for org in policy.organisations}
    assert check_policy(policy, taxonomy, districts, known) == []


def test_a_broken_policy_reports_every_problem(taxonomy: Taxonomy, districts: Districts) -> None:
    policy = build(
        [
            {"id": "bayern", "when": {"land": ["09"]}, "then": {"targets": ["beratung-by"]}},
            # Unknown code: no such type.
            {"id": "tippfehler", "when": {"types_any": ["A3f"]}, "then": {"targets": ["online"]}},
            # Unknown organisation.
            {"id": "unbekannt", "when": {"land": ["05"]}, "then": {"targets": ["beratung-nw"]}},
            # Shadowed: "bayern" (stop) takes every Bavarian report first.
            {
                "id": "bayern-online",
                "when": {"land": ["09"], "channel_online": True},
                "then": {"targets": ["online"]},
            },
            # Police without a consent condition.
            {
                "id": "polizei-immer",
                "when": {"types_any": ["D"]},
                "then": {"targets": ["polizei"], "stop": False},
            },
            # Police with the consent condition: still an error (the police get a case only by handover).
            {
                "id": "polizei-mit-einwilligung",
                "when": {"consent": {"police_contact": True}},
                "then": {
                    "targets": ["online"],
                    "escalation": [{"org": "polizei", "after_minutes": 60}],
                    "stop": False,
                },
            },
        ]
    )
    findings = check_policy(policy, taxonomy, districts, {**ALL_KEYS, "beratung-nw": True})
    found = errors(findings)
    assert any("tippfehler" in m and "unknown incident type code 'A3f'" in m for m in found)
    assert any("unbekannt" in m and "unknown organisation 'beratung-nw'" in m for m in found)
    assert any(m.startswith("rule bayern-online can never match") and "rule bayern" in m for m in found)
    assert any(m.startswith("rule polizei-immer sends to the police liaison polizei") for m in found)
    by_rule = {f.rule_id for f in findings if f.level is FindingLevel.error}
    with_consent = "rule polizei-mit-einwilligung sends to the police liaison polizei"
    assert any(m.startswith(with_consent) for m in found)
    assert any("only when a counsellor hands it on" in m for m in found)
    expected = {"tippfehler", "unbekannt", "bayern-online", "polizei-immer", "polizei-mit-einwilligung"}
    assert expected <= by_rule
    # The police liaison that no rule names is not reported as unused: referrals reach it.
    assert not any("organisation polizei is defined but no rule uses it" in m for m in warnings(findings))
    # Only Bavaria has a catch-all rule; the other 15 Länder are gaps.
    gaps = [m for m in warnings(findings) if m.startswith("Land ")]
    assert len(gaps) == 15
    assert any(m.startswith("Land 05 (Nordrhein-Westfalen) has no rule") for m in gaps)


def test_organisations_must_exist_in_the_service_and_have_keys(
    taxonomy: Taxonomy, districts: Districts
) -> None:
    policy = build([{"id": "alle", "then": {"targets": ["beratung-by"]}}])
    findings = check_policy(
        policy, taxonomy, districts, {"beratung-by": False, "rota": False, "polizei": True}
    )
    assert "organisation online is not set up in the service (no such organisation)" in errors(findings)
    assert any(m.startswith("organisation rota has no key") for m in errors(findings))  # the fallback
    assert any(m.startswith("organisation beratung-by has no key") for m in warnings(findings))
    assert "organisation online is defined but no rule uses it" in warnings(findings)
    # A police liaison is reached by a counsellor's referral only, so an unused one is no finding.
    assert "organisation polizei is defined but no rule uses it" not in warnings(findings)


def test_escalations_and_deadlines(taxonomy: Taxonomy, districts: Districts) -> None:
    policy = build(
        [
            {
                "id": "ohne-frist",
                "when": {"land": ["09"]},
                "then": {
                    "targets": ["beratung-by"],
                    "stop": False,
                    "escalation": [{"org": "rota", "after_minutes": 60}],
                },
            },
            {
                "id": "zu-frueh",
                "then": {
                    "targets": ["online"],
                    "ack_deadline_minutes": 120,
                    "escalation": [{"org": "rota", "after_minutes": 30}],
                },
            },
        ]
    )
    found = warnings(check_policy(policy, taxonomy, districts, ALL_KEYS))
    assert any(m.startswith("rule ohne-frist escalates but sets no ack_deadline_minutes") for m in found)
    assert any(m.startswith("rule zu-frueh escalates to rota after 30 min, before its own") for m in found)


def test_land_bound_organisations_and_district_prefixes(taxonomy: Taxonomy, districts: Districts) -> None:
    policy = build(
        [
            {"id": "muenchen", "when": {"district_prefix": ["09162"]}, "then": {"targets": ["beratung-by"]}},
            {"id": "falsch", "when": {"land": ["05"]}, "then": {"targets": ["beratung-by"]}},
            {"id": "gibtsnicht", "when": {"district_prefix": ["0999"]}, "then": {"targets": ["online"]}},
            {
                "id": "widerspruch",
                "when": {"land": ["05"], "district_prefix": ["091"]},
                "then": {"targets": ["online"]},
            },
        ]
    )
    findings = check_policy(policy, taxonomy, districts, ALL_KEYS)
    assert "rule falsch can send beratung-by (serving 09) reports from 05" in warnings(findings)
    assert not any("rule muenchen can send" in m for m in warnings(findings))
    assert any("gibtsnicht" in m and "no district key starts with '0999'" in m for m in errors(findings))
    assert "rule widerspruch can never match: district_prefix lies outside its land" in errors(findings)


def test_a_police_fallback_is_an_error(taxonomy: Taxonomy, districts: Districts) -> None:
    policy = RoutingPolicy.model_validate(
        {"organisations": ORGS, "rules": [], "fallback": {"org": "polizei", "ack_deadline_minutes": 60}}
    )
    findings = check_policy(policy, taxonomy, districts, ALL_KEYS)
    assert (
        "the fallback polizei is a police liaison; the police receive a case only on a counsellor's handover"
        in errors(findings)
    )
    assert "the policy has no rules: every report goes to the fallback" in warnings(findings)


@pytest.mark.parametrize(
    ("inner", "outer", "expected"),
    [
        ({"land": ["09"]}, {}, True),
        ({"land": ["09"], "urgency": ["acute"]}, {"land": ["09", "14"]}, True),
        ({"urgency": ["acute"]}, {"land": ["09"]}, False),
        ({"district_prefix": ["09162"]}, {"land": ["09"]}, True),
        ({"district_prefix": ["09162"]}, {"district_prefix": ["091"]}, True),
        ({"types_any": ["A3a", "A3b"]}, {"types_any": ["A3"]}, True),
        ({"types_any": ["A3a", "D1"]}, {"types_any": ["A3", "D"]}, True),
        ({"types_any": ["A3a", "D1"]}, {"types_any": ["A3"]}, False),
        ({"types_all": ["A3a", "D1"]}, {"types_any": ["D"]}, True),
        ({"types_any": ["A1"]}, {"types_any": ["A10"]}, False),
        ({"types_all": ["A1", "C"]}, {"types_all": ["A", "C"]}, True),
        ({"severity_at_most": 2}, {"severity_at_most": 3}, True),
        ({"severity_at_most": 4}, {"severity_at_most": 3}, False),
        ({"channel": ["social_media.group"]}, {"channel": ["social_media"]}, True),
        ({"channel": ["social_media"]}, {"channel_online": True}, True),
        ({"channel": ["social_media", "phone"]}, {"channel_online": True}, False),
        ({"consent": {"police_contact": True}}, {"consent": {"police_contact": True}}, True),
        ({}, {"consent": {"police_contact": True}}, False),
        ({"targets_any": ["children"]}, {"targets_any": ["children", "partner"]}, True),
        ({"reported_by": ["administration"]}, {"reported_by": ["administration", "someone_else"]}, True),
        ({"reported_by": ["administration", "self"]}, {"reported_by": ["administration"]}, False),
        ({}, {"reported_by": ["self"]}, False),
    ],
)
def test_implication_between_conditions(
    inner: dict[str, Any], outer: dict[str, Any], expected: bool, taxonomy: Taxonomy
) -> None:
    result = implies(
        Conditions.model_validate(inner), Conditions.model_validate(outer), taxonomy.channel_is_online
    )
    assert result is expected


# -- the loader -------------------------------------------------------------------------------------------
ROUTING = (Path(__file__).resolve().parents[2] / "policies" / "routing.yaml").read_text(encoding="utf-8")


def test_the_loader_names_file_path_and_rule(policies_copy: Path) -> None:
    # YAML reads an unquoted 10 as a number: strict mode refuses it instead of guessing.
    (policies_copy / "routing.yaml").write_text(ROUTING.replace('when: {land: ["10"]}', "when: {land: [10]}"))
    with pytest.raises(PolicyFileError) as caught:
        load_policy(policies_copy)
    message = str(caught.value)
    assert "routing.yaml" in message
    assert "rules[13] (id=land-sl).when.land[0]: Input should be a valid string" in message


def test_the_loader_refuses_unknown_codes_and_organisations(policies_copy: Path) -> None:
    text = ROUTING.replace("types_any: [A]", "types_any: [A, Q7]").replace(
        "targets: [beratung-by]", "targets: [beratung-bayern]"
    )
    (policies_copy / "routing.yaml").write_text(text)
    with pytest.raises(PolicyFileError) as caught:
        load_policy(policies_copy)
    problems = [str(problem) for problem in caught.value.problems]
    assert "rules[2] (id=online-hass).when.types_any: unknown incident type code 'Q7'" in problems
    assert "rules[12] (id=land-by).then.targets: unknown organisation 'beratung-bayern'" in problems


def test_the_loader_refuses_an_unknown_reporter_code(policies_copy: Path) -> None:
    (policies_copy / "routing.yaml").write_text(
        ROUTING.replace("reported_by: [administration]", "reported_by: [mayor]")
    )
    with pytest.raises(PolicyFileError) as caught:
        load_policy(policies_copy)
    problems = [str(problem) for problem in caught.value.problems]
    assert "rules[3] (id=verwaltung).when.reported_by: unknown reported_by code 'mayor'" in problems


def test_the_loader_refuses_unknown_keys(policies_copy: Path) -> None:
    (policies_copy / "routing.yaml").write_text(
        ROUTING.replace("      urgency: [acute]", "      urgent: [acute]")
    )
    with pytest.raises(PolicyFileError, match=r"rules\[0\] \(id=akut\)\.when\.urgent: Extra inputs"):
        load_policy(policies_copy)


def test_check_of_a_folder_turns_load_errors_into_findings(policies_copy: Path) -> None:
    (policies_copy / "routing.yaml").write_text(ROUTING.replace("fallback:\n", "fallback:\n  extra: 1\n"))
    findings = check_policies_dir(policies_copy, lambda policy: {})
    assert [f.level for f in findings] == [FindingLevel.error]
    assert "fallback.extra: Extra inputs are not permitted" in findings[0].message


def test_the_demo_routing_file_is_loaded_unchanged_by_a_round_trip(policy: RoutingPolicy) -> None:
    dumped = policy.model_dump(mode="json")
    assert RoutingPolicy.model_validate(copy.deepcopy(dumped)) == policy
