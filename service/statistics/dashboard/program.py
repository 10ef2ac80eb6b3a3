"""The linear program the release gate's attacker builds and solves (``gate``): sparse rows over numbered
variables, equalities tagged with the shown cell they come from, solved with HiGHS
(``scipy.optimize.linprog``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from service.statistics.dashboard.catalogue import Key

if TYPE_CHECKING:
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
    minimised and maximised over them."""

    def __init__(self, program: Program) -> None:
        import numpy as np

        p = program
        self.size = p.size
        self._a_eq = _matrix([row for row, _, _ in p.eq], p.size)
        self._b_eq = np.array([rhs for _, rhs, _ in p.eq])
        self._eq_tags = [tag for _, _, tag in p.eq]
        self._a_ub = _matrix([row for row, _ in p.le], p.size)
        self._b_ub = np.array([rhs for _, rhs in p.le])

    def optimise(self, expr: Expr, sense: float) -> tuple[float, list[CellRef]]:
        import numpy as np
        from scipy.optimize import linprog

        objective = np.zeros(self.size)
        for var, coef in expr.items():
            objective[var] = sense * coef
        result = linprog(
            objective,
            A_ub=self._a_ub,
            b_ub=self._b_ub,
            A_eq=self._a_eq,
            b_eq=self._b_eq,
            bounds=(0, None),
            method="highs",
        )
        if result.status == 3:  # unbounded: nothing caps this number
            return math.inf, []
        if result.status != 0:
            # The truth satisfies the model by construction: a failure is a bug, and the gate fails closed.
            raise RuntimeError(f"attacker LP did not solve: {result.message}")
        marginals = result.eqlin.marginals
        binding = [
            tag
            for tag, dual in zip(self._eq_tags, marginals, strict=True)
            if tag is not None and abs(dual) > _DUAL
        ]
        return float(sense * result.fun), binding


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
