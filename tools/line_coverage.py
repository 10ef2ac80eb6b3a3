"""Line coverage for `make test`: slipcover runs pytest, then `--check` holds the total against its floor.

Why slipcover and not coverage.py: on Python 3.11 coverage.py traces with ``sys.settrace``, which calls it on
every function call of every library and on every line of ours; on this 2-core machine the suite took 11 min
42 s with it and 8 min 20 s without. slipcover instruments the bytecode of ``service/`` and ``workers/`` only
and removes each probe once its line has run: the same suite took 8 min 44 s, and the two tools found the
same lines run (they differed on 27 of about 19,000, on paths whose taking depends on timing or on
Hypothesis's examples). Settings are pyproject's ``[tool.slipcover]``.

    python -m tools.line_coverage -m pytest ARGS...   # run pytest measured; writes .coverage.json
    python -m tools.line_coverage --check             # print the total, fail below .ci/coverage-floor

slipcover 1.1.0's wrapper of ``importlib.util.spec_from_file_location`` (which lets it measure files loaded
by path, like Alembic's ``env.py``) passes ``submodule_search_locations=None`` where Python's default asks the
loader whether the file is a package: a package loaded by path then has no ``__path__``. pytest loads the test
packages that way (``--import-mode=importlib``), and ``from tests.support import …`` fails. ``_package_safe``
puts the default back for packages.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / ".coverage.json"
FLOOR = ROOT / ".ci" / "coverage-floor"


_DEFAULT = object()


SpecFinder = Callable[..., ModuleSpec | None]


def _package_safe(python: SpecFinder, measured: SpecFinder) -> SpecFinder:
    """``spec_from_file_location``: slipcover's for modules, Python's (with ``__path__``) for packages."""

    def spec_from_file_location(
        name: str,
        location: str | None = None,
        *,
        loader: object = None,
        submodule_search_locations: object = _DEFAULT,
    ) -> ModuleSpec | None:
        if submodule_search_locations is not _DEFAULT:
            return measured(
                name, location, loader=loader, submodule_search_locations=submodule_search_locations
            )
        spec = python(name, location, loader=loader)
        if spec is None or spec.submodule_search_locations is not None:
            return spec  # a package: Python's own spec, with its __path__ (not measured: only tests/ load so)
        return measured(name, location, loader=loader)

    return spec_from_file_location


def install_package_safe_wrapper() -> None:
    """Replace slipcover's wrapper step by one that installs its wrapper behind ``_package_safe``."""
    import slipcover
    import slipcover.importer

    slipcover_wrap = slipcover.importer.wrap_spec_from_file_location

    def wrap(sci: object, file_matcher: object) -> None:
        python = importlib.util.spec_from_file_location
        slipcover_wrap(sci, file_matcher)
        importlib.util.spec_from_file_location = _package_safe(python, importlib.util.spec_from_file_location)

    slipcover.wrap_spec_from_file_location = wrap


def total(report: dict[str, object]) -> float:
    summary = report["summary"]
    assert isinstance(summary, dict)
    covered, missing = int(summary["covered_lines"]), int(summary["missing_lines"])
    return 100.0 * covered / (covered + missing) if covered + missing else 100.0


def check(report_path: Path = REPORT, floor_path: Path = FLOOR) -> int:
    if not report_path.is_file():
        print(f"coverage: no report at {report_path} (did the measured run end early?)")
        return 1
    percent = total(json.loads(report_path.read_text()))
    floor = float(floor_path.read_text())
    print(f"coverage: {percent:.1f} % of the lines of service/ and workers/ (floor {floor:g} %)")
    if percent < floor:
        print(f"coverage {percent:.1f} % is below the floor {floor:g} % ({floor_path.relative_to(ROOT)})")
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        return check()
    REPORT.unlink(missing_ok=True)  # a report left by an earlier run must not pass for this one's
    install_package_safe_wrapper()
    import slipcover.__main__

    sys.argv = ["slipcover", *argv]
    code = slipcover.__main__.main()
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
