"""Line coverage for `make test`: slipcover runs pytest, then `--check` holds the total against its floor.

Why slipcover and not coverage.py: on Python 3.11 coverage.py traces with ``sys.settrace``, which calls it on
every function call of every library and on every line of ours; on this 2-core machine the suite took 11 min
42 s with it and 8 min 20 s without. slipcover instruments the bytecode of ``service/`` and ``workers/`` only
and removes each probe once its line has run: the same suite took 8 min 44 s, and the two tools found the
same lines run (they differed on 27 of about 19,000: 20 of them Alembic's ``env.py``, which the workers now
measure too, see below, the others on paths whose taking depends on timing or on Hypothesis's examples).
Settings are pyproject's ``[tool.slipcover]``.

    python -m tools.line_coverage -m pytest ARGS...   # run pytest measured; writes .coverage.json
    python -m tools.line_coverage --check             # print the total, fail below .ci/coverage-floor

slipcover 1.1.0's wrapper of ``importlib.util.spec_from_file_location`` (which lets it measure files loaded
by path, like Alembic's ``env.py``) passes ``submodule_search_locations=None`` where Python's default asks the
loader whether the file is a package: a package loaded by path then has no ``__path__``. pytest loads the test
packages that way (``--import-mode=importlib``), and ``from tests.support import …`` fails. ``_package_safe``
puts the default back for packages. slipcover installs that wrapper only where its ``__main__`` runs, which
under pytest-xdist runs no test: ``measure_files_loaded_by_path_in_worker`` adds it in each worker.
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


def measure_files_loaded_by_path_in_worker() -> None:
    """In a pytest-xdist worker, also measure files loaded by path (Alembic's ``env.py``).

    slipcover's pytest plugin starts measuring imports in each worker as it is loaded, but wraps
    ``spec_from_file_location`` only in the process its ``__main__`` runs in, which under xdist runs no test.
    Called from tests/conftest.py before any migration runs; does nothing outside a measured worker."""
    try:
        from slipcover import pytest_plugin
    except ImportError:  # a test environment without slipcover measures nothing, so has nothing to wrap
        return

    sci, matcher = pytest_plugin._slipcover_instance, pytest_plugin._file_matcher
    if sci is None or matcher is None:
        return
    install_package_safe_wrapper()
    import slipcover

    slipcover.wrap_spec_from_file_location(sci, matcher)


def total(report: dict[str, object]) -> float:
    summary = report["summary"]
    assert isinstance(summary, dict)
    covered, missing = int(summary["covered_lines"]), int(summary["missing_lines"])
    return 100.0 * covered / (covered + missing) if covered + missing else 100.0


def check(report_path: Path = REPORT, floor_path: Path = FLOOR) -> int:
    if not report_path.is_file():
        print(f"coverage: no report at {report_path} (did the measured run end early?)")
        return 1
    # One decimal, as printed: 94.96 % is "95.0 %" and meets a floor of 95 %.
    percent = round(total(json.loads(report_path.read_text())), 1)
    floor = float(floor_path.read_text())
    print(f"coverage: {percent:.1f} % of the lines of service/ and workers/ (floor {floor:g} %)")
    if percent < floor:
        print(f"coverage {percent:.1f} % is below the floor {floor:g} % ({floor_path})")
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        return check()
    REPORT.unlink(missing_ok=True)  # a report left by an earlier run must not pass for this one's
    install_package_safe_wrapper()
    import slipcover.__main__

    # The report goes where --check and the unlink above look, whatever the working directory.
    sys.argv = ["slipcover", "--out", str(REPORT), *argv]
    code = slipcover.__main__.main()
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
