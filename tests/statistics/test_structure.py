"""Structure of the statistics package (statistics.md "Tests that show it works", structure): no
``random`` or ``numpy.random`` on the release path, and nothing finer than Land and month in any output."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from service.statistics.dashboard.catalogue import DIMENSIONS, TABLES, compute_catalogue
from service.statistics.dashboard.suppression import build_snapshot
from service.statistics.public.dp import release
from service.statistics.synthetic import generate
from tests.support.statistics import domains, statistics_policy

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_MODULES = ("random", "numpy.random", "secrets")
FINER_THAN_LAND_OR_MONTH = re.compile(
    r"district|municipal|ags|day|date|time|pseudonym|case|id$", re.IGNORECASE
)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, including ``from x import y`` as ``x`` and ``x.y``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _first_party_closure(module: str) -> dict[str, set[str]]:
    """The service modules ``module`` imports, transitively, each with its own imports."""
    seen: dict[str, set[str]] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / name.replace(".", "/") / "__init__.py"
        if not path.exists():
            continue  # ``from package import name`` where name is not a module
        seen[name] = _imports(path)
        todo += [imported for imported in seen[name] if imported.split(".")[0] == "service"]
    return seen


def test_release_path_imports_no_random_number_generator() -> None:
    """Given the public release module and every service module it imports, transitively
    Then none imports ``random``, ``numpy.random`` (or ``secrets``): noise comes from OpenDP only.
    And, as a check that the walk sees imports at all, the synthetic-data module is caught."""
    closure = _first_party_closure("service.statistics.public.dp")
    assert "service.statistics.policy" in closure
    assert "opendp.prelude" in closure["service.statistics.public.dp"]
    for module, imports in closure.items():
        bad = {name for name in imports if name in FORBIDDEN_MODULES or name.startswith("numpy.random")}
        assert not bad, f"{module} imports {bad}"
    assert "service.statistics.synthetic" not in closure
    synthetic = _first_party_closure("service.statistics.synthetic")["service.statistics.synthetic"]
    assert "numpy" in synthetic  # it draws from numpy's generator, which is why dp must not import it


def test_no_column_finer_than_land_and_month() -> None:
    """Given a dashboard snapshot and a public release of synthetic data
    Then every dimension is one of the catalogue's (month, quarter, year, Land, codes), none names a finer
    unit, Land values are the 16 two-digit codes and month values are "YYYY-MM"."""
    rows = generate("2025-12", seed=2)
    snapshot = build_snapshot(rows, "2025-02", [], domains(), statistics_policy().coordinator)
    dims = {d for table in snapshot.as_json()["tables"] for d in table["dimensions"]}
    dims |= {d for table in TABLES for d in table.dimensions}
    assert dims <= DIMENSIONS
    assert not [d for d in DIMENSIONS if FINER_THAN_LAND_OR_MONTH.search(d)]
    truth = compute_catalogue(rows, "2025-06", domains())
    for table in TABLES:
        for key in truth.tables[table.id]:
            for dimension, value in zip(table.dimensions, key, strict=True):
                if dimension == "land":
                    assert value in domains().lands
                if dimension == "month":
                    assert re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value)
    public = release(rows, 2025, statistics_policy().public, domains()).as_json()
    for public_table in public["tables"]:
        assert public_table["by"] in {"month", "type", "land", "office", "channel", "severity"}
        assert set(public_table["cells"][0]) == {"key", "value", "raw", "half_width"}
        if public_table["by"] == "land":
            assert [c["key"] for c in public_table["cells"]] == list(domains().lands)
        if public_table["by"] == "month":
            assert all(re.fullmatch(r"2025-(0[1-9]|1[0-2])", c["key"]) for c in public_table["cells"])


def test_the_public_release_and_the_dashboard_do_not_import_each_other() -> None:
    """Given the two halves of the package, service/statistics/public and service/statistics/dashboard
    Then neither imports the other: the public release never reads the coordinators' exact figures, and the
    dashboard does not depend on the release (what they share is at the top of service/statistics)."""
    for half, other in (("public", "dashboard"), ("dashboard", "public")):
        paths = sorted((ROOT / "service" / "statistics" / half).glob("*.py"))
        assert len(paths) > 5, half
        for path in paths:
            crossing = {name for name in _imports(path) if name.startswith(f"service.statistics.{other}")}
            assert not crossing, f"{path.relative_to(ROOT)} imports {crossing}"
