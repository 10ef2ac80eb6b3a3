"""Routing: who receives a report, and why. A pure function of the policy, the report's facts and the set of
organisations that can receive (have a key).

Routing is the key grant (docs/security.md): every target and every escalation step gets the case key
wrapped to it. So the engine, not the policy author, has the last word on two things:

- an organisation without a key is never chosen (it could not open the case, and the service never stores
  a report it cannot protect), and
- a police liaison is never chosen at all, whatever a rule says: it receives a case only when a counsellor
  hands the case on (a referral, with the reporter's consent and only if the report agreed to the police).
  Routing grants keys at intake, and the police, once they know of an offence prosecuted ex officio, must
  investigate (§§ 152 Abs. 2, 163 StPO): the reporter decides with a counsellor first, not by a tick.

The result carries its reasons (which rule matched on which facts, what was skipped and why), so a decision
stored with the case can be explained later (the pattern of zulip's notification_data: who, and why).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

from service.routing.models import Conditions, Organisation, OrganisationKind, RoutingPolicy
from service.taxonomy.codes import channel_matches, type_code_matches

DECISION_FORMAT = 1


class StoredReason(TypedDict):
    """One reason of a stored decision (``Reason.to_dict``)."""

    rule_id: str | None
    kind: str  # a ReasonKind value; kept a plain string so that a stored kind is read back as written
    detail: str


class StoredEscalationStep(TypedDict):
    org: str
    after_minutes: int


class StoredDecision(TypedDict):
    """A routing decision as stored with the case (``RoutingRecord.decision``, a JSON column) and shown on
    the case page and in the API: written only by ``RoutingDecision.to_dict``, format ``DECISION_FORMAT``."""

    format: int
    policy_version: str
    targets: list[str]
    escalation: list[StoredEscalationStep]
    ack_deadline_minutes: int
    fallback_used: bool
    reasons: list[StoredReason]


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """The coarse, readable classification of a report that routing may use (nothing of its content)."""

    land: str
    district_ags: str | None
    type_codes: tuple[str, ...]
    severity: int
    urgency: str
    channel: str
    channel_online: bool
    office: str | None
    targets: tuple[str, ...]
    consent_counselling: bool
    consent_police: bool
    # Who reports: self, someone_else or administration (taxonomy ``reported_by``). Sealed with the case,
    # like the targets: the intake routes on the plaintext it holds anyway.
    reported_by: str = "self"


class ReasonKind(StrEnum):
    matched = "matched"
    # A target or escalation step of a matched rule has no key (or is not defined in the policy).
    skipped_unreachable = "skipped_unreachable"
    # A police liaison in a matched rule, dropped because the reporter did not consent to police contact.
    # Kept for decisions stored before the police were taken out of routing altogether.
    consent_missing = "consent_missing"
    # A police liaison in a matched rule (or as the fallback), dropped: the police receive a case only on a
    # counsellor's handover, never at intake or by escalation.
    handover_only = "handover_only"
    no_match = "no_match"
    fallback = "fallback"
    fallback_unreachable = "fallback_unreachable"


@dataclass(frozen=True, slots=True)
class Reason:
    rule_id: str | None  # None for decisions of the policy as a whole (no match, fallback)
    kind: ReasonKind
    detail: str  # English, for staff and logs; facts are codes only, never report content

    def to_dict(self) -> StoredReason:
        return {"rule_id": self.rule_id, "kind": self.kind.value, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    targets: tuple[str, ...]
    # (slug, minutes after filing): key granted now, access opened only if unacknowledged by then.
    escalation: tuple[tuple[str, int], ...]
    ack_deadline_minutes: int
    fallback_used: bool
    reasons: tuple[Reason, ...]
    policy_version: str

    @property
    def routed(self) -> bool:
        """False means nobody can receive the report: the intake refuses (503) and stores nothing."""
        return bool(self.targets)

    def to_dict(self) -> StoredDecision:
        return {
            "format": DECISION_FORMAT,
            "policy_version": self.policy_version,
            "targets": list(self.targets),
            "escalation": [{"org": slug, "after_minutes": minutes} for slug, minutes in self.escalation],
            "ack_deadline_minutes": self.ack_deadline_minutes,
            "fallback_used": self.fallback_used,
            "reasons": [reason.to_dict() for reason in self.reasons],
        }

    def to_json(self) -> str:
        """Stable JSON (sorted keys, no whitespace): equal decisions give equal bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: StoredDecision) -> RoutingDecision:
        if data.get("format") != DECISION_FORMAT:
            raise ValueError(f"unknown routing decision format {data.get('format')!r}")
        return cls(
            targets=tuple(str(slug) for slug in data["targets"]),
            escalation=tuple((str(step["org"]), int(step["after_minutes"])) for step in data["escalation"]),
            ack_deadline_minutes=int(data["ack_deadline_minutes"]),
            fallback_used=bool(data["fallback_used"]),
            reasons=tuple(
                Reason(rule_id=item["rule_id"], kind=ReasonKind(item["kind"]), detail=str(item["detail"]))
                for item in data["reasons"]
            ),
            policy_version=str(data["policy_version"]),
        )

    @classmethod
    def from_json(cls, text: str) -> RoutingDecision:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class ConditionResult:
    name: str
    ok: bool
    detail: str


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def evaluate_conditions(when: Conditions, facts: ReportFacts) -> tuple[ConditionResult, ...]:
    """Every condition the rule sets, whether it holds for these facts, and a one-line why."""
    results: list[ConditionResult] = []

    def add(name: str, ok: bool, detail: str) -> None:
        results.append(ConditionResult(name, ok, detail))

    if when.land is not None:
        ok = facts.land in when.land
        add("land", ok, f"land={facts.land} {'in' if ok else 'not in'} {_list(when.land)}")
    if when.district_prefix is not None:
        ags = facts.district_ags
        hit = next((p for p in when.district_prefix if ags is not None and ags.startswith(p)), None)
        shown = ags or "unknown"
        if hit is not None:
            add("district_prefix", True, f"district={shown} starts with {hit}")
        else:
            add(
                "district_prefix",
                False,
                f"district={shown} starts with none of {_list(when.district_prefix)}",
            )
    if when.types_any is not None:
        hits = [s for s in when.types_any if any(type_code_matches(c, s) for c in facts.type_codes)]
        types = _list(facts.type_codes)
        if hits:
            add("types_any", True, f"types {types} match {_list(hits)}")
        else:
            add("types_any", False, f"types {types} match none of {_list(when.types_any)}")
    if when.types_all is not None:
        misses = [s for s in when.types_all if not any(type_code_matches(c, s) for c in facts.type_codes)]
        types = _list(facts.type_codes)
        if misses:
            add("types_all", False, f"types {types} miss {_list(misses)}")
        else:
            add("types_all", True, f"types {types} match all of {_list(when.types_all)}")
    if when.severity_at_most is not None:
        ok = facts.severity <= when.severity_at_most
        add(
            "severity_at_most", ok, f"severity={facts.severity} {'<=' if ok else '>'} {when.severity_at_most}"
        )
    if when.urgency is not None:
        ok = facts.urgency in when.urgency
        add("urgency", ok, f"urgency={facts.urgency} {'in' if ok else 'not in'} {_list(when.urgency)}")
    if when.channel_online is not None:
        ok = facts.channel_online == when.channel_online
        detail = f"channel_online={_bool(facts.channel_online)}"
        add("channel_online", ok, detail if ok else f"{detail}, wanted {_bool(when.channel_online)}")
    if when.channel is not None:
        ok = any(channel_matches(facts.channel, s) for s in when.channel)
        add(
            "channel", ok, f"channel={facts.channel} {'within' if ok else 'not within'} {_list(when.channel)}"
        )
    if when.office is not None:
        ok = facts.office is not None and facts.office in when.office
        shown = facts.office or "none"
        add("office", ok, f"office={shown} {'in' if ok else 'not in'} {_list(when.office)}")
    if when.targets_any is not None:
        hits = [t for t in facts.targets if t in when.targets_any]
        if hits:
            add("targets_any", True, f"targets {_list(facts.targets)} include {_list(hits)}")
        else:
            add(
                "targets_any",
                False,
                f"targets {_list(facts.targets)} include none of {_list(when.targets_any)}",
            )
    if when.reported_by is not None:
        ok = facts.reported_by in when.reported_by
        add(
            "reported_by",
            ok,
            f"reported_by={facts.reported_by} {'in' if ok else 'not in'} {_list(when.reported_by)}",
        )
    if when.consent is not None:
        for name, wanted, actual in (
            ("counselling", when.consent.counselling, facts.consent_counselling),
            ("police_contact", when.consent.police_contact, facts.consent_police),
        ):
            if wanted is None:
                continue
            ok = actual == wanted
            detail = f"consent {name}={_bool(actual)}"
            add(f"consent.{name}", ok, detail if ok else f"{detail}, wanted {_bool(wanted)}")
    return tuple(results)


def _refusal(
    slug: str,
    role: str,
    orgs: Mapping[str, Organisation],
    facts: ReportFacts,
    reachable: frozenset[str],
    rule_id: str | None,
) -> Reason | None:
    """Why this organisation may not receive the case, or None if it may."""
    org = orgs.get(slug)
    if org is None:
        return Reason(rule_id, ReasonKind.skipped_unreachable, f"{role} {slug} is not defined in the policy")
    # Checked before reachability and independent of any rule or consent: a police liaison never gets the key
    # at intake or by escalation; a counsellor hands the case on after speaking with the reporter.
    if org.kind is OrganisationKind.police_liaison:
        detail = (
            f"{role} {slug} is a police liaison: it receives a case only when a counsellor hands it on "
            "with the reporter's consent"
        )
        return Reason(rule_id, ReasonKind.handover_only, detail)
    if slug not in reachable:
        return Reason(rule_id, ReasonKind.skipped_unreachable, f"{role} {slug} has no key")
    return None


def evaluate(policy: RoutingPolicy, facts: ReportFacts, reachable: frozenset[str]) -> RoutingDecision:
    """Route one report.

    Rules are tried in order. A matching rule adds its targets and escalation steps; ``stop: true`` (the
    default) ends the evaluation, ``stop: false`` goes on to the next rule. The acknowledgement deadline is
    the smallest of all matched rules (a severe case keeps its short deadline even if its own targets were
    skipped). The fallback is used when no rule matched, or when no support organisation remains. A police
    liaison is never among the recipients (see the module docstring).
    If the fallback cannot receive either, the decision has no targets and the caller refuses the report.
    """
    orgs = policy.organisation_map
    targets: list[str] = []
    escalation: dict[str, int] = {}
    deadlines: list[int] = []
    reasons: list[Reason] = []
    matched = False

    for rule in policy.rules:
        results = evaluate_conditions(rule.when, facts)
        if not all(result.ok for result in results):
            continue
        matched = True
        detail = "; ".join(result.detail for result in results) or "no conditions (matches every report)"
        reasons.append(Reason(rule.id, ReasonKind.matched, detail))
        if rule.then.ack_deadline_minutes is not None:
            deadlines.append(rule.then.ack_deadline_minutes)
        for slug in rule.then.targets:
            refusal = _refusal(slug, "target", orgs, facts, reachable, rule.id)
            if refusal is not None:
                reasons.append(refusal)
            elif slug not in targets:
                targets.append(slug)
        for step in rule.then.escalation:
            refusal = _refusal(step.org, "escalation step", orgs, facts, reachable, rule.id)
            if refusal is not None:
                reasons.append(refusal)
            elif step.org not in escalation or step.after_minutes < escalation[step.org]:
                escalation[step.org] = step.after_minutes
        if rule.then.stop:
            break

    if not matched:
        reasons.append(Reason(None, ReasonKind.no_match, "no rule matched"))
    fallback_used = False
    has_support = any(orgs[slug].kind is not OrganisationKind.police_liaison for slug in targets)
    if not has_support:
        fallback = policy.fallback
        # A police liaison as the fallback is refused by _refusal like anywhere else (policy check
        # reports it).
        refusal = _refusal(fallback.org, "fallback", orgs, facts, reachable, None)
        why = "no rule matched" if not matched else "no support organisation of the matched rules can receive"
        if refusal is None:
            fallback_used = True
            targets.append(fallback.org)
            deadlines.append(fallback.ack_deadline_minutes)
            reasons.append(Reason(None, ReasonKind.fallback, f"{why}: fallback {fallback.org}"))
        else:
            # Nobody who could support the reporter: no key is granted to anyone.
            reasons.append(Reason(None, ReasonKind.fallback_unreachable, f"{why}; {refusal.detail}"))
            targets.clear()
            escalation.clear()

    steps = [(slug, minutes) for slug, minutes in escalation.items() if slug not in targets]
    # Stable sort: equal times keep rule order.
    steps.sort(key=lambda step: step[1])
    deadline = min(deadlines) if deadlines else policy.fallback.ack_deadline_minutes
    return RoutingDecision(
        targets=tuple(targets),
        escalation=tuple(steps),
        ack_deadline_minutes=deadline,
        fallback_used=fallback_used,
        reasons=tuple(reasons),
        policy_version=policy.policy_version,
    )
