"""No two feature packages of ``service`` import each other, directly or through a third (issue 17).

The graph is read from the source with ``ast`` (nothing is imported): a node is a feature package (a direct
subfolder of ``service/`` with an ``__init__.py``) or a shared module at the top of ``service/``; every
``import`` counts, at the top of a module, inside a function or under ``TYPE_CHECKING``, because a lazy
import hides an edge from the import order, not from the design.

Shared infrastructure (``config``, ``db``, ``errors``, ``web``, ``deps``, ``i18n``, ``display``,
``strict_json``, ``migrate``, ``health``) is part of the graph as nodes of their own: features may import it, and
when infrastructure imports a feature (``web`` reads the session and the legal links), a feature that imports
``web`` depends on that feature too, so the path counts. The composition roots are left out: ``runtime``,
``cli_runtime``, ``app``, ``cli``, ``supervisor``, ``models`` (every table for the metadata), ``demo`` and
``demo_year`` wire or seed every feature on purpose; an edge to them would make everything one cycle and says
nothing about the edges between features. ``migrations`` is history, not code that runs with the rest.

Cycles that remain are listed below, edge by edge: the list may only shrink. An edge that is gone must leave
the list (the test says which), and a new edge on a cycle fails the test.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"

# Wire or seed every feature; see the module docstring.
COMPOSITION_ROOTS = frozenset(
    {"runtime", "cli_runtime", "app", "cli", "supervisor", "models", "demo", "demo_year", "migrations"}
)

# Edges (importer -> imported) that still lie on a cycle. Shrinking only: remove an edge here when it is gone.
KNOWN_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()


def nodes() -> set[str]:
    packages = {path.name for path in SERVICE.iterdir() if (path / "__init__.py").is_file()}
    modules = {path.stem for path in SERVICE.glob("*.py") if path.stem != "__init__"}
    return (packages | modules) - COMPOSITION_ROOTS


def imported_names(tree: ast.AST, package: list[str]) -> list[tuple[str, int]]:
    """Dotted names a module imports, relative imports resolved against its package."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            # `from service import cases` names the package in the alias, not in the module.
            found += [(module, node.lineno)] + [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def import_graph() -> dict[str, dict[str, list[str]]]:
    """importer -> imported -> where (file:line), between the nodes only."""
    known = nodes()
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(SERVICE.rglob("*.py")):
        relative = path.relative_to(SERVICE)
        source = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        if source not in known:
            continue
        package = ["service", *relative.parts[:-1]]
        for name, line in imported_names(ast.parse(path.read_text(encoding="utf-8")), package):
            parts = name.split(".")
            if parts[0] != "service" or len(parts) < 2:
                continue
            target = parts[1]
            if target in known and target != source:
                graph[source][target].append(f"service/{relative}:{line}")
    return graph


def strongly_connected(graph: dict[str, dict[str, list[str]]]) -> list[set[str]]:
    """Tarjan's components with more than one node: each is a set of packages that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(set(graph) | {target for targets in graph.values() for target in targets}):
        if node not in index:
            visit(node)
    return components


def cycle_edges(graph: dict[str, dict[str, list[str]]]) -> dict[tuple[str, str], list[str]]:
    """Every edge whose two ends lie in one component, i.e. every edge on some cycle."""
    found: dict[tuple[str, str], list[str]] = {}
    for component in strongly_connected(graph):
        for source in component:
            for target, where in graph[source].items():
                if target in component:
                    found[(source, target)] = where
    return found


def describe(edges: dict[tuple[str, str], list[str]]) -> str:
    return "\n".join(f"  {a} -> {b}: {', '.join(where[:3])}" for (a, b), where in sorted(edges.items()))


def test_the_graph_sees_the_known_edges() -> None:
    # A reader that found nothing would pass the test below; these edges are meant to stay.
    graph = import_graph()
    assert "crypto" in graph["cases"]
    assert "evidence" in graph["reports"]
    assert "runtime" not in graph["cases"]


def test_no_feature_packages_import_each_other() -> None:
    found = cycle_edges(import_graph())
    new = {edge: where for edge, where in found.items() if edge not in KNOWN_CYCLE_EDGES}
    gone = sorted(KNOWN_CYCLE_EDGES - set(found))
    assert not new, "edges on an import cycle (fix them, do not list them):\n" + describe(new)
    assert not gone, f"no longer on a cycle, remove from KNOWN_CYCLE_EDGES: {gone}"
