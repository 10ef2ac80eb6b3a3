"""Loading ``policies/routing.yaml`` and checking every code in it against the taxonomy and districts.

A rule with an unknown code would silently never match (``types_any: [A3f]``) and reports would go
elsewhere than the operator intended; an unknown organisation would mean a key grant to nobody. Both are
refused on load, with the rule id in the message.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from service.routing.models import Conditions, RoutingPolicy
from service.taxonomy import Districts, PolicyFileError, Problem, Taxonomy, load_districts, load_taxonomy
from service.taxonomy.codes import parse_type_code
from service.taxonomy.files import problems_from_validation, read_yaml

ROUTING_FILE = "routing.yaml"


def parse_policy(raw: object, file: Path) -> RoutingPolicy:
    """Schema only; ``PolicyFileError`` names the path of every problem (``rules[3] (id=x).when.land``)."""
    try:
        return RoutingPolicy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyFileError(file, problems_from_validation(exc, raw)) from None


def _condition_problems(
    where: str, when: Conditions, taxonomy: Taxonomy, districts: Districts | None
) -> list[Problem]:
    problems: list[Problem] = []
    type_codes = set(taxonomy.all_type_codes())
    for name, selectors in (("types_any", when.types_any), ("types_all", when.types_all)):
        for code in selectors or ():
            if code not in type_codes or parse_type_code(code) is None:
                problems.append(Problem(f"{where}.when.{name}", f"unknown incident type code {code!r}"))
    coded = (
        ("urgency", when.urgency, "urgency"),
        ("channel", when.channel, "channels"),
        ("office", when.office, "offices"),
        ("targets_any", when.targets_any, "targets"),
        ("reported_by", when.reported_by, "reported_by"),
    )
    for name, values, kind in coded:
        valid = taxonomy.valid_codes(kind)
        for code in values or ():
            if code not in valid:
                problems.append(Problem(f"{where}.when.{name}", f"unknown {kind} code {code!r}"))
    if districts is not None:
        for prefix in when.district_prefix or ():
            if not districts.has_prefix(prefix):
                problems.append(
                    Problem(f"{where}.when.district_prefix", f"no district key starts with {prefix!r}")
                )
    return problems


def reference_problems(
    policy: RoutingPolicy, taxonomy: Taxonomy, districts: Districts | None
) -> list[Problem]:
    """Duplicate ids, unknown organisations and unknown codes; paths name the rule id."""
    problems: list[Problem] = []
    slugs: set[str] = set()
    for index, org in enumerate(policy.organisations):
        if org.slug in slugs:
            problems.append(Problem(f"organisations[{index}] (slug={org.slug})", "duplicate slug"))
        slugs.add(org.slug)
    rule_ids: set[str] = set()
    for index, rule in enumerate(policy.rules):
        where = f"rules[{index}] (id={rule.id})"
        if rule.id in rule_ids:
            problems.append(Problem(where, f"duplicate rule id {rule.id!r}"))
        rule_ids.add(rule.id)
        for slug in rule.then.targets:
            if slug not in slugs:
                problems.append(Problem(f"{where}.then.targets", f"unknown organisation {slug!r}"))
        for step in rule.then.escalation:
            if step.org not in slugs:
                problems.append(Problem(f"{where}.then.escalation", f"unknown organisation {step.org!r}"))
        problems += _condition_problems(where, rule.when, taxonomy, districts)
    if policy.fallback.org not in slugs:
        problems.append(Problem("fallback.org", f"unknown organisation {policy.fallback.org!r}"))
    return problems


def read_policy(policies_dir: Path) -> RoutingPolicy:
    """The policy file, schema-checked only (``policy check`` wants to report the rest as findings)."""
    file = (policies_dir / ROUTING_FILE).resolve()
    return parse_policy(read_yaml(file), file)


def load_policy(
    policies_dir: Path, taxonomy: Taxonomy | None = None, districts: Districts | None = None
) -> RoutingPolicy:
    """Load and fully validate ``<policies_dir>/routing.yaml`` against the taxonomy and districts there.

    Raises ``PolicyFileError``; the service refuses to start on a policy it does not fully understand.
    """
    taxonomy = taxonomy if taxonomy is not None else load_taxonomy(policies_dir)
    districts = districts if districts is not None else load_districts(policies_dir)
    policy = read_policy(policies_dir)
    problems = reference_problems(policy, taxonomy, districts)
    if problems:
        raise PolicyFileError((policies_dir / ROUTING_FILE).resolve(), problems)
    return policy
