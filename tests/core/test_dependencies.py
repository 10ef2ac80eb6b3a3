"""Every third-party module the service and the workers import is a runtime dependency in pyproject.toml.

Test extras are installed where tests run, so a module missing from [project].dependencies works in CI and
fails on a fresh `make run` (httpx did, once). This reads the imports and holds them to the list.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from service.config import PROJECT_ROOT


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_runtime_imports_are_runtime_dependencies() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normalise(re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}
    distributions = packages_distributions()
    imported: set[str] = set()
    for folder in ("service", "workers"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module.split(".")[0])
    third_party = {
        name
        for name in imported
        if name not in sys.stdlib_module_names and name not in ("service", "workers")
    }
    missing = {}
    for module in sorted(third_party):
        owners = {_normalise(dist) for dist in distributions.get(module, [])}
        if not owners & declared:
            missing[module] = sorted(owners)
    assert missing == {}, f"imported but not in [project].dependencies: {missing}"
