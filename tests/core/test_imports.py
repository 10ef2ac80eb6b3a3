"""Each module imports on its own: a circular import shows in some import orders only."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import service

SCRIPT = "import importlib, sys\nimportlib.import_module(sys.argv[1])\n"


def test_every_service_module_imports_on_its_own() -> None:
    names = [
        module.name
        for module in pkgutil.walk_packages(service.__path__, "service.")
        if ".migrations" not in module.name
    ]
    assert len(names) > 40
    for name in names:
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT, name], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{name}: {result.stderr[-300:]}"


def test_the_api_process_does_not_load_the_statistics_engines_libraries() -> None:
    # The api only reads stored snapshots and releases; numpy, scipy and OpenDP (about 60 MB of RSS) are
    # imported where snapshots and releases are computed (worker, CLI). bench/memory.py measures the RSS.
    probe = (
        "import sys, service.app\nprint(sorted(m for m in ('numpy', 'scipy', 'opendp') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
