"""A readable account of how the policy routes one report: every rule, which conditions held, what was
skipped, and the decision. For operators tuning rules and for counsellors asking "why did we get this?".

The decision shown is the engine's own (``evaluate``); this module only retraces the rules beside it, so
the explanation cannot disagree with what the service does.
"""

from __future__ import annotations

from service.routing.engine import ReasonKind, ReportFacts, evaluate, evaluate_conditions
from service.routing.models import RoutingPolicy


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _describe_facts(facts: ReportFacts) -> list[str]:
    return [
        f"  land={facts.land} district={facts.district_ags or 'unknown'}",
        f"  types=[{', '.join(facts.type_codes)}] severity={facts.severity} urgency={facts.urgency}",
        f"  channel={facts.channel} ({'online' if facts.channel_online else 'offline'}) "
        f"office={facts.office or 'none'} targets=[{', '.join(facts.targets)}] "
        f"reported_by={facts.reported_by}",
        f"  consent: counselling={_yes(facts.consent_counselling)} "
        f"police_contact={_yes(facts.consent_police)}",
    ]


def explain(policy: RoutingPolicy, facts: ReportFacts, reachable: frozenset[str]) -> str:
    decision = evaluate(policy, facts, reachable)
    lines = [f"Routing explanation (policy {decision.policy_version[:12]})", "Report:"]
    lines += _describe_facts(facts)
    without_key = sorted(org.slug for org in policy.organisations if org.slug not in reachable)
    lines.append(
        f"Organisations that can receive: {len(policy.organisations) - len(without_key)} of "
        f"{len(policy.organisations)}" + (f" (no key: {', '.join(without_key)})" if without_key else "")
    )
    lines.append("")
    lines.append("Rules, in order:")
    stopped_by: str | None = None
    for number, rule in enumerate(policy.rules, start=1):
        title = f"{number:>3}. {rule.id}"
        if rule.description:
            title += f" - {rule.description}"
        if stopped_by is not None:
            lines.append(f"{title}")
            lines.append(f"       not evaluated: rule {stopped_by} matched and stops evaluation")
            continue
        results = evaluate_conditions(rule.when, facts)
        matched = all(result.ok for result in results)
        if matched:
            flow = "stop" if rule.then.stop else "continue with the next rule"
            lines.append(f"{title}")
            lines.append(f"       MATCHED ({flow})")
        else:
            lines.append(f"{title}")
            lines.append("       not matched")
        if not results:
            lines.append("       [x] no conditions (matches every report)")
        for result in results:
            lines.append(f"       [{'x' if result.ok else ' '}] {result.detail}")
        if matched:
            for slug in rule.then.targets:
                lines.append(f"       -> target {slug}")
            for step in rule.then.escalation:
                lines.append(f"       -> escalation to {step.org} after {step.after_minutes} min")
            if rule.then.ack_deadline_minutes is not None:
                lines.append(f"       -> acknowledge within {rule.then.ack_deadline_minutes} min")
            for reason in decision.reasons:
                if reason.rule_id == rule.id and reason.kind is not ReasonKind.matched:
                    lines.append(f"       !! {reason.kind.value}: {reason.detail}")
            if rule.then.stop:
                stopped_by = rule.id
    if not policy.rules:
        lines.append("  (none)")
    lines.append("")
    lines.append("Decision:")
    if decision.targets:
        for slug in decision.targets:
            org = policy.organisation(slug)
            name = f" ({org.display_name})" if org is not None else ""
            lines.append(f"  target {slug}{name}")
    else:
        lines.append(
            "  no organisation can receive this report: the intake refuses it (503), nothing is stored"
        )
    for slug, minutes in decision.escalation:
        lines.append(f"  escalation to {slug} after {minutes} min without acknowledgement")
    lines.append(f"  acknowledge within {decision.ack_deadline_minutes} min")
    lines.append(f"  fallback used: {_yes(decision.fallback_used)}")
    for reason in decision.reasons:
        if reason.rule_id is None:
            lines.append(f"  {reason.kind.value}: {reason.detail}")
    return "\n".join(lines) + "\n"
