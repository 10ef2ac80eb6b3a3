"""No untyped value crosses a module boundary in ``service/`` (issue 17).

A public function (its name has no leading underscore), a public method of a public class, or a public
module constant or class attribute has no ``Any`` in its annotations: a case file, a template's context, a
JSON body or a routing decision that leaves its module has a shape mypy checks (a dataclass, a TypedDict, a
pydantic model). Private helpers inside one module may build dictionaries; what they return to a public
function is typed there.

The exceptions are the edges where the value is untyped by nature, each with its reason. A new public
``Any`` fails here until it is typed or listed with a reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"

# qualified name ("package/module.py:Class.name") → why the value has no static shape.
_JSON = "a parsed JSON or YAML document: untyped until it is validated into a model, which its callers do"
_FASTAPI = "FastAPI's own annotation for an OpenAPI `responses` entry (dict[int | str, dict[str, Any]])"
_ROUTE = "an endpoint of any signature, as FastAPI's APIRoute takes it (its own annotation)"
ALLOWED: dict[str, str] = {
    "errors.py:error_responses": _FASTAPI,
    "evidence/attachments.py:DOWNLOAD_RESPONSE": _FASTAPI,
    "strict_json.py:loads": _JSON,
    "yaml_load.py:safe_load": _JSON,
    "taxonomy/files.py:read_yaml": _JSON,
    "taxonomy/files.py:format_path": "walks the raw YAML of a policy to name the item an error is in",
    "taxonomy/files.py:problems_from_validation": "the raw YAML that pydantic refused, to name its items",
    "web.py:StrictRequest.json": "Starlette's Request.json, overridden: the strictly parsed JSON body",
    "web.py:StrictRoute.__init__": _ROUTE,
    "web.py:StrictRoute.get_route_handler": "APIRoute's own signature (Coroutine[Any, Any, Response])",
    "web.py:body_kind_of": _ROUTE,
}


def _mentions_any(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id == "Any":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Any":
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "Any" in node.value:
            return True
    return False


def _public(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _untyped(body: list[ast.stmt], where: str, prefix: str) -> Iterator[str]:
    for node in body:
        if isinstance(node, ast.ClassDef) and _public(node.name):
            yield from _untyped(node.body, where, f"{prefix}{node.name}.")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _public(node.name):
            arguments = node.args
            annotated = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            annotated += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            if _mentions_any(node.returns) or any(_mentions_any(a.annotation) for a in annotated):
                yield f"{where}:{prefix}{node.name}"
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
            if _public(name) and _mentions_any(node.annotation):
                yield f"{where}:{prefix}{name}"


def untyped_boundaries() -> set[str]:
    found: set[str] = set()
    for path in SERVICE.rglob("*.py"):
        where = path.relative_to(SERVICE).as_posix()
        if where.startswith("migrations/versions/"):
            continue
        found |= set(_untyped(ast.parse(path.read_text(encoding="utf-8")).body, where, ""))
    return found


def test_no_untyped_value_leaves_a_module_of_the_service() -> None:
    unexpected = sorted(untyped_boundaries() - ALLOWED.keys())
    assert not unexpected, "typed it, or list it in ALLOWED with the reason: " + ", ".join(unexpected)


def test_every_listed_exception_still_exists() -> None:
    """A stale entry would let a new untyped value of the same name through unnoticed."""
    assert not sorted(ALLOWED.keys() - untyped_boundaries())


def test_the_scan_sees_what_it_looks_for() -> None:
    """Negative control: the scanner finds each kind of untyped boundary it is meant to find."""
    source = """
from typing import Any
LIMITS: dict[str, Any] = {}
def view(case: object) -> dict[str, Any]: ...
def render(**context: Any) -> str: ...
class Page:
    rows: list[dict[str, Any]]
    def as_json(self) -> "dict[str, Any]": ...
def _private(x: Any) -> Any: ...
class _Hidden:
    def shown(self) -> Any: ...
"""
    found = set(_untyped(ast.parse(source).body, "m.py", ""))
    assert found == {"m.py:LIMITS", "m.py:view", "m.py:render", "m.py:Page.rows", "m.py:Page.as_json"}
