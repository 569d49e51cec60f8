r"""Compare manifolds and optimizers on problems with known answers.

:func:`compare` runs every (method, optimizer) pair from the same initial matrix and
records, per step, the loss, the relative optimality gap, the feasibility
:math:`\|X^\top X - I\|_F` of the matrix and the wall-clock time of the optimization
steps (metrics are computed outside the timed part). Methods are the manifolds of the
package, by name (:data:`~cwy_manifolds.manifolds.MANIFOLDS`), plus geoopt's stock
``CanonicalStiefel``; reference rows come from pymanopt's solvers when it is installed.

Note [fair learning rates]
~~~~~~~~~~~~~~~~~~~~~~~~~~
Step sizes mean different things on different manifolds (an Adam step on CWY vectors
is elementwise; on a Stiefel manifold geoopt uses one second moment per matrix), so no
single learning rate is fair. By default every pair runs every rate of a small log grid
and the run reported is the one that gets within the tolerance (and stays there) in the
fewest steps, or failing that ends with the lowest loss. The final gap of every rate
tried is kept in :attr:`Run.lr_grid` and shown in the table. Pass ``lr`` to use one
fixed rate instead.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import geoopt
import torch
from torch import Tensor

from .manifolds import MANIFOLDS, from_matrix, matrix
from .manifolds._base import haar
from .problems import Problem

__all__ = [
    "DEFAULT_LR_GRID",
    "METHODS",
    "OPTIMIZERS",
    "REFERENCES",
    "Comparison",
    "ConfigError",
    "Run",
    "compare",
]

#: The manifold factory of each method name (the package's and geoopt's stock Stiefel).
METHODS: dict[str, Callable[[], geoopt.manifolds.Manifold]] = {
    **MANIFOLDS,
    "geoopt-canonical": geoopt.CanonicalStiefel,
}
#: Optimizer name -> factory ``(params, lr) -> optimizer``. ``sgd``/``adam`` are plain
#: torch optimizers, valid only for the vector parametrizations (``cwy``, ``tcwy``).
OPTIMIZERS: dict[str, Callable[[list, float], torch.optim.Optimizer]] = {
    "rsgd": lambda params, lr: geoopt.optim.RiemannianSGD(params, lr=lr, momentum=0.9),
    "radam": lambda params, lr: geoopt.optim.RiemannianAdam(params, lr=lr),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
}
#: Reference solvers from pymanopt (run on the CPU in float64 when pymanopt is installed).
REFERENCES = {
    "steepest-descent": "SteepestDescent",
    "conjugate-gradient": "ConjugateGradient",
    "trust-regions": "TrustRegions",
}
#: Learning rates that :func:`compare` tries for every pair when no ``lr`` is given
#: (Note [fair learning rates]).
DEFAULT_LR_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0, 30.0)
_VECTOR_METHODS = ("cwy", "tcwy")
_NOTES = {
    "geoopt-canonical": "geoopt-canonical is geoopt's stock Stiefel() (CanonicalStiefel): its "
    "Cayley map moves by u + X X^T u, up to twice the step asked for, and solves an "
    "N x N system per step.",
    "radam": "radam on cwy/tcwy is exactly torch.optim.Adam on the vectors (elementwise "
    "second moments); on the Stiefel manifolds geoopt keeps one second moment per matrix.",
    "rsgd": "rsgd is geoopt's RiemannianSGD with momentum 0.9; sgd is torch.optim.SGD with "
    "momentum 0.9.",
}


class ConfigError(ValueError):
    """A comparison was asked for with invalid settings (names, sizes, paths)."""


@dataclass
class Run:
    r"""One (method, optimizer) run: its settings, why it stopped and its trace.

    The trace has one entry per recorded point: the start, then the point after each
    step (for pymanopt rows: each logged iteration).

    Attributes
    ----------
    method, optimizer : str
        Names from :data:`METHODS` and :data:`OPTIMIZERS` (``"pymanopt"`` and a key of
        :data:`REFERENCES` for reference rows).
    lr : float or None
        The learning rate of this run (None for reference rows).
    stop_reason : str
        Why the run stopped, in plain words.
    step, loss, gap, feasibility, seconds : list
        The trace: step number, loss, relative gap, :math:`\|X^\top X - I\|_F` and the
        cumulative wall-clock seconds of the optimization steps.
    lr_grid : dict
        Learning rate -> final gap, for every rate tried when a grid was searched.
    """

    method: str
    optimizer: str
    lr: float | None
    stop_reason: str
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    gap: list[float] = field(default_factory=list)
    feasibility: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr_grid: dict[float, float] = field(default_factory=dict)

    def record(self, step: int, metrics: dict[str, float], seconds: float) -> None:
        """Append one point of the trace."""
        self.step.append(step)
        self.loss.append(metrics["loss"])
        self.gap.append(metrics["gap"])
        self.feasibility.append(metrics["feasibility"])
        self.seconds.append(seconds)

    def first_within(self, tol: float) -> int | None:
        """Index of the trace point from which the gap stays <= ``tol``, or None."""
        above = [i for i, g in enumerate(self.gap) if not g <= tol]
        start = above[-1] + 1 if above else 0
        return start if start < len(self.gap) else None

    def summary(self, tol: float) -> dict[str, object]:
        """One row of the summary table (plain values, for CSV and printing)."""
        hit = self.first_within(tol)
        steps = self.step[-1] if self.step else 0
        return {
            "method": self.method,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "steps": steps,
            "loss": self.loss[-1],
            "gap": self.gap[-1],
            "feasibility": self.feasibility[-1],
            "max_feasibility": max(self.feasibility),
            "seconds": self.seconds[-1],
            "ms_per_step": 1e3 * self.seconds[-1] / steps if steps else math.nan,
            "steps_to_tol": None if hit is None else self.step[hit],
            "seconds_to_tol": None if hit is None else self.seconds[hit],
            "stop_reason": self.stop_reason,
            "lr_grid": " ".join(f"{lr:g}:{gap:.1e}" for lr, gap in self.lr_grid.items()),
        }


@dataclass
class Comparison:
    """The result of :func:`compare`: the problem, every run, the settings and notes."""

    problem: Problem
    runs: list[Run]
    settings: dict[str, object]
    notes: list[str]

    def table(self) -> list[dict[str, object]]:
        """Summary rows, one per run, as plain dicts (no pandas needed)."""
        return [run.summary(float(self.settings["tol"])) for run in self.runs]

    def format_table(self) -> str:
        """Format the summary as fixed-width text, with the notes below it."""
        tol = self.settings["tol"]
        head = (
            f"{'method':<17}{'optimizer':<19}{'lr':>7}{'gap':>10}{'||XtX-I||':>11}"
            f"{'ms/step':>9}{f'steps to {tol:g}':>16}{f's to {tol:g}':>12}"
        )
        lines = [head, "-" * len(head)]
        for row in self.table():
            lr = "" if row["lr"] is None else f"{row['lr']:g}"
            to_tol = "-" if row["steps_to_tol"] is None else str(row["steps_to_tol"])
            s_tol = "-" if row["seconds_to_tol"] is None else f"{row['seconds_to_tol']:.3f}"
            lines.append(
                f"{row['method']:<17}{row['optimizer']:<19}{lr:>7}{row['gap']:>10.1e}"
                f"{row['max_feasibility']:>11.1e}{row['ms_per_step']:>9.2f}{to_tol:>16}"
                f"{s_tol:>12}"
            )
        grids = [f"  {r.method}/{r.optimizer}: {_grid_text(r)}" for r in self.runs if r.lr_grid]
        if grids:
            lines += ["", "final gap for each learning rate tried (* = reported):", *grids]
        return "\n".join(lines + [""] + [f"note: {n}" for n in self.notes])

    def to_csv(self, path: str | Path) -> Path:
        """Write the summary table as CSV; return the path."""
        rows = self.table()
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return Path(path)

    def to_json(self, path: str | Path) -> Path:
        """Write settings, notes, summary and every trace as JSON; return the path."""
        runs = [
            asdict(run) | {"lr_grid": [[k, v] for k, v in run.lr_grid.items()]} for run in self.runs
        ]
        data = {
            "problem": repr(self.problem),
            "reference": self.problem.reference,
            "optimum": self.problem.optimum,
            "settings": self.settings,
            "notes": self.notes,
            "summary": self.table(),
            "runs": runs,
        }
        Path(path).write_text(json.dumps(data, indent=1, default=str))
        return Path(path)


def _grid_text(run: Run) -> str:
    return " ".join(
        f"{lr:g}{'*' if lr == run.lr else ''}:{gap:.1e}" for lr, gap in run.lr_grid.items()
    )


def _applicable(method: str, problem: Problem) -> str | None:
    """Why ``method`` cannot run on ``problem`` (None if it can)."""
    square = problem.p == problem.n
    if method == "cwy" and not square:
        return "cwy stands for square matrices (p == n); use tcwy for p < n"
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
    manifold = METHODS[method]()
    x = geoopt.ManifoldParameter(from_matrix(manifold, start.to(device, dtype)))
    opt = OPTIMIZERS[optimizer]([x], lr)
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
        Keys of :data:`METHODS`. Default: every method that applies (``cwy`` needs a
        square problem; ``tcwy`` reaches only determinant :math:`(-1)^N` when square).
    optimizers : iterable of str, default ``("rsgd", "radam")``
        Keys of :data:`OPTIMIZERS`; ``sgd`` and ``adam`` (plain torch) run only with
        ``cwy``/``tcwy``, whose vectors are unconstrained.
    references : iterable of str, optional
        Keys of :data:`REFERENCES` (pymanopt solvers, one row each). Default: all of
        them when pymanopt is installed, none otherwise.
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
    valid = [m for m in METHODS if methods is not None or _applicable(m, problem) is None]
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

    pairs = [
        (m, o)
        for m in methods
        for o in optimizers
        if o not in ("sgd", "adam") or m in _VECTOR_METHODS
    ]
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
