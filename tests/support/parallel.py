"""How `make test` spreads the suite over pytest-xdist workers (``-n N --dist loadfile``).

Each test module runs whole on one worker, in its file order, as it would alone: module-scoped worlds are
built once, and a module whose last test checks what the ones before it did (tests/browser's
``test_every_page_was_checked``) still sees them. On top of xdist's own ``loadfile``:

- ``ONE_WORKER`` folders run whole on one worker, in collection order: tests/browser shares one live server
  (uvicorn, Celery worker and beat) and its accounts' TOTP steps across its modules, and one Chromium at a
  time is what two cores can carry next to the rest of the suite.
- ``LONGEST_FIRST`` units are handed out before all others: a long module handed out last would leave the
  other workers idle at the end. The list holds the units that take half a minute or more (wall time summed
  over their tests on four busy workers); anything not listed follows in collection order.
- ``ALONE`` units measure time against a bound (medians of a few hundred calls within 10 % of each other):
  they run last, when every other worker has finished, so that no other test competes for the two cores
  while they measure (on four busy workers such a median once came out 11 % apart).

Every session-scoped resource is per worker (tests/conftest.py, tests/notifications/conftest.py,
tests/browser/conftest.py): its own PostgreSQL cluster, Redis, SQLite template and live server, in folders
of its own (``tmp_path_factory`` or ``mkdtemp``), on ports from the worker's own block (``free_port``).
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

ONE_WORKER = ("tests/browser/",)

# Longest first, as measured on the 2-core machine with four workers (seconds per unit, wall time summed over
# the unit's tests, session 11, without coverage (slipcover adds about 5 %); noisy, the order is what counts).
LONGEST_FIRST = (
    "tests/browser/",  # (257)
    "tests/authz/test_authorization_matrix.py",  # (172)
    "tests/cases/test_case_pages.py",  # (145)
    "tests/fuzz/test_openapi_contract.py",  # (114)
    "tests/statistics/test_dashboard.py",  # (94: a year of synthetic snapshots, built once)
    "tests/notifications/test_worker.py",  # (75)
    "tests/notifications/test_dispatch.py",  # (72)
    "tests/fuzz/test_hostile_uploads.py",  # (57)
    "tests/system/test_canary_everywhere.py",  # (49)
    "tests/notifications/test_faults.py",  # (47)
    "tests/statistics/test_dp.py",  # (45)
    "tests/fuzz/test_hostile_text.py",  # (36)
    "tests/auth/test_lockout.py",  # (36)
    "tests/core/test_imports.py",  # (35)
    "tests/core/test_demo_year.py",  # (33)
)


ALONE = ("tests/reports/test_receipt_timing.py",)


class ModuleScheduling(LoadScopeScheduling):
    """``--dist loadfile`` with the ``ONE_WORKER`` folders as one unit each, ``LONGEST_FIRST`` first and the
    ``ALONE`` units last, on the one worker left.

    A worker runs the last test it was sent only when it gets more or is told to shut down (xdist decides the
    teardown of a module by the test that follows), so "every other worker has finished" is reached by
    shutting the others down once each has at most that one test left, and handing the ``ALONE`` units to
    the remaining worker when the last of the others is gone (``remove_node``).
    """

    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        # xdist's reordering puts the units with the most tests first: not the longest ones here.
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return next((folder for folder in ONE_WORKER if path.startswith(folder)), path)

    def _only_alone_left(self) -> bool:
        return bool(self.workqueue) and all(unit in ALONE for unit in self.workqueue)

    def _assign_work_unit(self, node: Any) -> None:
        if not self.workqueue or node.shutting_down:
            return
        if self._only_alone_left():
            self._hand_out_alone(node)
            return
        ready = [unit for unit in self.workqueue if unit not in ALONE]
        first = next((unit for unit in LONGEST_FIRST if unit in ready), ready[0])
        self.workqueue.move_to_end(first, last=False)
        super()._assign_work_unit(node)

    def _hand_out_alone(self, node: Any) -> None:
        if any(self._pending_of(work) > 1 for work in self.assigned_work.values()):
            return  # others still run tests: this worker waits with its last one
        others = [other for other in self.nodes if other is not node]
        if not others:
            super()._assign_work_unit(node)
            return
        for other in others:
            if not other.shutting_down:
                other.shutdown()

    def remove_node(self, node: Any) -> str | None:
        crashed: str | None = super().remove_node(node)
        if self._only_alone_left() and len(self.nodes) == 1:
            [last] = self.nodes
            if not last.shutting_down and self._pending_of(self.assigned_work[last]) <= 1:
                super()._assign_work_unit(last)
        return crashed
