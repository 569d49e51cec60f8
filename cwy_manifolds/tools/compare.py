r"""Compare manifolds and optimizers on problems with known answers.

:func:`~cwy_manifolds.compare` runs every (method, optimizer) pair from the same initial matrix and
records, per step, the loss, the relative optimality gap, the feasibility
:math:`\|X^\top X - I\|_F` of the matrix and the wall-clock time of the optimization
steps (metrics are computed outside the timed part). Methods are the manifolds of the
package, by name (:data:`~cwy_manifolds.registry.METHODS`), plus geoopt's stock
``CanonicalStiefel``; reference rows come from pymanopt's solvers when it is installed.

Note [fair learning rates]
~~~~~~~~~~~~~~~~~~~~~~~~~~
Step sizes mean different things on different manifolds (an Adam step on CWY vectors
is elementwise; on a Stiefel manifold geoopt uses one second moment per matrix), so no
single learning rate is fair. By default every pair runs every rate of a small log grid
and the run reported is the one that gets within the tolerance (and stays there) in the
fewest steps, or failing that ends with the lowest loss. The final gap of every rate
tried is kept in :attr:`~cwy_manifolds.tools.results.Run.lr_grid` and shown in the
table. Pass ``lr`` to use one fixed rate instead.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Sequence

import geoopt
import torch
from torch import Tensor

from ..core import haar
from ..manifolds import from_matrix, matrix
from ..problems import Problem
from ..registry import METHODS, OPTIMIZERS
from .results import Comparison, ConfigError, Run

__all__ = [
    "DEFAULT_LR_GRID",
    "REFERENCES",
    "compare",
]

#: Reference solvers from pymanopt (run on the CPU in float64 when pymanopt is installed).
REFERENCES = {
    "steepest-descent": "SteepestDescent",
    "conjugate-gradient": "ConjugateGradient",
    "trust-regions": "TrustRegions",
}
#: Learning rates that :func:`~cwy_manifolds.compare` tries for every pair when no ``lr`` is given
#: (Note [fair learning rates]).
DEFAULT_LR_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0, 30.0)
_NOTES = {
    "geoopt-canonical": "geoopt-canonical is geoopt's stock Stiefel() (CanonicalStiefel): its "
    "Cayley map moves by u + X X^T u, up to twice the step asked for, and solves an "
    "N x N system per step.",
    "radam": "radam on cwy/tcwy is exactly torch.optim.Adam on the vectors (elementwise "
    "second moments); on the Stiefel manifolds geoopt keeps one second moment per matrix.",
    "rsgd": "rsgd is geoopt's RiemannianSGD with momentum 0.9; sgd is torch.optim.SGD with "
    "momentum 0.9.",
}


def _applicable(method: str, problem: Problem) -> str | None:
    """Why ``method`` cannot run on ``problem`` (None if it can)."""
    square = problem.p == problem.n
    if (why := METHODS[method].why_not(problem.n, problem.p)) is not None:
        return why
    if method == "tcwy" and square and problem.n % 2:
        return f"tcwy with M = N = {problem.n} reaches determinant -1 only; use cwy"
    return None


def _choices(names: Iterable[str] | None, valid: Sequence[str], what: str) -> list[str]:
    names = list(valid if names is None else names)
    for name in names:
        if name not in valid:
            raise ConfigError(f"{what} must be among {', '.join(valid)}; got {name!r}")
    if not names:
        raise ConfigError(f"{what} must name at least one of {', '.join(valid)}")
    return names


def _start_matrix(problem: Problem, seed: int) -> Tensor:
    """Haar-random start on St(n, p); square problems start in SO(n)."""
    gen = torch.Generator().manual_seed(seed)
    return haar((problem.n, problem.p), det=1, dtype=torch.float64, generator=gen)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run_one(
    problem: Problem,
    method: str,
    optimizer: str,
    lr: float,
    start: Tensor,
    steps: int,
    device: torch.device,
    dtype: torch.dtype,
) -> Run:
    manifold = METHODS[method].manifold()
    x = geoopt.ManifoldParameter(from_matrix(manifold, start.to(device, dtype)))
    opt = OPTIMIZERS[optimizer].factory([x], lr)
    run = Run(method, optimizer, lr, f"ran all {steps} steps")
    elapsed = 0.0
    run.record(0, problem.metrics(matrix(x), extra=False), elapsed)
    for k in range(1, steps + 1):
        began = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = problem.loss(matrix(x))
        loss.backward()
        opt.step()
        _sync(device)
        elapsed += time.perf_counter() - began
        metrics = problem.metrics(matrix(x), extra=False)
        run.record(k, metrics, elapsed)
        if not math.isfinite(metrics["loss"]):
            run.stop_reason = f"diverged: non-finite loss after step {k}"
            break
    return run


def _best(runs: list[Run], tol: float) -> Run:
    def key(run: Run) -> tuple[float, float]:
        hit = run.first_within(tol)
        final = run.loss[-1] if math.isfinite(run.loss[-1]) else math.inf
        return (math.inf if hit is None else run.step[hit], final)

    best = min(runs, key=key)
    best.lr_grid = {run.lr: run.gap[-1] for run in runs}
    return best


def _reference_run(problem: Problem, name: str, start: Tensor, steps: int) -> Run:
    """Run a pymanopt solver on the same problem and start (CPU, float64)."""
    import pymanopt

    if problem.group == "so":
        manifold = pymanopt.manifolds.SpecialOrthogonalGroup(problem.n)
    else:
        manifold = pymanopt.manifolds.Stiefel(problem.n, problem.p)

    @pymanopt.function.pytorch(manifold)
    def cost(x: Tensor) -> Tensor:
        return problem.loss(x)

    solver = getattr(pymanopt.optimizers, REFERENCES[name])(
        max_iterations=steps, min_gradient_norm=1e-12, verbosity=0, log_verbosity=1
    )
    x0 = start.numpy()
    began = time.time()
    result = solver.run(pymanopt.Problem(manifold, cost), initial_point=x0)
    run = Run("pymanopt", name, None, result.stopping_criterion)
    log = (result.log or {}).get("iterations") or {}
    points = list(
        zip(log.get("iteration", []), log.get("point", []), log.get("time", []), strict=True)
    )
    if not points:  # trust regions logs no iterations: record the start and the end
        points = [(0, x0, began), (result.iterations, result.point, began + result.time)]
    first = points[0][0]  # pymanopt numbers the start as iteration 1 (trust regions: 0)
    for k, point, stamp in points:
        metrics = problem.metrics(torch.as_tensor(point), extra=False)
        run.record(k - first, metrics, max(0.0, stamp - began))
    return run


class _Progress:
    """A one-line progress bar on stderr, shown only on a terminal after a few seconds."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        self.total, self.done, self.began = total, 0, time.perf_counter()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.shown = False

    def advance(self, label: str) -> None:
        self.done += 1
        if self.enabled and (self.shown or time.perf_counter() - self.began > 2.0):
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\rcompare [{bar}] {self.done}/{self.total} {label:<40.40}")
            sys.stderr.flush()
            self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def compare(
    problem: Problem,
    *,
    methods: Iterable[str] | None = None,
    optimizers: Iterable[str] = ("rsgd", "radam"),
    references: Iterable[str] | None = None,
    steps: int = 200,
    lr: float | None = None,
    lr_grid: Sequence[float] = DEFAULT_LR_GRID,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    tol: float = 1e-6,
    progress: bool | None = None,
) -> Comparison:
    r"""Run every (method, optimizer) pair on ``problem`` from one start and compare.

    Parameters
    ----------
    problem : Problem
        From :mod:`cwy_manifolds.problems`; its ``loss`` is applied to ``matrix(x)``.
    methods : iterable of str, optional
        Keys of :data:`~cwy_manifolds.registry.METHODS`. Default: every default method
        that applies (``cwy`` needs a square problem; ``tcwy`` reaches only determinant
        :math:`(-1)^N` when square).
    optimizers : iterable of str, default ``("rsgd", "radam")``
        Keys of :data:`~cwy_manifolds.registry.OPTIMIZERS`; ``sgd`` and ``adam`` (plain
        torch) run only with ``cwy``/``tcwy``, whose vectors are unconstrained.
    references : iterable of str, optional
        Keys of :data:`~cwy_manifolds.tools.compare.REFERENCES` (pymanopt solvers, one
        row each). Default: all of them when pymanopt is installed, none otherwise.
    steps : int, default 200
        Optimizer steps per run (iterations for the references).
    lr, lr_grid
        A fixed learning rate, or (default) the grid searched per pair (Note [fair
        learning rates]).
    seed : int, default 0
        Seed of the Haar-random start matrix (square problems start in :math:`SO(n)`).
    dtype, device
        Of the optimized parameters; metrics are computed in float64 on the CPU.
    tol : float, default 1e-6
        Gap for the "steps to tol" and "seconds to tol" columns.
    progress : bool, optional
        Progress bar on stderr; default: on a terminal, after two seconds.

    Returns
    -------
    Comparison

    Raises
    ------
    ConfigError
        For unknown names (the message lists the valid ones), inapplicable pairs,
        non-positive steps or learning rates, or unavailable pymanopt references.

    Examples
    --------
    >>> from cwy_manifolds import compare
    >>> from cwy_manifolds.problems import PCA
    >>> result = compare(PCA.random(8, 2), methods=["tcwy", "qr"], optimizers=["radam"],
    ...                  references=[], steps=100, lr_grid=[0.1, 0.3, 1.0])
    >>> [(row["method"], row["gap"] < 1e-5) for row in result.table()]
    [('tcwy', True), ('qr', True)]
    """
    if not isinstance(problem, Problem):
        raise ConfigError(f"problem must be a cwy_manifolds.problems.Problem; got {problem!r}")
    valid = [m for m in METHODS if METHODS[m].default and _applicable(m, problem) is None]
    methods = _choices(methods, valid if methods is None else list(METHODS), "methods")
    for method in methods:
        if (why := _applicable(method, problem)) is not None:
            raise ConfigError(f"methods must apply to the problem: {why}")
    optimizers = _choices(optimizers, list(OPTIMIZERS), "optimizers")
    try:
        import pymanopt  # noqa: F401

        have_pymanopt = True
    except ImportError:
        have_pymanopt = False
    if references is None:
        references = list(REFERENCES) if have_pymanopt else []
    references = list(references)
    if references:
        references = _choices(references, list(REFERENCES), "references")
        if not have_pymanopt:
            raise ConfigError("references need pymanopt: pip install pymanopt")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be a positive integer; got {steps!r}")
    rates = [lr] if lr is not None else list(lr_grid)
    if not rates or not all(
        isinstance(r, (int, float)) and r > 0 and math.isfinite(r) for r in rates
    ):
        raise ConfigError(f"learning rates must be positive numbers; got {rates!r}")
    device = torch.device(device)

    pairs = [(m, o) for m in methods for o in optimizers if METHODS[m].accepts(OPTIMIZERS[o])]
    start = _start_matrix(problem, seed)
    bar = _Progress(len(pairs) * len(rates) + len(references), progress)
    runs = []
    for method, optimizer in pairs:
        tried = []
        for rate in rates:
            tried.append(_run_one(problem, method, optimizer, rate, start, steps, device, dtype))
            bar.advance(f"{method}/{optimizer} lr={rate:g}")
        runs.append(_best(tried, tol) if lr is None else tried[0])
    for name in references:
        runs.append(_reference_run(problem, name, start, steps))
        bar.advance(f"pymanopt/{name}")
    bar.close()

    notes = [_NOTES[k] for k in ("geoopt-canonical", "radam", "rsgd") if k in methods + optimizers]
    edge = [
        f"{r.method}/{r.optimizer}" for r in runs if r.lr_grid and r.lr in (min(rates), max(rates))
    ]
    if edge and len(rates) > 1:
        notes.append(
            f"best learning rate at the edge of the grid for {', '.join(edge)}: "
            "a wider grid might do better."
        )
    if references:
        notes.append(
            "pymanopt rows run on the CPU in float64 from the same start; trust regions "
            "logs only its first and last points."
        )
    notes.append(f"reference optimum: {problem.reference}.")
    settings = {
        "problem": problem.name,
        "n": problem.n,
        "p": problem.p,
        "group": problem.group,
        "steps": steps,
        "lr": lr,
        "lr_grid": rates,
        "seed": seed,
        "dtype": str(dtype),
        "device": str(device),
        "tol": tol,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    return Comparison(problem, runs, settings, notes)
