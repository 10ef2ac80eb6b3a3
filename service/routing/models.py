"""The schema of ``policies/routing.yaml``: organisations, ordered rules with typed conditions, a fallback.

Strict on purpose. The policy decides who receives a key to a case, so a typo must fail loudly instead of
widening or narrowing a rule: unknown keys are refused, ``land: [10]`` (YAML reads an integer, not the
code "10") is refused, and so are ``stop: 1`` and ``severity_at_most: "2"``. Checks that need the taxonomy
(do the codes exist?) are in ``loader.py``; checks about the policy as a whole (dead rules, gaps) in
``check.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints

T = TypeVar("T")
# YAML gives lists; tuples keep a loaded policy immutable. Items inside stay strict.
Seq = Annotated[tuple[T, ...], Strict(False)]
# At least one entry: an empty any-of list would match nothing, which is never what an operator means.
NonEmpty = Annotated[tuple[T, ...], Strict(False), Field(min_length=1)]

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
LandCode = Annotated[str, StringConstraints(pattern=r"^(0[1-9]|1[0-6])$")]
AgsPrefix = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,5}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.]{1,64}$")]
Minutes = Annotated[int, Field(ge=1, le=60 * 24 * 30)]


class OrganisationKind(StrEnum):
    counselling = "counselling"
    online_hate = "online_hate"
    legal_aid = "legal_aid"
    # Never receives a case unless the reporter agreed to police contact; the engine enforces this.
    police_liaison = "police_liaison"
    fallback_rota = "fallback_rota"


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Organisation(_Model):
    slug: Slug
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    kind: Annotated[OrganisationKind, Strict(False)]
    # The Länder the organisation serves; None = nationwide. Only ``policy check`` reads it, to warn when a
    # rule could send it reports from elsewhere.
    lands: NonEmpty[LandCode] | None = None


class ConsentCondition(_Model):
    counselling: bool | None = None
    police_contact: bool | None = None


class Conditions(_Model):
    """All conditions that are present must hold; within a list, any entry suffices. None = no condition."""

    land: NonEmpty[LandCode] | None = None
    district_prefix: NonEmpty[AgsPrefix] | None = None
    # Type selectors: a code (A3a), a type with its sub-types (A3) or a group letter (D).
    types_any: NonEmpty[Code] | None = None
    types_all: NonEmpty[Code] | None = None
    # 1 is the most severe group, so "at most 2" means extreme violence or assault.
    severity_at_most: Annotated[int, Field(ge=1, le=6)] | None = None
    urgency: NonEmpty[Code] | None = None
    channel_online: bool | None = None
    # A channel code selects its sub-codes too: in_person matches in_person.home.
    channel: NonEmpty[Code] | None = None
    office: NonEmpty[Code] | None = None
    targets_any: NonEmpty[Code] | None = None
    # Who reports: self, someone_else (for a family member or colleague), administration (for its staff).
    reported_by: NonEmpty[Code] | None = None
    consent: ConsentCondition | None = None

    def present(self) -> tuple[str, ...]:
        """Names of the conditions this rule sets, in schema order."""
        return tuple(name for name in type(self).model_fields if getattr(self, name) is not None)


class EscalationStep(_Model):
    org: Slug
    after_minutes: Minutes


class Action(_Model):
    targets: Seq[Slug] = ()
    escalation: Seq[EscalationStep] = ()
    # None is allowed for rules that only add a recipient (stop: false); the decision then takes the
    # deadline of the other matched rules, or the fallback's.
    ack_deadline_minutes: Minutes | None = None
    # True: the first matching rule ends evaluation. False: add these targets and keep evaluating.
    stop: bool = True


class Rule(_Model):
    id: RuleId
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""
    when: Conditions = Conditions()
    then: Action


class Fallback(_Model):
    """Where a report goes when no rule matched or no organisation of the matched rules can receive it."""

    org: Slug
    ack_deadline_minutes: Minutes


class RoutingPolicy(_Model):
    version: Annotated[int, Field(ge=1, le=1)] = 1
    organisations: NonEmpty[Organisation]
    rules: Seq[Rule] = ()
    fallback: Fallback

    @cached_property
    def policy_version(self) -> str:
        """sha256 of the canonical policy: stored with every decision, so a decision can be traced to
        exactly the rules that made it even after the file changed. Comments and key order do not count."""
        canonical = json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    @cached_property
    def organisation_map(self) -> Mapping[str, Organisation]:
        """Slug -> organisation, read-only: the policy is shared by every request."""
        return MappingProxyType({org.slug: org for org in self.organisations})

    def organisation(self, slug: str) -> Organisation | None:
        return self.organisation_map.get(slug)

    def rule(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)
