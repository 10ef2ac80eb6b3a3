"""Example reports with expected routing (``policies/tests/*.yaml``), run by ``rueckhalt policy test``.

Operators change routing.yaml; these cases are how they see that Bavaria still reaches Bavaria's
counselling and that the police never get a case without consent. Each case names the organisations that
have no key for that case (``no_key``); every other organisation of the policy is assumed to have one, so
the cases give the same answer on every machine, whatever keys a database holds.

A case file holds one case (a mapping) or a list of cases::

    - name: Bayern, Beleidigung per E-Mail
      report: {land: "09", type_codes: [A1], channel: email}
      expected_targets: [online-hass, beratung-by]
      expected_escalation: [{org: rufbereitschaft, after_minutes: 1440}]   # optional
      expected_fallback: false                                            # optional
      expected_ack_deadline_minutes: 1440                                 # optional
      no_key: []                                                          # optional
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, ValidationError

from service.routing.engine import ReportFacts, RoutingDecision, evaluate
from service.routing.models import Code, EscalationStep, LandCode, Minutes, RoutingPolicy, Slug
from service.taxonomy import PolicyFileError, Problem, Taxonomy
from service.taxonomy.files import problems_from_validation, read_yaml

T = TypeVar("T")
Seq = Annotated[tuple[T, ...], Strict(False)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ReportInput(_Model):
    """The routing-relevant fields of a report as a file gives them; severity and online-ness are derived
    from the taxonomy, as the intake does, so a case cannot claim facts the intake would never produce."""

    land: LandCode
    district_ags: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")] | None = None
    type_codes: Annotated[tuple[Code, ...], Strict(False), Field(min_length=1)]
    urgency: Code = "normal"
    channel: Code
    office: Code | None = None
    targets: Seq[Code] = ("self",)
    reported_by: Code = "self"
    consent_counselling: bool = True
    consent_police: bool = False

    def to_facts(self, taxonomy: Taxonomy) -> ReportFacts:
        """``ValueError`` naming every code the taxonomy does not know."""
        unknown = [
            f"type_codes: {c}" for c in self.type_codes if c not in taxonomy.valid_codes("incident_types")
        ]
        if self.channel not in taxonomy.valid_codes("channels"):
            unknown.append(f"channel: {self.channel}")
        if self.urgency not in taxonomy.valid_codes("urgency"):
            unknown.append(f"urgency: {self.urgency}")
        if self.office is not None and self.office not in taxonomy.valid_codes("offices"):
            unknown.append(f"office: {self.office}")
        unknown += [f"targets: {t}" for t in self.targets if t not in taxonomy.valid_codes("targets")]
        if self.reported_by not in taxonomy.valid_codes("reported_by"):
            unknown.append(f"reported_by: {self.reported_by}")
        if self.district_ags is not None and not self.district_ags.startswith(self.land):
            unknown.append(f"district_ags: {self.district_ags} is not in Land {self.land}")
        if unknown:
            raise ValueError("unknown codes: " + "; ".join(unknown))
        return ReportFacts(
            land=self.land,
            district_ags=self.district_ags,
            type_codes=self.type_codes,
            severity=taxonomy.severity_of(self.type_codes),
            urgency=self.urgency,
            channel=self.channel,
            channel_online=taxonomy.channel_is_online(self.channel),
            office=self.office,
            targets=self.targets,
            consent_counselling=self.consent_counselling,
            consent_police=self.consent_police,
            reported_by=self.reported_by,
        )


class PolicyCase(_Model):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: str = ""
    report: ReportInput
    no_key: Seq[Slug] = ()
    expected_targets: Seq[Slug]
    expected_escalation: Seq[EscalationStep] | None = None
    expected_fallback: bool | None = None
    expected_ack_deadline_minutes: Minutes | None = None


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    file: str
    expected: str
    got: str
    ok: bool
    error: str | None = None


def _targets(slugs: Iterable[str]) -> str:
    return "[" + ", ".join(slugs) + "]"


def _escalation(steps: Iterable[tuple[str, int]]) -> str:
    return "[" + ", ".join(f"{slug}@{minutes}" for slug, minutes in steps) + "]"


def load_cases(cases_dir: Path) -> list[tuple[str, PolicyCase | PolicyFileError]]:
    """Every case of every ``*.yaml`` in the folder, sorted by file name; a broken file becomes an error
    entry instead of stopping the run, so one typo does not hide the results of all other cases."""
    loaded: list[tuple[str, PolicyCase | PolicyFileError]] = []
    for file in sorted(cases_dir.glob("*.yaml")):
        try:
            raw = read_yaml(file)
        except PolicyFileError as exc:
            loaded.append((file.name, exc))
            continue
        items = raw if isinstance(raw, list) else [raw]
        for index, item in enumerate(items):
            try:
                loaded.append((file.name, PolicyCase.model_validate(item)))
            except ValidationError as exc:
                problems = [
                    Problem(f"[{index}].{p.path}" if isinstance(raw, list) else p.path, p.message)
                    for p in problems_from_validation(exc, item)
                ]
                loaded.append((file.name, PolicyFileError(file, problems)))
    return loaded


def run_case(policy: RoutingPolicy, taxonomy: Taxonomy, case: PolicyCase, file: str = "") -> CaseResult:
    def failed(message: str) -> CaseResult:
        return CaseResult(case.name, file, "", "", ok=False, error=message)

    unknown = [slug for slug in case.no_key if policy.organisation(slug) is None]
    if unknown:
        return failed(f"no_key names unknown organisation(s): {', '.join(unknown)}")
    try:
        facts = case.report.to_facts(taxonomy)
    except ValueError as exc:
        return failed(str(exc))
    reachable = frozenset(org.slug for org in policy.organisations) - set(case.no_key)
    decision = evaluate(policy, facts, reachable)
    return compare(case, decision, file)


def compare(case: PolicyCase, decision: RoutingDecision, file: str = "") -> CaseResult:
    """Targets and escalation compare as sets: the order within a decision follows rule order, which an
    operator should not have to reproduce in every case."""
    expected = [f"targets={_targets(case.expected_targets)}"]
    got = [f"targets={_targets(decision.targets)}"]
    ok = set(case.expected_targets) == set(decision.targets)
    if case.expected_escalation is not None:
        wanted = [(step.org, step.after_minutes) for step in case.expected_escalation]
        expected.append(f"escalation={_escalation(wanted)}")
        got.append(f"escalation={_escalation(decision.escalation)}")
        ok = ok and set(wanted) == set(decision.escalation)
    if case.expected_fallback is not None:
        expected.append(f"fallback={'yes' if case.expected_fallback else 'no'}")
        got.append(f"fallback={'yes' if decision.fallback_used else 'no'}")
        ok = ok and case.expected_fallback == decision.fallback_used
    if case.expected_ack_deadline_minutes is not None:
        expected.append(f"ack={case.expected_ack_deadline_minutes}")
        got.append(f"ack={decision.ack_deadline_minutes}")
        ok = ok and case.expected_ack_deadline_minutes == decision.ack_deadline_minutes
    return CaseResult(case.name, file, "; ".join(expected), "; ".join(got), ok)


def run_cases(policy: RoutingPolicy, taxonomy: Taxonomy, cases_dir: Path) -> list[CaseResult]:
    results: list[CaseResult] = []
    for file, case in load_cases(cases_dir):
        if isinstance(case, PolicyFileError):
            message = "; ".join(str(problem) for problem in case.problems)
            results.append(CaseResult(f"({file})", file, "", "", ok=False, error=message))
        else:
            results.append(run_case(policy, taxonomy, case, file))
    return results
