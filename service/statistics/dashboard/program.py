"""The linear program the release gate's attacker builds and solves (``gate``): sparse rows over numbered
variables, equalities tagged with the shown cell they come from, solved with HiGHS
(scipy's, as ``scipy.optimize.linprog`` calls it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from service.statistics.dashboard.catalogue import Key

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from scipy.sparse import csr_matrix

# numpy and scipy are imported where the attack runs (snapshot builds in the worker and the CLI), not at
# import time: the api process only reads stored snapshots, and scipy alone costs it about 60 MB of RSS.

Expr = dict[int, float]
CellRef = tuple[str, Key]
# Tolerance for telling a binding constraint from one that is not.
_DUAL = 1e-9


class Program:
    """A linear program under construction: sparse rows, named variables, tagged equalities."""

    def __init__(self) -> None:
        self.size = 0
        self.eq: list[tuple[Expr, float, CellRef | None]] = []
        self.le: list[tuple[Expr, float]] = []

    def new(self) -> int:
        self.size += 1
        return self.size - 1

    def equal(self, expr: Expr, rhs: float, tag: CellRef | None = None) -> None:
        self.eq.append((expr, rhs, tag))

    def at_most(self, expr: Expr, rhs: float) -> None:
        self.le.append((expr, rhs))

    def union(self, total: int, parts: Sequence[int]) -> None:
        """Persons of a union: at least those of each part, at most their sum."""
        for part in parts:
            self.at_most({part: 1.0, total: -1.0}, 0.0)
        self.at_most({total: 1.0, **dict.fromkeys(parts, -1.0)}, 0.0)

    def partition(self, total: int, parts: Sequence[int], exact: bool) -> None:
        """Persons of a union of disjoint reporter sets add up; otherwise only the union bounds hold."""
        if exact:
            self.equal({total: 1.0, **dict.fromkeys(parts, -1.0)}, 0.0)
        else:
            self.union(total, parts)


class Solver:
    """A finished program as HiGHS takes it: the sparse matrices are built once, then each number is
    minimised and maximised over them.

    Each bound is what ``scipy.optimize.linprog(method="highs", bounds=(0, None))`` returns for the program,
    solved by the same HiGHS (scipy's) from the same arrays and options, in a new solver each time (no warm
    start: a warm-started model once gave other bounds under another hash seed). linprog rebuilt and
    re-validated the whole matrix for every number and then read every column's basis status in Python
    (a third of a gate run, which solves thousands of these); here the matrix is stacked once and only the
    objective changes. ``scipy.optimize._highspy._core`` is scipy's own, private binding of HiGHS (the lock
    pins scipy): tests/statistics/test_dashboard.py compares this solver with linprog on the largest program
    of its gates, so a scipy upgrade that changes either shows there.

    One branch differs on purpose: where HiGHS's presolve finds a number "unbounded or infeasible", linprog's
    HiGHS solved the whole program again without presolve to tell which (a second or more per number on a
    sparse year, thousands of simplex iterations, every time a hidden number has no upper cap). Here the
    answer "unbounded" is taken from presolve only with a certificate checked in numpy: the constraints are
    feasible (an earlier number of the same program solved to optimality) and a direction ``d >= 0`` with
    ``A_eq d = 0``, ``A_ub d <= 0`` improves the objective (along it the number grows without end). Without
    both, the program is solved again without presolve exactly as linprog did.
    """

    def __init__(self, program: Program) -> None:
        import numpy as np
        from scipy.optimize._highspy import _core as highs
        from scipy.sparse import coo_array, csc_array, vstack

        p = program
        self.size = p.size
        self._eq_tags = [tag for _, _, tag in p.eq]
        b_ub = np.array([rhs for _, rhs in p.le], dtype=float)
        b_eq = np.array([rhs for _, rhs, _ in p.eq], dtype=float)
        self._b_ub, self._b_eq = b_ub, b_eq
        # As linprog's HiGHS path stacks them: the inequalities (-inf <= A_ub x <= b_ub), then the equalities
        # (b_eq <= A_eq x <= b_eq), column-wise; variables in [0, inf); HiGHS's infinity for inf.
        a_ub = coo_array(_matrix([row for row, _ in p.le], p.size), dtype=float, copy=True)
        a_eq = coo_array(_matrix([row for row, _, _ in p.eq], p.size), dtype=float, copy=True)
        matrix = csc_array(vstack((a_ub, a_eq)))
        lp = highs.HighsLp()
        lp.num_col_ = p.size
        lp.num_row_ = len(b_ub) + len(b_eq)
        lp.a_matrix_.num_col_ = p.size
        lp.a_matrix_.num_row_ = lp.num_row_
        lp.a_matrix_.format_ = highs.MatrixFormat.kColwise
        lp.col_lower_ = np.zeros(p.size)
        lp.col_upper_ = np.full(p.size, highs.kHighsInf)
        lp.row_lower_ = np.concatenate((np.full(len(b_ub), -highs.kHighsInf), b_eq))
        lp.row_upper_ = np.concatenate((b_ub, b_eq))
        lp.a_matrix_.start_ = matrix.indptr
        lp.a_matrix_.index_ = matrix.indices
        lp.a_matrix_.value_ = matrix.data
        self._lp = lp
        self._a_ub, self._a_eq = a_ub.tocsr(), a_eq.tocsr()
        self._matrix = matrix
        self._highs = highs
        # Set once an optimum was found: the constraints are feasible, whatever the objective.
        self._feasible = False
        # linprog's options for method="highs" that are not HiGHS's defaults (the others are left unset).
        self._strict = self._linprog_options()
        # The same, except that presolve may stop at "unbounded or infeasible" (see the class docstring).
        self._options = self._linprog_options()
        self._options.allow_unbounded_or_infeasible = True

    def _linprog_options(self) -> Any:
        highs = self._highs
        options = highs.HighsOptions()
        options.presolve = "on"
        options.highs_debug_level = highs.HighsDebugLevel.kHighsDebugLevelNone
        options.log_to_console = False
        options.output_flag = False
        options.simplex_strategy = highs.simplex_constants.SimplexStrategy.kSimplexStrategyDual
        return options

    def _run(self, lp: Any, options: Any) -> Any:
        highs = self._highs
        solver = highs._Highs()
        if (
            solver.passOptions(options) == highs.HighsStatus.kError
            or solver.passModel(lp) == highs.HighsStatus.kError
            or solver.run() == highs.HighsStatus.kError
        ):
            raise RuntimeError("attacker LP did not solve: HiGHS reported an error")
        return solver

    def _improving_direction(self, objective: NDArray[np.float64]) -> bool:
        """Whether a checked direction d >= 0 with A_eq d = 0 and A_ub d <= 0 lowers ``objective``: from any
        feasible point the program then goes down without end (minimised: the number is unbounded above)."""
        import numpy as np

        highs = self._highs
        cone = highs.HighsLp()
        cone.num_col_, cone.num_row_ = self._lp.num_col_, self._lp.num_row_
        cone.a_matrix_.num_col_, cone.a_matrix_.num_row_ = self._lp.num_col_, self._lp.num_row_
        cone.a_matrix_.format_ = highs.MatrixFormat.kColwise
        cone.a_matrix_.start_ = self._matrix.indptr
        cone.a_matrix_.index_ = self._matrix.indices
        cone.a_matrix_.value_ = self._matrix.data
        n_ub, n_eq = len(self._b_ub), len(self._b_eq)
        cone.row_lower_ = np.concatenate((np.full(n_ub, -highs.kHighsInf), np.zeros(n_eq)))
        cone.row_upper_ = np.zeros(n_ub + n_eq)
        # The cone cut to the unit box: bounded, and negative somewhere exactly if it is along some ray.
        cone.col_lower_ = np.zeros(self.size)
        cone.col_upper_ = np.ones(self.size)
        cone.col_cost_ = objective
        solver = self._run(cone, self._strict)
        if solver.getModelStatus() != highs.HighsModelStatus.kOptimal:
            return False
        d = np.array(solver.getSolution().col_value)
        eps = 1e-9
        return bool(
            float(objective @ d) < -1e-6
            and d.min(initial=0.0) >= -eps
            and np.abs(self._a_eq @ d).max(initial=0.0) <= eps
            and (self._a_ub @ d).max(initial=0.0) <= eps
        )

    def optimise(self, expr: Expr, sense: float) -> tuple[float, list[CellRef]]:
        import numpy as np

        highs = self._highs
        objective = np.zeros(self.size)
        for var, coef in expr.items():
            objective[var] = sense * coef
        self._lp.col_cost_ = objective
        solver = self._run(self._lp, self._options)
        status = solver.getModelStatus()
        if status == highs.HighsModelStatus.kUnboundedOrInfeasible:
            if self._feasible and self._improving_direction(objective):
                return math.inf, []
            solver = self._run(self._lp, self._strict)  # as linprog: without presolve, to tell which
            status = solver.getModelStatus()
        if status == highs.HighsModelStatus.kUnbounded:  # nothing caps this number
            return math.inf, []
        if status != highs.HighsModelStatus.kOptimal:
            # The truth satisfies the model by construction: a failure is a bug, and the gate fails closed.
            raise RuntimeError(f"attacker LP did not solve: {solver.modelStatusToString(status)}")
        solution = solver.getSolution()
        fun = solver.getInfo().objective_function_value
        x = np.array(solution.col_value)
        rows = np.array(solution.row_value)
        n_ub = len(self._b_ub)
        slack, residual = self._b_ub - rows[:n_ub], self._b_eq - rows[n_ub:]
        # linprog's own check of an optimal answer (scipy.optimize._linprog_util._check_result, tol 1e-9):
        # within sqrt(tol) * 10 of every bound and constraint, or the gate fails closed as linprog's status 4.
        tol = math.sqrt(1e-9) * 10
        if (
            np.isnan(x).any()
            or math.isnan(fun)
            or np.isnan(slack).any()
            or np.isnan(residual).any()
            or not np.all(x >= -tol)
            or (slack < -tol).any()
            or (np.abs(residual) > tol).any()
        ):
            raise RuntimeError("attacker LP did not solve: the solution misses the constraints")
        self._feasible = True
        marginals = np.array(solution.row_dual)[n_ub:]
        binding = [
            tag
            for tag, dual in zip(self._eq_tags, marginals, strict=True)
            if tag is not None and abs(dual) > _DUAL
        ]
        return float(sense * fun), binding


def _matrix(rows: Sequence[Expr], size: int) -> csr_matrix:
    from scipy.sparse import csr_matrix

    data: list[float] = []
    cols: list[int] = []
    indptr = [0]
    for row in rows:
        cols.extend(row)
        data.extend(row.values())
        indptr.append(len(cols))
    return csr_matrix((data, cols, indptr), shape=(len(rows), size))


def add(*exprs: Expr, sign: float = 1.0) -> Expr:
    total: Expr = {}
    for expr in exprs:
        for var, coef in expr.items():
            total[var] = total.get(var, 0.0) + sign * coef
    return total


def minus(left: Expr, right: Expr) -> Expr:
    return add(left, add(right, sign=-1.0))
