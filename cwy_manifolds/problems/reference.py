r"""Numerical reference optima from pymanopt's trust regions (Note [reference solutions]).

For problems without a closed form: the best of a few runs of pymanopt's second-order
trust-region solver from given and Haar-random starts, run to a Riemannian gradient norm
near machine precision. The answer is a critical point that is very likely, not certainly,
a global minimum, and is labelled so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .base import Answer, Problem, haar_matrix

__all__ = ["trust_region_reference"]


def trust_region_reference(
    problem: Problem,
    starts: Sequence[np.ndarray] = (),
    *,
    random_starts: int = 3,
    scale: float = 1.0,
    seed: int = 0,
) -> Answer:
    """Best of pymanopt trust-region runs on ``problem`` (autodiff gradient and Hessian).

    Parameters
    ----------
    problem : Problem
        Its :meth:`~Problem.loss` is differentiated twice by torch (float64, CPU).
    starts : sequence of numpy.ndarray
        Starting points to try first (e.g. a closed form of a nearby problem).
    random_starts : int, default 3
        Haar-random starts added to ``starts``.
    scale : float, default 1
        Size of the gradient; the gradient-norm tolerance is ``1e-12 * max(1, scale)``.
    seed : int, default 0
        Seed of the random starts.

    Returns
    -------
    Answer
        ``Answer(None, None, reason)`` when pymanopt is not installed.
    """
    try:
        import pymanopt
    except ImportError:
        return Answer(source="unavailable: this reference needs pymanopt (pip install pymanopt)")
    n, p = problem.n, problem.p
    if problem.group == "so":
        manifold = pymanopt.manifolds.SpecialOrthogonalGroup(n)
    else:
        manifold = pymanopt.manifolds.Stiefel(n, p)

    @pymanopt.function.pytorch(manifold)
    def cost(x: Tensor) -> Tensor:
        return problem.loss(x)

    pm_problem = pymanopt.Problem(manifold, cost)
    tol = 1e-12 * max(1.0, scale)
    optimizer = pymanopt.optimizers.TrustRegions(verbosity=0, min_gradient_norm=tol)
    gen = torch.Generator().manual_seed(seed)
    det = 1 if problem.group == "so" else None
    points = [*starts, *(haar_matrix(gen, n, p, det=det) for _ in range(random_starts))]
    runs = [optimizer.run(pm_problem, initial_point=x0) for x0 in points]
    best = min(runs, key=lambda run: run.cost)
    return Answer(
        float(best.cost),
        np.asarray(best.point, dtype=np.float64),
        f"reference: pymanopt trust regions (best of {len(runs)} starts, Riemannian "
        f"gradient norm {best.gradient_norm:.1e}), not a certified optimum",
    )
