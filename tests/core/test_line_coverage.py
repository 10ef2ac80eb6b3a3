"""`make test`'s line coverage (tools/line_coverage.py): the slipcover workaround and the floor check.

The whole suite runs under the tool, so a wrapper that broke imports would fail every module; these tests pin
what the wrapper must do and show that slipcover's own wrapper still needs it (when a release fixes it, the
negative control fails and the workaround can go).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from importlib import _bootstrap_external
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest
import slipcover
import slipcover.importer

from tools import line_coverage

PYTHONS_OWN = _bootstrap_external.spec_from_file_location
TESTS = Path(__file__).resolve().parent.parent


class Recorder:
    """Stands in for slipcover's wrapper: records what it was asked for, answers as Python would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    def __call__(self, name: str, location: str | None = None, **kwargs: object) -> ModuleSpec | None:
        self.calls.append((name, kwargs))
        return PYTHONS_OWN(name, location, **kwargs)  # type: ignore[arg-type]


def test_a_package_loaded_by_path_keeps_its_path() -> None:
    measured = Recorder()
    spec = line_coverage._package_safe(PYTHONS_OWN, measured)("tests", str(TESTS / "__init__.py"))

    assert spec is not None
    assert spec.submodule_search_locations == [str(TESTS)]
    assert measured.calls == []


def test_a_module_loaded_by_path_goes_through_slipcover() -> None:
    measured = Recorder()
    path = str(TESTS / "core" / "test_line_coverage.py")
    spec = line_coverage._package_safe(PYTHONS_OWN, measured)("probe", path)

    assert spec is not None
    assert spec.origin == path
    assert [name for name, _ in measured.calls] == ["probe"]


def test_explicit_search_locations_are_passed_on_unchanged() -> None:
    measured = Recorder()
    line_coverage._package_safe(PYTHONS_OWN, measured)(
        "probe", str(TESTS / "__init__.py"), submodule_search_locations=["/nowhere"]
    )

    assert measured.calls == [("probe", {"loader": None, "submodule_search_locations": ["/nowhere"]})]


def test_slipcovers_own_wrapper_still_drops_a_packages_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: without the workaround, pytest's packages would have no ``__path__``."""
    monkeypatch.setattr(importlib.util, "spec_from_file_location", PYTHONS_OWN)
    slipcover.importer.wrap_spec_from_file_location(slipcover.Slipcover(), slipcover.FileMatcher())

    spec = importlib.util.spec_from_file_location("tests", str(TESTS / "__init__.py"))

    assert spec is not None
    assert spec.submodule_search_locations is None


def test_the_installed_wrapper_keeps_packages_and_measures_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "spec_from_file_location", PYTHONS_OWN)
    monkeypatch.setattr(slipcover, "wrap_spec_from_file_location", slipcover.wrap_spec_from_file_location)
    line_coverage.install_package_safe_wrapper()
    matcher = slipcover.FileMatcher(sources=[str(TESTS / "core")])
    slipcover.wrap_spec_from_file_location(slipcover.Slipcover(), matcher)

    package = importlib.util.spec_from_file_location("tests", str(TESTS / "__init__.py"))
    module = importlib.util.spec_from_file_location("probe", str(TESTS / "core" / "test_line_coverage.py"))

    assert package is not None
    assert package.submodule_search_locations == [str(TESTS)]
    assert module is not None
    assert type(module.loader).__name__ == "SlipcoverLoader"


def report(tmp_path: Path, covered: int, missing: int) -> Path:
    path = tmp_path / "coverage.json"
    summary = {"covered_lines": covered, "missing_lines": missing}
    path.write_text(json.dumps({"files": {}, "summary": summary}))
    return path


def floor(tmp_path: Path, percent: str) -> Path:
    path = tmp_path / "coverage-floor"
    path.write_text(percent + "\n")
    return path


def test_check_passes_at_or_above_the_floor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert line_coverage.check(report(tmp_path, 950, 50), floor(tmp_path, "95")) == 0
    assert "coverage: 95.0 % of the lines of service/ and workers/ (floor 95 %)" in capsys.readouterr().out


def test_check_fails_below_the_floor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    floor_path = floor(tmp_path, "96")

    assert line_coverage.check(report(tmp_path, 949, 51), floor_path) == 1
    assert f"coverage 94.9 % is below the floor 96 % ({floor_path})" in capsys.readouterr().out


def test_check_compares_the_total_as_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert line_coverage.check(report(tmp_path, 9496, 504), floor(tmp_path, "95")) == 0
    assert "coverage: 95.0 %" in capsys.readouterr().out


def test_check_fails_without_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert line_coverage.check(tmp_path / "absent.json", floor(tmp_path, "95")) == 1
    assert "no report" in capsys.readouterr().out


def test_main_runs_slipcover_on_a_fresh_report_and_passes_its_exit_code_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import slipcover.__main__

    stale = tmp_path / "coverage.json"
    stale.write_text("{}")
    seen: list[list[str]] = []

    def slipcover_main() -> int:
        seen.append(list(sys.argv))
        assert not stale.exists()  # an earlier run's report is gone before this run starts
        return 3

    monkeypatch.setattr(line_coverage, "REPORT", stale)
    monkeypatch.setattr(slipcover, "wrap_spec_from_file_location", slipcover.wrap_spec_from_file_location)
    monkeypatch.setattr(slipcover.__main__, "main", slipcover_main)
    monkeypatch.setattr(sys, "argv", sys.argv)

    assert line_coverage.main(["-m", "pytest", "-q"]) == 3
    assert seen == [["slipcover", "--out", str(stale), "-m", "pytest", "-q"]]


def test_outside_a_measured_worker_nothing_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    from slipcover import pytest_plugin

    monkeypatch.setattr(pytest_plugin, "_slipcover_instance", None)
    monkeypatch.setattr(importlib.util, "spec_from_file_location", PYTHONS_OWN)

    line_coverage.measure_files_loaded_by_path_in_worker()

    assert importlib.util.spec_from_file_location is PYTHONS_OWN


def test_without_slipcover_installed_nothing_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pytest` run by hand in an environment without slipcover: conftest's hook must not fail."""
    # None in sys.modules makes an import raise ImportError; the package too, since `from slipcover import
    # pytest_plugin` finds an imported submodule as the package's attribute without asking sys.modules.
    monkeypatch.setitem(sys.modules, "slipcover", None)
    monkeypatch.setitem(sys.modules, "slipcover.pytest_plugin", None)
    monkeypatch.setattr(importlib.util, "spec_from_file_location", PYTHONS_OWN)

    line_coverage.measure_files_loaded_by_path_in_worker()

    assert importlib.util.spec_from_file_location is PYTHONS_OWN
