r"""One run: a torch/geoopt optimizer on one manifold, from one start, until a rule stops it.

Note [closures]
~~~~~~~~~~~~~~~
Every optimizer is stepped as ``optimizer.step(closure)``. The closure zeroes the
gradients, evaluates the loss at ``matrix(x)``, calls ``backward`` and returns the loss as
a Python float (detached). ``torch.optim`` and geoopt's SGD and Adam call it once per
step; geoopt's ``RiemannianLineSearch`` calls it at every trial step and needs the
detached value (SciPy's Armijo search converts it to NumPy). A line search that finds no
step that decreases the loss has converged as far as it can: the run stops there.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import geoopt
import torch
from geoopt.manifolds.base import Manifold
from geoopt.optim.rlinesearch import LineSearchWarning
from torch import Tensor

from ..manifolds import from_matrix, matrix
from ..problems import Problem
from .results import Run
from .stopping import Clock, Stop, StoppingRule

__all__ = ["run_optimizer"]


_NAN = {"loss": math.nan, "gap": math.nan, "feasibility": math.nan, "grad_norm": math.nan}


def _metrics(problem: Problem, x: Tensor) -> dict[str, float]:
    if not bool(torch.isfinite(x).all()):  # diverged: the map refuses non-finite points
        return dict(_NAN)
    return problem.metrics(matrix(x).detach(), extra=False)


def run_optimizer(
    problem: Problem,
    manifold: Manifold,
    factory: Callable[[list, float | None], torch.optim.Optimizer],
    lr: float | None,
    start: Tensor,
    rule: StoppingRule,
    *,
    labels: tuple[str, str],
    seed: int = 0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    cap: int | None = None,
) -> Run:
    """Optimize ``problem`` on ``manifold`` from the matrix ``start`` until ``rule`` stops.

    Parameters
    ----------
    problem : Problem
    manifold : geoopt.manifolds.Manifold
        Of the package, or a geoopt Stiefel manifold (:func:`~cwy_manifolds.from_matrix`).
    factory : callable
        ``factory([param], lr) -> torch.optim.Optimizer``.
    lr : float or None
    start : Tensor
        The starting matrix (float64); converted to ``dtype`` on ``device``.
    rule : StoppingRule
    labels : tuple of str
        ``(method, optimizer)`` for the :class:`Run`.
    seed : int, default 0
        Recorded in the run.
    device, dtype
        Of the parameter.
    cap : int, optional
        Stop unconverged after this many steps (Note [stopping rules]).

    Returns
    -------
    Run
        With its trace (steps timed by a :class:`~cwy_manifolds.tools.stopping.Clock`,
        metrics outside the timed part) and final point.
    """
    device = device or torch.device("cpu")
    x = geoopt.ManifoldParameter(from_matrix(manifold, start.to(device, dtype)))
    optimizer = factory([x], lr)

    def closure() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = problem.loss(matrix(x))
        loss.backward()
        return float(loss.detach())

    run = Run(labels[0], labels[1], lr, seed)
    clock = Clock(device)
    run.record(0, _metrics(problem, x), 0.0, 0.0)
    stop: Stop | None = None
    step = 0
    while stop is None:
        step += 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LineSearchWarning)
            with clock:
                optimizer.step(closure)
        no_step = getattr(optimizer, "last_step_size", 0.0) is None
        metrics = _metrics(problem, x)
        run.record(step, metrics, clock.wall, clock.cpu)
        stop = rule.check(step, metrics, clock.wall, cap)
        for warning in caught:
            if not issubclass(warning.category, LineSearchWarning):
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
        if stop is None and no_step:
            stop = Stop(
                "solver", f"line search found no step that decreases the loss at step {step}"
            )
    run.stop_code, run.stop_reason, run.converged = stop.code, stop.reason, stop.converged
    if bool(torch.isfinite(x).all()):
        run.point = matrix(x).detach().to("cpu", torch.float64).clone()
    return run
