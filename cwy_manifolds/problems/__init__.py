r"""Optimization problems over Stiefel and orthogonal matrices, with their optima.

The protocol is :class:`Problem` (``cwy_manifolds.problems.base``): a differentiable
loss of the matrix, and optionally a known optimum (:class:`Answer`) and extra metrics.
:meth:`Problem.from_function` turns a plain function into one
(:class:`FunctionProblem`). One family per module, each with closed forms or documented
references:

- ``pca``: :class:`PCA` (covariances, real data) and :class:`DominantSubspace`
  (symmetric indefinite matrices);
- ``brockett``: :class:`Brockett`, :math:`\operatorname{tr}(X^\top A X N)`;
- ``procrustes``: :class:`Procrustes` over :math:`\mathrm{St}(n, p)`, :math:`O(n)`,
  :math:`SO(n)`, with the determinant trap;
- ``joint``: :class:`JointDiagonalization`;
- ``suites``: the problem types by name (:data:`PROBLEMS`, :func:`make_problem`) and the
  named suites (:data:`SUITES`, :func:`make_suite`).

Losses are plain torch functions of the matrix, so any manifold or parametrization can
use them unchanged.
"""

from __future__ import annotations

from .base import GROUPS, Answer, Problem
from .brockett import Brockett
from .custom import FunctionProblem
from .joint import JointDiagonalization
from .pca import PCA, DominantSubspace
from .procrustes import Procrustes
from .suites import PROBLEMS as _PROBLEMS
from .suites import SUITES as _SUITES
from .suites import (
    Instance,
    ProblemType,
    Suite,
    estimate_bytes,
    make_problem,
    make_suite,
)

#: Problem types by name (:class:`ProblemType`), for :func:`make_problem` and the command
#: line's ``--problem``.
PROBLEMS = _PROBLEMS
#: Suites by name (:class:`Suite`), ``demo`` (what ``make demo`` runs), ``small`` and
#: ``full``, for :func:`make_suite` and the command line's ``--suite``.
SUITES = _SUITES

__all__ = [
    "GROUPS",
    "PCA",
    "PROBLEMS",
    "SUITES",
    "Answer",
    "Brockett",
    "DominantSubspace",
    "FunctionProblem",
    "Instance",
    "JointDiagonalization",
    "Problem",
    "ProblemType",
    "Procrustes",
    "Suite",
    "estimate_bytes",
    "make_problem",
    "make_suite",
]
