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

from packaging.requirements import Requirement

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


def _pins(path: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a pip-compile --generate-hashes file."""
    text = (PROJECT_ROOT / path).read_text()
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if match:
            pins[_normalise(match.group(1))] = (match.group(2), block.count("--hash=sha256:"))
    return pins


def test_production_dependencies_are_pinned_with_hashes() -> None:
    # The image installs requirements/production.txt with --require-hashes and the project with --no-deps,
    # so a dependency added to pyproject.toml without `make lock` would be missing from the image.
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins("requirements/production.txt")
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = _normalise(requirement.name)
        assert name in pins, f"{name} is not pinned: run `make lock`"
        version, hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), f"{name}=={version} vs {spec}"
        assert hashes >= 1, f"{name} has no hash"
    assert all(hashes >= 1 for _, hashes in pins.values())
    assert all(hashes >= 1 for _, hashes in _pins("requirements/build.txt").values())


def test_the_image_installs_only_hashed_pins() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs, "the Dockerfile installs nothing?"
    for line in installs:
        assert "--require-hashes" in line or "--no-deps" in line, line
