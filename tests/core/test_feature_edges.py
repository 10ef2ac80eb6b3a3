"""No two feature packages of ``service`` import each other, directly or through a third (issue 17).

The graph is read from the source with ``ast`` (nothing is imported): a node is a feature package (a direct
subfolder of ``service/`` with an ``__init__.py``) or a shared module at the top of ``service/``; every
``import`` counts, at the top of a module, inside a function or under ``TYPE_CHECKING``, because a lazy
import hides an edge from the import order, not from the design.

Shared infrastructure is the modules at the top of ``service/``: ``config``, ``config_checks``, ``db``,
``db_raw``, ``errors``, ``web``, ``hardening``, ``error_handlers``, ``deps``, ``i18n``, ``display``,
``validation``, ``strict_json``, ``yaml_load``, ``migrate`` and ``health``; and the ``pdf`` package (the PDF
document the dossier, the letters and the knowledge feature's plans are set with). They are not features (no
tables or pages of their own, or one route with no feature behind it) but they are nodes all the same: when
infrastructure imports a feature (``web`` binds form tokens to the session of ``auth`` and fills in the links
of ``legal``), a feature that imports ``web`` depends on that feature too, and the path counts. The
composition roots are left out: ``runtime``, ``cli_runtime``, ``app``, ``cli``, ``supervisor``, ``models``
(every table for the metadata), ``demo`` and ``demo_year`` wire or seed every feature on purpose; an edge to
them would make everything one cycle and say nothing about the edges between features. ``migrations`` is
history, not code that runs with the rest.

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

# Edges (importer -> imported) that still lie on a cycle. When this test was written there was one
# component of fourteen nodes and 65 edges (web, legal, reports, retention and notifications in it); it is
# down to none. Shrinking only: a new edge on a cycle fails the test, and an edge that is gone must
# leave the list. The identity knot (auth <-> organisations <-> audit) is undone: accounts, memberships and
# key custody live in ``identity`` below auth and organisations, and the audit log imports no feature (see
# the layering test at the end); evidence and the PDF document sit below cases, dossier and knowledge; the
# statistics extract (the row the intake and casework write and statistics reads) lives in ``extract``
# below cases, so statistics is on no cycle.
# The last knot was cases <-> dossier, matching: cases imports neither any more (the letters and the
# matching's panel reach the case page through service/cases/panels.py, wired by the runtime), so no
# feature package lies on a cycle; the list stays, empty, for the rule.
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
            found += [(module, node.lineno)] + [
                (f"{module}.{alias.name}", node.lineno) for alias in node.names
            ]
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
            where = f"service/{relative}:{line}"
            if target in known and target != source and where not in graph[source][target]:
                graph[source][target].append(where)
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


def test_cases_does_not_import_reports() -> None:
    # The intake (reports) builds on the case file; the case file knows nothing of the intake. Shared checks
    # live in service/validation.py, the identifier shape in service/matching/schemas.py, case rows (lock,
    # key holders, deletion) in service/cases/repository.py.
    graph = import_graph()
    assert "reports" not in graph["cases"], graph["cases"].get("reports")
    assert "cases" in graph["reports"]


def test_the_intake_retention_and_the_web_plumbing_are_on_no_cycle() -> None:
    # Freed from the component in issue 17; kept free by the test above, said here by name. The web plumbing
    # takes the form-token and session-cookie format from service/csrf.py and service/session_cookie.py and
    # the footer links from service/legal_links.py, so no feature is below it.
    on_cycles = {node for edge in cycle_edges(import_graph()) for node in edge}
    assert not {"reports", "retention", "notifications", "web", "legal"} & on_cycles


def test_evidence_and_the_pdf_document_are_on_no_cycle() -> None:
    # Freed in issue 17: the attachment row and its queries live in evidence (models, repository), which
    # cases, dossier, reports and retention import and which imports none of them; the PDF document the
    # dossier, the letters and the knowledge feature's plans are set with is service/pdf, below all three.
    on_cycles = {node for edge in cycle_edges(import_graph()) for node in edge}
    assert not {"evidence", "pdf"} & on_cycles


def test_cases_imports_neither_the_dossier_nor_the_matching() -> None:
    # Freed in issue 17: the features built on cases add to the case page through the protocols of
    # service/cases/panels.py, which the runtime wires; the sealed perpetrator identifiers are part of the
    # case file (service/cases/identifiers.py). With knowledge freed of it too, the dossier is on no cycle.
    graph = import_graph()
    assert "dossier" not in graph["cases"], graph["cases"].get("dossier")
    assert "matching" not in graph["cases"], graph["cases"].get("matching")
    on_cycles = {node for edge in cycle_edges(import_graph()) for node in edge}
    assert "dossier" not in on_cycles


def test_the_identity_layer_and_the_audit_log_sit_below_the_features() -> None:
    # The layers of the identity knot (issue 17): the audit log imports no feature (``audit tail --actor``
    # finds an account through the runtime); ``identity`` (accounts, organisations, memberships, key custody)
    # imports the audit log and nothing above; ``auth`` builds on identity, ``organisations`` (the pages of
    # leads and administrators) on auth, ``cases`` on both.
    graph = import_graph()
    features = {"auth", "organisations", "identity", "cases", "matching", "dossier", "reports"}
    assert not features & set(graph["audit"]), graph["audit"]
    assert set(graph["identity"]) <= {"audit", "crypto", "db", "db_raw", "config", "errors", "i18n"}, graph[
        "identity"
    ]
    assert not {"organisations", "cases"} & set(graph["auth"]), graph["auth"]
    assert "cases" not in graph["organisations"], graph["organisations"]


def test_the_statistics_extract_keeps_statistics_off_the_cycles() -> None:
    # The extract row is written by the intake and casework and read by statistics: it lives in
    # service/extract/, below all of them, so casework never imports the statistics engine (issue 17).
    graph = import_graph()
    assert "statistics" not in graph["cases"], graph["cases"].get("statistics")
    assert "extract" in graph["cases"]
    assert set(graph["extract"]) <= {"db", "taxonomy"}, dict(graph["extract"])
    on_cycles = {node for edge in cycle_edges(graph) for node in edge}
    assert not {"statistics", "knowledge", "extract"} & on_cycles
