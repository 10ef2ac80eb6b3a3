"""Reading operator-edited policy files, and errors that say where in the file the problem is.

Policy files are edited by hand by operators who are not programmers. A message like "1 validation error
for TaxonomyFile" does not help them; "policies/taxonomy.yaml: incident_types[0].children[2] (A3):
severity: Input should be a valid integer" does. Both the taxonomy and the routing loader use this.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from service.yaml_load import SafeLoader


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy file: where (a path like ``rules[3].when.land``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PolicyFileError(ValueError):
    """A policy file the service refuses to use. The service must not start on a half-understood policy."""

    def __init__(self, file: Path, problems: Sequence[Problem]) -> None:
        self.file = file
        self.problems = tuple(problems)
        lines = [f"{file}: {problem}" for problem in self.problems] or [f"{file}: invalid"]
        super().__init__("\n".join(lines))


class _UniqueKeyLoader(SafeLoader):
    """PyYAML keeps the last of two equal keys without a word; in a policy that hides an edit, so refuse."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        if isinstance(key, Hashable):
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(file: Path) -> Any:
    """Parse a YAML policy file (safe loader, duplicate keys refused); errors name the file and line."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyFileError(file, [Problem("", "file not found")]) from None
    except UnicodeDecodeError:
        raise PolicyFileError(file, [Problem("", "not UTF-8 text")]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass  # nosec B506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        detail = getattr(exc, "problem", None) or str(exc)
        raise PolicyFileError(file, [Problem(where, f"YAML syntax: {detail}")]) from None


_NAME_KEYS = ("code", "id", "slug", "name")


def format_path(loc: Sequence[int | str], raw: Any) -> str:
    """``("rules", 3, "when", "land")`` -> ``rules[3] (id=severe).when.land``.

    The identifying key of each list item (code, id, slug) is added, because operators find a rule by its
    id, not by counting list entries.
    """
    text = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            if isinstance(node, dict):
                for key in _NAME_KEYS:
                    if isinstance(node.get(key), str | int):
                        text += f" ({key}={node[key]})" if key != "code" else f" ({node[key]})"
                        break
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return text


def problems_from_validation(exc: ValidationError, raw: Any) -> list[Problem]:
    """Turn pydantic's errors into problems with readable paths; the input value is not echoed."""
    problems: list[Problem] = []
    for error in exc.errors(include_url=False, include_input=False):
        # Tagged unions and Annotated wrappers add loc parts that are no field names; drop them.
        loc = [
            part for part in error["loc"] if isinstance(part, int) or not str(part).startswith("function-")
        ]
        problems.append(Problem(format_path(loc, raw), error["msg"]))
    return problems
