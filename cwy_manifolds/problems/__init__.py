r"""Toy optimization problems over Stiefel and orthogonal matrices with known answers.

One problem family per module: ``cwy_manifolds.problems.base`` (the :class:`Problem`
interface and shared checks), ``cwy_manifolds.problems.pca``,
``cwy_manifolds.problems.procrustes``. Losses are plain torch functions of the
matrix, so any manifold or parametrization can use them unchanged.
"""

from __future__ import annotations

from typing import Any

from .base import GROUPS, Problem
from .pca import PCA
from .procrustes import Procrustes

__all__ = ["GROUPS", "PCA", "PROBLEMS", "Problem", "Procrustes", "make_problem"]

#: Problem classes by name, for :func:`make_problem`.
PROBLEMS: dict[str, type[Problem]] = {"pca": PCA, "procrustes": Procrustes}


def make_problem(name: str, n: int, p: int, *, seed: int = 0, **kwargs: Any) -> Problem:
    """Build a seeded random instance of the problem registered as ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`PROBLEMS`: ``"pca"`` or ``"procrustes"``.
    n, p : int
        Shape of the point, ``1 <= p <= n``.
    seed : int, default 0
    **kwargs
        Passed to the ``random`` constructor of the class (e.g. ``group``, ``condition``).

    Examples
    --------
    >>> from cwy_manifolds.problems import make_problem
    >>> make_problem("procrustes", 4, 4, group="so")
    Procrustes(name='procrustes', n=4, p=4, group='so')
    """
    if not isinstance(name, str) or name not in PROBLEMS:
        raise ValueError(f"name must be one of {', '.join(map(repr, PROBLEMS))}; got {name!r}")
    return PROBLEMS[name].random(n, p, seed=seed, **kwargs)
