"""Each module imports on its own: a circular import shows in some import orders only.

Each module of the service is imported in a process in which no other module of ``service`` or ``workers``
has been imported, as in a fresh interpreter. A fresh interpreter per module cost two to four CPU minutes
(150 modules, each loading FastAPI, SQLAlchemy, pydantic, Celery anew): instead one interpreter loads the
libraries the service uses (found by importing every module once in another process) and forks a child per
module. The fork starts from the libraries only, so the order in which the service's own modules load, the
thing a circular import depends on, is the same as in a fresh interpreter.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import service

# Imports every module named in argv; prints the other modules it then has (libraries, standard library).
LIBRARIES = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
ours = ("service", "workers")
print("\\n".join(sorted(m for m in sys.modules if m.split(".")[0] not in ours and m != "__main__")))
"""

# Loads the libraries read from stdin, then forks a child per module named in argv that imports just it.
FORKED = """
import importlib, os, sys, traceback
for library in sys.stdin.read().split():
    try:
        importlib.import_module(library)
    except Exception:
        pass  # the child loads it itself, as a fresh interpreter would
ours = ("service", "workers")
assert not [m for m in sys.modules if m.split(".")[0] in ours], "a library loaded a module of ours"
failed = 0
for name in sys.argv[1:]:
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            sys.stderr.write(f"{name}: {traceback.format_exc()[-300:]}\\n")
            sys.stderr.flush()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    failed += status != 0
sys.exit(1 if failed else 0)
"""


def test_every_service_module_imports_on_its_own() -> None:
    names = [
        module.name
        for module in pkgutil.walk_packages(service.__path__, "service.")
        if ".migrations" not in module.name
    ]
    assert len(names) > 40
    libraries = subprocess.run(
        [sys.executable, "-c", LIBRARIES, *names], capture_output=True, text=True, check=True
    ).stdout
    assert "sqlalchemy.orm" in libraries.split()
    result = subprocess.run(
        [sys.executable, "-c", FORKED, *names], input=libraries, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_api_process_does_not_load_the_statistics_engines_libraries() -> None:
    # The api only reads stored snapshots and releases; numpy, scipy and OpenDP (about 60 MB of RSS) are
    # imported where snapshots and releases are computed (worker, CLI). bench/memory.py measures the RSS.
    probe = (
        "import sys, service.app\nprint(sorted(m for m in ('numpy', 'scipy', 'opendp') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
