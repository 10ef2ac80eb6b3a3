"""``rueckhalt policy check``: what is wrong or risky in a routing policy before it goes live.

Errors are things that make the policy do something other than it says (a rule that can never match, a
police liaison named as a recipient, an organisation that does not exist); warnings are gaps an
operator should look at (a Land that only the fallback covers, an organisation without a key yet).

The dead-rule check is conservative: it reports a rule only when an earlier ``stop`` rule provably matches
every report the later rule matches. It may miss some dead rules, but what it reports is always dead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from service.routing.loader import read_policy, reference_problems
from service.routing.models import Conditions, OrganisationKind, RoutingPolicy, Rule
from service.taxonomy import (
    LANDS,
    Districts,
    PolicyFileError,
    Taxonomy,
    channel_matches,
    load_districts,
    load_taxonomy,
    type_code_matches,
)


class FindingLevel(StrEnum):
    error = "error"
    warning = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    level: FindingLevel
    message: str
    rule_id: str | None = None

    def __str__(self) -> str:
        return f"{self.level.value.upper()}: {self.message}"


def _error(message: str, rule_id: str | None = None) -> Finding:
    return Finding(FindingLevel.error, message, rule_id)


def _warning(message: str, rule_id: str | None = None) -> Finding:
    return Finding(FindingLevel.warning, message, rule_id)


# -- implication between conditions ---------------------------------------------------------------------
def _lands_of(when: Conditions) -> set[str] | None:
    """The Länder a rule can match at most, or None if it is not limited."""
    lands: set[str] | None = set(when.land) if when.land is not None else None
    if when.district_prefix is not None:
        from_prefix = {prefix[:2] for prefix in when.district_prefix}
        lands = from_prefix if lands is None else lands & from_prefix
    return lands


def _types_implied(inner: Conditions, selector: str) -> bool:
    """Does every report matching ``inner`` carry a type within ``selector``?"""
    if inner.types_all is not None and any(type_code_matches(s, selector) for s in inner.types_all):
        return True
    return inner.types_any is not None and all(type_code_matches(s, selector) for s in inner.types_any)


def _all_within(
    inner: tuple[str, ...] | None, outer: tuple[str, ...], within: Callable[[str, str], bool]
) -> bool:
    return inner is not None and all(any(within(i, o) for o in outer) for i in inner)


def _prefix_within(inner: str, outer: str) -> bool:
    return inner.startswith(outer)


def _same(inner: str, outer: str) -> bool:
    return inner == outer


def implies(
    inner: Conditions, outer: Conditions, channel_online: Callable[[str], bool] | None = None
) -> bool:
    """True if every report matching ``inner`` also matches ``outer`` (conservative: False when unsure)."""
    checks: list[bool] = []
    if outer.land is not None:
        lands = _lands_of(inner)
        checks.append(lands is not None and lands <= set(outer.land))
    if outer.district_prefix is not None:
        checks.append(_all_within(inner.district_prefix, outer.district_prefix, _prefix_within))
    if outer.types_any is not None:
        # Either one outer selector is implied by itself, or each of inner's any-of selectors lies within
        # some (possibly different) outer selector.
        checks.append(
            any(_types_implied(inner, s) for s in outer.types_any)
            or _all_within(inner.types_any, outer.types_any, type_code_matches)
        )
    if outer.types_all is not None:
        checks.append(all(_types_implied(inner, s) for s in outer.types_all))
    if outer.severity_at_most is not None:
        checks.append(inner.severity_at_most is not None and inner.severity_at_most <= outer.severity_at_most)
    for outer_values, inner_values in (
        (outer.urgency, inner.urgency),
        (outer.office, inner.office),
        (outer.targets_any, inner.targets_any),
        (outer.reported_by, inner.reported_by),
    ):
        if outer_values is not None:
            checks.append(_all_within(inner_values, outer_values, _same))
    if outer.channel is not None:
        checks.append(_all_within(inner.channel, outer.channel, channel_matches))
    if outer.channel_online is not None:
        derived = (
            inner.channel is not None
            and channel_online is not None
            and all(channel_online(c) == outer.channel_online for c in inner.channel)
        )
        checks.append(inner.channel_online == outer.channel_online or derived)
    if outer.consent is not None:
        for wanted, have in (
            (outer.consent.counselling, inner.consent.counselling if inner.consent else None),
            (outer.consent.police_contact, inner.consent.police_contact if inner.consent else None),
        ):
            if wanted is not None:
                checks.append(have == wanted)
    return all(checks)


# -- the checks -------------------------------------------------------------------------------------------
def _police_findings(policy: RoutingPolicy) -> list[Finding]:
    """A police liaison is never a recipient of routing: it receives a case only when a counsellor hands the
    case on (a referral with the reporter's consent). Routing grants the key at intake, before anybody has
    spoken with the reporter, and the police must investigate an offence prosecuted ex officio once they
    know of it (§§ 152 Abs. 2, 163 StPO). The engine drops such a recipient; a rule that names one does not
    do what it says, whatever its consent condition."""
    findings: list[Finding] = []
    police = {org.slug for org in policy.organisations if org.kind is OrganisationKind.police_liaison}
    for rule in policy.rules:
        named = [slug for slug in rule.then.targets if slug in police]
        named += [step.org for step in rule.then.escalation if step.org in police]
        if named:
            findings.append(
                _error(
                    f"rule {rule.id} sends to the police liaison {', '.join(sorted(set(named)))}; a police "
                    "liaison receives a case only when a counsellor hands it on with the reporter's "
                    "consent (referral), never by routing, so the engine drops it",
                    rule.id,
                )
            )
    if policy.fallback.org in police:
        findings.append(
            _error(
                f"the fallback {policy.fallback.org} is a police liaison; the police receive a case only "
                "on a counsellor's handover"
            )
        )
    return findings


def _organisation_findings(policy: RoutingPolicy, known_orgs: Mapping[str, bool]) -> list[Finding]:
    findings: list[Finding] = []
    used = {slug for rule in policy.rules for slug in rule.then.targets}
    used |= {step.org for rule in policy.rules for step in rule.then.escalation}
    used.add(policy.fallback.org)
    for org in policy.organisations:
        if org.slug not in known_orgs:
            findings.append(
                _error(f"organisation {org.slug} is not set up in the service (no such organisation)")
            )
        elif not known_orgs[org.slug]:
            level = _error if org.slug == policy.fallback.org else _warning
            consequence = (
                "reports that nothing else can receive would be refused"
                if org.slug == policy.fallback.org
                else "routing skips it until it has one"
            )
            findings.append(level(f"organisation {org.slug} has no key: {consequence}"))
        # A police liaison is reached by referral only, so no rule names it.
        if org.slug not in used and org.kind is not OrganisationKind.police_liaison:
            findings.append(_warning(f"organisation {org.slug} is defined but no rule uses it"))
    fallback = policy.organisation(policy.fallback.org)
    if fallback is not None and fallback.kind is not OrganisationKind.fallback_rota:
        findings.append(_warning(f"the fallback {fallback.slug} is not of kind fallback_rota"))
    return findings


def _rule_findings(policy: RoutingPolicy, taxonomy: Taxonomy) -> list[Finding]:
    findings: list[Finding] = []
    online = taxonomy.channel_is_online
    earlier_stops: list[Rule] = []
    for rule in policy.rules:
        shadow = next((r for r in earlier_stops if implies(rule.when, r.when, online)), None)
        if shadow is not None:
            findings.append(
                _error(
                    f"rule {rule.id} can never match: every report it matches is taken first by rule "
                    f"{shadow.id} (stop: true)",
                    rule.id,
                )
            )
        if rule.then.stop:
            earlier_stops.append(rule)
        then = rule.then
        if not then.targets and not then.escalation:
            findings.append(_warning(f"rule {rule.id} has neither targets nor escalation", rule.id))
        if then.escalation and then.ack_deadline_minutes is None:
            findings.append(
                _warning(
                    f"rule {rule.id} escalates but sets no ack_deadline_minutes; the deadline then comes "
                    "from other rules or the fallback",
                    rule.id,
                )
            )
        for step in then.escalation:
            if then.ack_deadline_minutes is not None and step.after_minutes < then.ack_deadline_minutes:
                findings.append(
                    _warning(
                        f"rule {rule.id} escalates to {step.org} after {step.after_minutes} min, before its "
                        f"own acknowledgement deadline of {then.ack_deadline_minutes} min",
                        rule.id,
                    )
                )
            if step.org in then.targets:
                findings.append(
                    _warning(f"rule {rule.id} escalates to {step.org}, already a target", rule.id)
                )
        if rule.when.land is not None and rule.when.district_prefix is not None:
            lands = _lands_of(rule.when)
            if not lands:
                findings.append(
                    _error(f"rule {rule.id} can never match: district_prefix lies outside its land", rule.id)
                )
        findings += _land_scope_findings(policy, rule)
    return findings


def _land_scope_findings(policy: RoutingPolicy, rule: Rule) -> list[Finding]:
    """A Land-bound organisation should only get reports from its Länder."""
    findings: list[Finding] = []
    lands = _lands_of(rule.when)
    for slug in (*rule.then.targets, *(step.org for step in rule.then.escalation)):
        org = policy.organisation(slug)
        if org is None or org.lands is None:
            continue
        if lands is None or not lands <= set(org.lands):
            outside = "any Land" if lands is None else ", ".join(sorted(lands - set(org.lands)))
            findings.append(
                _warning(
                    f"rule {rule.id} can send {slug} (serving {', '.join(org.lands)}) reports from {outside}",
                    rule.id,
                )
            )
    return findings


def _coverage_findings(policy: RoutingPolicy) -> list[Finding]:
    """A Land is covered if some rule takes every report from it (no condition but its Land) to an
    organisation that is not a police liaison. Otherwise some of its reports reach only the fallback."""
    findings: list[Finding] = []
    for land in LANDS:
        covered = False
        for rule in policy.rules:
            present = set(rule.when.present())
            if not present <= {"land"}:
                continue
            if rule.when.land is not None and land.code not in rule.when.land:
                continue
            orgs = [policy.organisation(slug) for slug in rule.then.targets]
            if any(org is not None and org.kind is not OrganisationKind.police_liaison for org in orgs):
                covered = True
                break
        if not covered:
            findings.append(
                _warning(
                    f"Land {land.code} ({land.name.de}) has no rule that takes all its reports: "
                    "reports that match no other rule go only to the fallback"
                )
            )
    return findings


_RULE_PATH = re.compile(r"^rules\[(\d+)\]")


def _rule_id_of(path: str, policy: RoutingPolicy) -> str | None:
    match = _RULE_PATH.match(path)
    return policy.rules[int(match[1])].id if match is not None else None


def check_policy(
    policy: RoutingPolicy, taxonomy: Taxonomy, districts: Districts, known_orgs: Mapping[str, bool]
) -> list[Finding]:
    """All findings for a schema-valid policy. ``known_orgs`` maps the slugs set up in the service to
    whether each has a key (can receive)."""
    findings = [
        _error(str(problem), _rule_id_of(problem.path, policy))
        for problem in reference_problems(policy, taxonomy, districts)
    ]
    findings += _police_findings(policy)
    findings += _organisation_findings(policy, known_orgs)
    findings += _rule_findings(policy, taxonomy)
    findings += _coverage_findings(policy)
    if not policy.rules:
        findings.append(_warning("the policy has no rules: every report goes to the fallback"))
    return findings


def check_policies_dir(
    policies_dir: Path, known_orgs: Callable[[RoutingPolicy], Mapping[str, bool]]
) -> list[Finding]:
    """Load the files in ``policies_dir`` and check them; load failures become error findings.

    ``known_orgs`` is called with the loaded policy, so a caller without a database can answer from it.
    """
    try:
        taxonomy = load_taxonomy(policies_dir)
        districts = load_districts(policies_dir)
        policy = read_policy(policies_dir)
    except PolicyFileError as exc:
        return [_error(f"{exc.file}: {problem}") for problem in exc.problems]
    return check_policy(policy, taxonomy, districts, known_orgs(policy))
