r"""pymanopt's solvers on pymanopt's manifolds and on the free vectors of CWY/T-CWY.

Note [pymanopt on the vectors]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
The points of :class:`~cwy_manifolds.CWY` and :class:`~cwy_manifolds.TCWY` are
unconstrained reflection vectors :math:`V`, so the composite cost
:math:`g(V) = f(Q(V))` is an ordinary function on :math:`\mathbb{R}^{n \times L}`:
exactly what pymanopt's ``Euclidean(n, L)`` manifold and its PyTorch backend take.
Steepest descent, conjugate gradients and trust regions (with Hessian-vector products by
automatic differentiation, through the double backward of the maps) then run on the
vectors with no retraction at all, beside the same solvers on pymanopt's own
``Stiefel``/``SpecialOrthogonalGroup``, from the same start.

The stopping rules are the package's (Note [stopping rules]): the Riemannian gradient
is supplied to pymanopt by a function that also records each iterate (the solvers
evaluate it once per accepted iterate), pauses the clock while the metrics are computed,
and ends the run by raising an exception when a rule fires. pymanopt's own limits are
set out of the way, except its minimal step size: when its line search can no longer
move, the run ends with pymanopt's reason.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..manifolds import MatrixManifold, from_matrix
from ..problems import Problem
from .results import Run
from .stopping import Clock, Stop, StoppingRule

__all__ = ["SOLVERS", "pymanopt_available", "run_pymanopt"]

#: The pymanopt solvers by key, each with its pymanopt class and its row label.
SOLVERS = {
    "steepest-descent": ("SteepestDescent", "pymanopt-sd"),
    "conjugate-gradient": ("ConjugateGradient", "pymanopt-cg"),
    "trust-regions": ("TrustRegions", "pymanopt-tr"),
}


def pymanopt_available() -> bool:
    """Whether pymanopt can be imported."""
    try:
        import pymanopt  # noqa: F401
    except ImportError:
        return False
    return True


class _StopRunError(Exception):
    """Raised from inside pymanopt's loop when a stopping rule fires."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(stop.reason)
        self.stop = stop


def run_pymanopt(
    problem: Problem,
    solver: str,
    start: Tensor,
    rule: StoppingRule,
    *,
    seed: int = 0,
    vectors: MatrixManifold | None = None,
    method: str = "pymanopt",
) -> Run:
    """Run the pymanopt ``solver`` (a key of :data:`SOLVERS`) from the matrix ``start``.

    Parameters
    ----------
    problem : Problem
    solver : str
        ``"steepest-descent"``, ``"conjugate-gradient"`` or ``"trust-regions"``.
    start : Tensor, shape ``(n, p)``
        Float64 starting matrix.
    rule : StoppingRule
    seed : int, default 0
        Recorded in the run.
    vectors : MatrixManifold, optional
        A flat manifold (CWY, TCWY): run on its vectors over ``Euclidean(n, L)`` (Note
        [pymanopt on the vectors]). Default: pymanopt's ``Stiefel(n, p)``, or
        ``SpecialOrthogonalGroup(n)`` for group ``"so"``.
    method : str, default ``"pymanopt"``
        Method label of the run.

    Returns
    -------
    Run
        On the CPU in float64; ``steps`` count the accepted iterates.
    """
    import pymanopt

    class_name, label = SOLVERS[solver]
    if vectors is None:
        if problem.group == "so":
            manifold = pymanopt.manifolds.SpecialOrthogonalGroup(problem.n)
        else:
            manifold = pymanopt.manifolds.Stiefel(problem.n, problem.p)
        x0 = start.numpy().copy()

        def to_matrix(point: Tensor) -> Tensor:
            return point

    else:
        v0 = from_matrix(vectors, start).detach().to(torch.float64)
        manifold = pymanopt.manifolds.Euclidean(*v0.shape)
        x0 = v0.numpy().copy()
        to_matrix = vectors.matrix

    @pymanopt.function.pytorch(manifold)
    def cost(point: Tensor) -> Tensor:
        return problem.loss(to_matrix(point))

    run = Run(method, label, None, seed)
    clock = Clock()
    final: dict[str, Tensor] = {}

    @pymanopt.function.numpy(manifold)
    def gradient(point: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(point).requires_grad_()
        x = to_matrix(t)
        (g,) = torch.autograd.grad(problem.loss(x), t)
        rgrad = manifold.euclidean_to_riemannian_gradient(point, g.numpy())
        clock.stop()
        final["x"] = x.detach().clone()
        step = len(run.step)
        metrics = problem.metrics(final["x"], extra=False)
        run.record(step, metrics, clock.wall, clock.cpu)
        if (stop := rule.check(step, metrics, clock.wall)) is not None:
            raise _StopRunError(stop)
        clock.start()
        return rgrad

    options = {
        "max_iterations": 10 * rule.max_steps + 10,
        "max_time": float("inf"),
        "min_gradient_norm": 0.0,
        "max_cost_evaluations": 10**9,
        "verbosity": 0,
    }
    optimizer = getattr(pymanopt.optimizers, class_name)(**options)
    clock.start()
    try:
        result = optimizer.run(
            pymanopt.Problem(manifold, cost, riemannian_gradient=gradient), initial_point=x0
        )
        clock.stop()
        text = result.stopping_criterion.removeprefix("Terminated - ").split(" after")[0]
        stop = Stop("solver", f"pymanopt stopped: {text} at step {run.steps}")
    except _StopRunError as stopped:
        stop = stopped.stop
    run.stop_code, run.stop_reason, run.converged = stop.code, stop.reason, stop.converged
    run.point = final.get("x")
    return run
