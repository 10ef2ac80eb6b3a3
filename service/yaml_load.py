"""YAML read the safe way, with PyYAML's C parser where it is built in (about nine times faster).

The operator's policy files are read at every start of a process and, in the tests, at every runtime that
is built; the translations and the knowledge base's front matter likewise. The C parser builds the same
objects through the same safe constructor (no Python object tags); the pure-Python loader is the fallback
for a PyYAML built without libyaml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    SafeLoader = yaml.SafeLoader
else:
    # CSafeLoader is CParser + SafeConstructor + Resolver: a subclass adds constructors the same way.
    SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with the C parser when there is one."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a safe loader  # nosec B506
