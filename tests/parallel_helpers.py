"""How `make test` spreads the suite over pytest-xdist workers (``-n N --dist loadfile``).

Each test module runs whole on one worker, in its file order, as it would alone: module-scoped worlds are
built once, and a module whose last test checks what the ones before it did (tests/browser's
``test_every_page_was_checked``) still sees them. On top of xdist's own ``loadfile``:

- ``ONE_WORKER`` folders run whole on one worker, in collection order: tests/browser shares one live server
  (uvicorn, Celery worker and beat) and its accounts' TOTP steps across its modules, and one Chromium at a
  time is what two cores can carry next to the rest of the suite.
- ``LONGEST_FIRST`` units are handed out before all others: a long module handed out last would leave the
  other workers idle at the end. The list holds the units that take a minute or more (measured with
  ``--durations``); anything not listed follows in collection order.

Every session-scoped resource is per worker (tests/conftest.py, tests/notifications/conftest.py,
tests/browser/conftest.py): its own PostgreSQL cluster, Redis, SQLite template and live server, in folders
of its own (``tmp_path_factory`` or ``mkdtemp``), on ports from the worker's own block (``free_port``).
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

ONE_WORKER = ("tests/browser/",)

# Longest first, as measured on the 2-core machine with three workers (seconds per unit in parentheses;
# noisy, the order is what counts).
LONGEST_FIRST = (
    "tests/browser/",  # (375)
    "tests/statistics/test_dashboard.py",  # (190: a year of synthetic snapshots, built once)
    "tests/cases/test_case_pages.py",  # (150)
    "tests/fuzz/test_hostile_uploads.py",  # (125)
    "tests/authz/test_authorization_matrix.py",  # (105)
    "tests/fuzz/test_hostile_json.py",  # (100)
    "tests/organisations/test_key_custody_attacks.py",  # (85)
    "tests/notifications/test_worker.py",  # (80)
    "tests/notifications/test_dispatch.py",  # (80)
    "tests/system/test_canary_everywhere.py",  # (75)
    "tests/fuzz/test_hostile_text.py",  # (70)
    "tests/test_i18n.py",  # (65)
    "tests/statistics/test_dp.py",  # (60)
    "tests/fuzz/test_openapi_contract.py",  # (55)
    "tests/notifications/test_faults.py",  # (45)
    "tests/fuzz/test_nul_everywhere.py",  # (45)
)


class ModuleScheduling(LoadScopeScheduling):
    """``--dist loadfile`` with the ``ONE_WORKER`` folders as one unit each and ``LONGEST_FIRST`` first."""

    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        # xdist's reordering puts the units with the most tests first: not the longest ones here.
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return next((folder for folder in ONE_WORKER if path.startswith(folder)), path)

    def _assign_work_unit(self, node: Any) -> None:
        first = next((unit for unit in LONGEST_FIRST if unit in self.workqueue), None)
        if first is not None:
            self.workqueue.move_to_end(first, last=False)
        super()._assign_work_unit(node)
