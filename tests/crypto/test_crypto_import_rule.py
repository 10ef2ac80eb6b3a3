"""Project rule: only service/crypto/ may use cryptography.hazmat."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = ROOT / "service" / "crypto"
FORBIDDEN = "cryptography.hazmat"


def _is_forbidden(name: str) -> bool:
    return name == FORBIDDEN or name.startswith(FORBIDDEN + ".")


def offending_lines(source: str) -> list[int]:
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # importlib.import_module("cryptography.hazmat...") would dodge a check of import statements.
            names = [node.value]
        if any(_is_forbidden(name) for name in names):
            lines.append(getattr(node, "lineno", 0))
    return lines


def scanned_files() -> list[Path]:
    files = [path for folder in ("service", "workers") for path in sorted((ROOT / folder).rglob("*.py"))]
    return [path for path in files if ALLOWED not in path.parents]


def test_scan_sees_the_project() -> None:
    """Given the repository, the scan covers real files (an empty scan would pass vacuously)."""
    assert (ALLOWED / "__init__.py").is_file()
    assert (ROOT / "service" / "__init__.py") in scanned_files()


def test_only_service_crypto_imports_cryptography_hazmat() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in scanned_files()
        for line in offending_lines(path.read_text(encoding="utf-8"))
    ]
    assert not offences, f"cryptography.hazmat is used outside service/crypto/: {offences}"


@pytest.mark.parametrize(
    "source",
    [
        "import cryptography.hazmat.primitives.hashes\n",
        "from cryptography.hazmat.primitives import hashes\n",
        "from cryptography import hazmat\n",
        "import importlib\nimportlib.import_module('cryptography.hazmat.primitives')\n",
    ],
)
def test_the_check_catches_each_form(source: str) -> None:
    assert offending_lines(source)


def test_the_check_allows_the_crypto_package_and_plain_cryptography() -> None:
    assert not offending_lines("import cryptography\nfrom service.crypto import seal\nfrom . import hazmat\n")
