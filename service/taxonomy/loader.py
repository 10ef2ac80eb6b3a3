"""The incident taxonomy (``policies/taxonomy.yaml``): schema, checks and a cached, read-only view.

The taxonomy is operator data, but statistics and stored cases depend on its codes, so it is checked hard
on load: strict types (YAML ``"4"`` is not the severity 4), no unknown keys (a typo would otherwise be
ignored), unique codes, and a code grammar that statistics and routing rely on. A service that cannot load
it refuses to start rather than accept reports it cannot classify.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, ValidationError

from service.taxonomy.codes import TYPE_CODE_PATTERN, parse_type_code, type_code_matches
from service.taxonomy.files import PolicyFileError, Problem, problems_from_validation, read_yaml

TAXONOMY_FILE = "taxonomy.yaml"

T = TypeVar("T")
# YAML gives lists; the models keep tuples so a loaded taxonomy cannot be changed by accident.
Seq = Annotated[tuple[T, ...], Strict(False)]

Lang = Literal["de", "en"]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
ItemCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$", max_length=64)]
TypeCode = Annotated[str, StringConstraints(pattern=TYPE_CODE_PATTERN)]
SeverityGroupCode = Annotated[int, Field(ge=1, le=6)]


class LegalRelevance(StrEnum):
    """Legal-relevance flag of an incident type (see the comments in taxonomy.yaml)."""

    likely_criminal = "likely_criminal"
    # Antragsdelikt, absolute or relative: the 3-month deadline for the request to prosecute runs.
    complaint_only = "complaint_only"
    non_criminal = "non_criminal"


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Label(_Model):
    de: Text
    en: Text

    def get(self, lang: str) -> str:
        """English for "en" (or "en-GB"), otherwise German, the service's first language."""
        return self.en if lang.lower().startswith("en") else self.de


class Item(_Model):
    """One option of a list: a stable code, German and English label, optional hint for the form."""

    code: ItemCode
    label: Label
    hint: Label | None = None
    refs: str | None = None
    children: Seq[Item] = ()


class Channel(_Model):
    code: ItemCode
    label: Label
    hint: Label | None = None
    refs: str | None = None
    # Required at the top level; children inherit it unless they say otherwise.
    online: bool | None = None
    children: Seq[Channel] = ()


class IncidentType(_Model):
    code: TypeCode
    label: Label
    hint: Label | None = None
    refs: str | None = None
    statute: str | None = None
    # Groups (A, B, ...) are headings and carry neither severity nor legal flag; every code below them must.
    severity: SeverityGroupCode | None = None
    legal: Annotated[LegalRelevance, Strict(False)] | None = None
    children: Seq[IncidentType] = ()


class SeverityGroup(_Model):
    code: SeverityGroupCode
    label: Label
    hint: Label | None = None


class OptionalField(_Model):
    code: ItemCode
    label: Label
    hint: Label | None = None
    refs: str | None = None
    enabled: bool = True
    # GDPR Art. 9 data (political opinion): off by default, an operator decision to switch on.
    special_category: bool = False


class Perpetrator(_Model):
    familiarity: Seq[Item]
    residence: Seq[Item]
    number: Seq[Item]


class TaxonomyFile(_Model):
    """The schema of ``policies/taxonomy.yaml``."""

    version: Literal[1]
    incident_types: Seq[IncidentType]
    severity_groups: Seq[SeverityGroup]
    legal_relevance: Seq[Item]
    channels: Seq[Channel]
    targets: Seq[Item]
    reported_by: Seq[Item]
    affected_persons: Seq[Item]
    offices: Seq[Item]
    municipality_size: Seq[Item]
    perpetrator: Perpetrator
    motives: Seq[Item]
    bias: Seq[Item]
    triggers: Seq[Item]
    consequences: Seq[Item]
    responses: Seq[Item]
    proceedings: Seq[Item]
    support_needs: Seq[Item]
    urgency: Seq[Item]
    optional_fields: Seq[OptionalField] = ()


AnyItem = Item | Channel | IncidentType | SeverityGroup | OptionalField

# Lists of plain items, by the name that ``valid_codes`` and ``label`` take.
_ITEM_KINDS: tuple[str, ...] = (
    "legal_relevance",
    "targets",
    "reported_by",
    "affected_persons",
    "offices",
    "municipality_size",
    "motives",
    "bias",
    "triggers",
    "consequences",
    "responses",
    "proceedings",
    "support_needs",
    "urgency",
)
_PERPETRATOR_KINDS: tuple[str, ...] = ("familiarity", "residence", "number")
# The service's code relies on these values existing (defaults and routing), so an operator cannot drop them.
REQUIRED_URGENCY = ("acute", "high", "normal")


def more_urgent(first: str, second: str) -> str:
    """The more urgent of two urgency codes (acute, then high, then normal; unknown codes count least)."""
    order = {code: index for index, code in enumerate(REQUIRED_URGENCY)}
    return min(first, second, key=lambda code: order.get(code, len(order)))


# Who reports: the intake's default is "self", and the form explains the other two.
REQUIRED_REPORTED_BY = ("self", "someone_else", "administration")
# The KoMo-comparable questions of the form (all optional, multi-select) that reach the statistics.
ANSWER_KINDS = ("motives", "bias", "triggers", "consequences")


class Taxonomy:
    """A loaded, checked taxonomy with look-ups. Immutable, so one instance is shared by every request."""

    def __init__(self, data: TaxonomyFile) -> None:
        self._data = data
        self._types: dict[str, IncidentType] = {}
        self._type_parent: dict[str, str | None] = {}
        self._walk_types(data.incident_types, None)
        self._groups = tuple(item.code for item in data.incident_types)
        self._items: dict[str, dict[str, AnyItem]] = {
            "incident_types": dict(self._types),
            "severity_groups": {str(group.code): group for group in data.severity_groups},
            "channels": _flatten(data.channels),
            "optional_fields": {item.code: item for item in data.optional_fields},
        }
        for kind in _ITEM_KINDS:
            self._items[kind] = _flatten(getattr(data, kind))
        for kind in _PERPETRATOR_KINDS:
            self._items[f"perpetrator.{kind}"] = _flatten(getattr(data.perpetrator, kind))
        self._valid: dict[str, frozenset[str]] = {
            kind: frozenset(items) for kind, items in self._items.items()
        }
        # A report carries types, never group headings.
        self._valid["incident_types"] = frozenset(code for code in self._types if code not in self._groups)
        self._online: dict[str, bool] = {}
        self._walk_channels(data.channels, False)

    def _walk_types(self, items: Iterable[IncidentType], parent: str | None) -> None:
        for item in items:
            self._types[item.code] = item
            self._type_parent[item.code] = parent
            self._walk_types(item.children, item.code)

    def _walk_channels(self, items: Iterable[Channel], inherited: bool) -> None:
        for item in items:
            online = inherited if item.online is None else item.online
            self._online[item.code] = online
            self._walk_channels(item.children, online)

    @property
    def data(self) -> TaxonomyFile:
        return self._data

    def kinds(self) -> tuple[str, ...]:
        """The names ``valid_codes`` and ``label`` accept, e.g. ``channels``, ``perpetrator.familiarity``."""
        return tuple(self._items)

    # -- incident types -----------------------------------------------------------------------------------
    def incident_type(self, code: str) -> IncidentType:
        """The type (or group) with this code; ``KeyError`` for an unknown code."""
        try:
            return self._types[code]
        except KeyError:
            raise KeyError(f"unknown incident type code {code!r}") from None

    def is_group(self, code: str) -> bool:
        self.incident_type(code)
        return code in self._groups

    def is_leaf_type(self, code: str) -> bool:
        """True for a type without sub-types (A1, A3a); False for A3 and for groups."""
        return not self.incident_type(code).children

    def all_type_codes(self) -> tuple[str, ...]:
        """Every code of the hierarchy in file order, groups included (A, A1, A2, A3, A3a, ...).

        For the codes a report may carry (no groups) use ``valid_codes("incident_types")``.
        """
        return tuple(self._types)

    def group_codes(self) -> tuple[str, ...]:
        return self._groups

    def parent_type(self, code: str) -> str | None:
        self.incident_type(code)
        return self._type_parent[code]

    def group_of(self, code: str) -> str:
        self.incident_type(code)
        parts = parse_type_code(code)
        assert parts is not None  # the schema enforces the grammar
        return parts.group

    def type_matches(self, code: str, selector: str) -> bool:
        """``A3a`` matches ``A3a``, ``A3`` and ``A``; routing conditions use the same rule."""
        return type_code_matches(code, selector)

    def _reportable(self, code: str) -> IncidentType:
        item = self.incident_type(code)
        if item.severity is None or item.legal is None:
            raise KeyError(f"{code!r} is a group heading, not an incident type")
        return item

    def severity_of(self, codes: Iterable[str]) -> int:
        """The most severe (lowest) RIAS/CST group over the codes; ``ValueError`` if there are none."""
        severities = [self._reportable(code).severity for code in codes]
        known = [value for value in severities if value is not None]
        if not known:
            raise ValueError("severity of an empty list of incident types")
        return min(known)

    def legal_of(self, code: str) -> LegalRelevance:
        legal = self._reportable(code).legal
        assert legal is not None
        return legal

    def has_complaint_only(self, codes: Iterable[str]) -> bool:
        """Whether any code is a complaint-only offence, i.e. a 3-month deadline for the Strafantrag runs."""
        return any(self.legal_of(code) is LegalRelevance.complaint_only for code in codes)

    # -- every kind ---------------------------------------------------------------------------------------
    def _kind(self, kind: str) -> dict[str, AnyItem]:
        try:
            return self._items[kind]
        except KeyError:
            raise KeyError(f"unknown taxonomy kind {kind!r}; known: {', '.join(self._items)}") from None

    def valid_codes(self, kind: str) -> frozenset[str]:
        """Codes a report may carry for this kind (parents and children; no incident group headings)."""
        self._kind(kind)
        return self._valid[kind]

    def items(self, kind: str) -> tuple[AnyItem, ...]:
        """The top-level items of a kind in file order, children nested: what a form shows."""
        items = self._kind(kind)
        return tuple(
            item for code, item in items.items() if "." not in code and not self._is_sub_type(kind, code)
        )

    def _is_sub_type(self, kind: str, code: str) -> bool:
        return kind == "incident_types" and self._type_parent.get(code) is not None

    def label(self, kind: str, code: str, lang: str = "de") -> str:
        try:
            item = self._kind(kind)[code]
        except KeyError:
            raise KeyError(f"unknown {kind} code {code!r}") from None
        return item.label.get(lang)

    def hint(self, kind: str, code: str, lang: str = "de") -> str | None:
        item = self._kind(kind).get(code)
        if item is None:
            raise KeyError(f"unknown {kind} code {code!r}")
        return item.hint.get(lang) if item.hint is not None else None

    def labels(self, kind: str, lang: str = "de") -> dict[str, str]:
        """Code -> label in one language (children included), for templates and exports."""
        return {code: item.label.get(lang) for code, item in self._kind(kind).items()}

    def channel_is_online(self, code: str) -> bool:
        try:
            return self._online[code]
        except KeyError:
            raise KeyError(f"unknown channel code {code!r}") from None


def _flatten(items: Iterable[Item | Channel]) -> dict[str, AnyItem]:
    flat: dict[str, AnyItem] = {}
    for item in items:
        flat[item.code] = item
        flat.update(_flatten(item.children))
    return flat


# -- checks beyond the schema -------------------------------------------------------------------------------
_LEVELS = ("a group letter (A)", "a type (A3)", "a sub-type (A3a)", "nothing deeper")


def _check_types(data: TaxonomyFile) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    severities = {group.code for group in data.severity_groups}

    def walk(items: tuple[IncidentType, ...], path: str, depth: int, parent: str | None) -> None:
        for index, item in enumerate(items):
            here = f"{path}[{index}] ({item.code})"
            parts = parse_type_code(item.code)
            if item.code in seen:
                problems.append(Problem(here, f"duplicate incident type code {item.code}"))
            seen.add(item.code)
            if parts is None or parts.depth != depth:
                want = _LEVELS[min(depth, 3)]
                problems.append(Problem(here, f"code at this level must be {want}"))
            elif parent is not None and not type_code_matches(item.code, parent):
                problems.append(Problem(here, f"code must lie below its parent {parent}"))
            if depth == 0:
                if item.severity is not None or item.legal is not None or item.statute is not None:
                    problems.append(
                        Problem(here, "a group heading carries no severity, legal flag or statute")
                    )
                if not item.children:
                    problems.append(Problem(here, "a group needs at least one type"))
            else:
                if item.severity is None:
                    problems.append(Problem(here, "severity missing"))
                elif item.severity not in severities:
                    problems.append(Problem(here, f"severity {item.severity} is not a severity group"))
                if item.legal is None:
                    problems.append(Problem(here, "legal flag missing"))
            walk(item.children, f"{here}.children", depth + 1, item.code)

    walk(data.incident_types, "incident_types", 0, None)
    return problems


def _check_items(path: str, items: Sequence[Item | Channel], seen: set[str] | None = None) -> list[Problem]:
    problems: list[Problem] = []
    codes: set[str] = set() if seen is None else seen
    for index, item in enumerate(items):
        here = f"{path}[{index}] ({item.code})"
        if item.code in codes:
            problems.append(Problem(here, f"duplicate code {item.code}"))
        codes.add(item.code)
        if seen is None and "." in item.code:
            problems.append(Problem(here, "a top-level code has no dot"))
        children: Sequence[Item | Channel] = item.children
        for child_index, child in enumerate(children):
            if not child.code.startswith(item.code + "."):
                where = f"{here}.children[{child_index}] ({child.code})"
                problems.append(Problem(where, f"a child code starts with its parent: {item.code}.<name>"))
            if child.children:
                problems.append(Problem(f"{here}.children[{child_index}]", "only one level of children"))
        problems += _check_items(f"{here}.children", children, codes) if children else []
    return problems


def check_taxonomy(data: TaxonomyFile) -> list[Problem]:
    """Everything the schema alone cannot say; each problem names its path in the file."""
    problems = _check_types(data)
    groups = [group.code for group in data.severity_groups]
    if sorted(groups) != list(range(1, 7)):
        problems.append(Problem("severity_groups", "must list the groups 1 to 6, each once"))
    for kind in _ITEM_KINDS:
        problems += _check_items(kind, getattr(data, kind))
    for kind in _PERPETRATOR_KINDS:
        problems += _check_items(f"perpetrator.{kind}", getattr(data.perpetrator, kind))
    problems += _check_items("channels", data.channels)
    for index, channel in enumerate(data.channels):
        if channel.online is None:
            problems.append(
                Problem(f"channels[{index}] ({channel.code})", "online: true or false is required")
            )
    legal = {item.code for item in data.legal_relevance}
    if legal != {flag.value for flag in LegalRelevance}:
        flags = ", ".join(flag.value for flag in LegalRelevance)
        problems.append(Problem("legal_relevance", f"must list exactly {flags}"))
    urgency = {item.code for item in data.urgency}
    missing = [code for code in REQUIRED_URGENCY if code not in urgency]
    if missing:
        problems.append(Problem("urgency", f"the service needs the codes {', '.join(missing)}"))
    reported_by = {item.code for item in data.reported_by}
    missing = [code for code in REQUIRED_REPORTED_BY if code not in reported_by]
    if missing:
        problems.append(Problem("reported_by", f"the service needs the codes {', '.join(missing)}"))
    fields = [item.code for item in data.optional_fields]
    if len(set(fields)) != len(fields):
        problems.append(Problem("optional_fields", "duplicate code"))
    return problems


def parse_taxonomy(raw: object, file: Path) -> Taxonomy:
    """Validate already-parsed YAML; ``PolicyFileError`` lists every problem with its path."""
    try:
        data = TaxonomyFile.model_validate(raw)
    except ValidationError as exc:
        raise PolicyFileError(file, problems_from_validation(exc, raw)) from None
    problems = check_taxonomy(data)
    if problems:
        raise PolicyFileError(file, problems)
    return Taxonomy(data)


@functools.lru_cache(maxsize=8)
def _load_cached(file: Path, _mtime_ns: int, _size: int) -> Taxonomy:
    return parse_taxonomy(read_yaml(file), file)


def load_taxonomy(policies_dir: Path) -> Taxonomy:
    """Load ``<policies_dir>/taxonomy.yaml``; cached until the file changes (modification time and size)."""
    file = (policies_dir / TAXONOMY_FILE).resolve()
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise PolicyFileError(file, [Problem("", "file not found")]) from None
    return _load_cached(file, stat.st_mtime_ns, stat.st_size)
