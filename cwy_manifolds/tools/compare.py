r"""Compare manifolds and optimizers on a problem: :func:`~cwy_manifolds.compare`.

Every (method, optimizer) pair runs from the same Haar-random starts (one per seed, in
the optimum's component of :math:`O(n)` for square problems: Note [components of O(n)]),
under the same stopping rules (Note [stopping rules]), with the same metrics. pymanopt's
solvers run beside them, on pymanopt's manifolds and on the vectors of CWY/T-CWY (Note
[pymanopt on the vectors]).

Note [fair learning rates]
~~~~~~~~~~~~~~~~~~~~~~~~~~
Step sizes mean different things on different manifolds (an Adam step on CWY vectors
is elementwise; on a Stiefel manifold geoopt uses one second moment per matrix), so no
single learning rate is fair. By default every pair runs the rates of a small log grid
on the first seed, from the middle of the grid outwards, and reports the rate that
converges in the fewest steps (or, if none converges, ends lowest). Once a rate has
converged in :math:`k` steps, the others are stopped after :math:`k` steps: they can no
longer win. The other seeds run at the chosen rate. The outcome of every rate tried is
kept in :attr:`~cwy_manifolds.tools.results.Run.lr_grid` and shown in the table. Pass
``lr`` to use one fixed rate instead; optimizers that pick their own steps (a line search)
run once.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from ..problems import Problem
from .choices import check_device, check_real
from .execute import PairRunner
from .plan import Plan, make_plan
from .progress import Progress
from .pymanopt_runs import SOLVERS
from .results import Comparison, ConfigError, Run
from .stopping import StoppingRule

__all__ = ["DEFAULT_LR_GRID", "DEFAULT_OPTIMIZERS", "REFERENCES", "compare"]

#: pymanopt solvers (key -> pymanopt class), run when pymanopt is installed.
REFERENCES = {key: value[0] for key, value in SOLVERS.items()}
#: Learning rates that :func:`~cwy_manifolds.compare` tries for every pair when no ``lr`` is given
#: (Note [fair learning rates]).
DEFAULT_LR_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0, 30.0)
#: Optimizers that :func:`~cwy_manifolds.compare` runs when none are given.
DEFAULT_OPTIMIZERS = ("rsgd", "radam")
_NOTES = {
    "geoopt-canonical": "geoopt-canonical is geoopt's stock Stiefel() (CanonicalStiefel): its "
    "Cayley map moves by u + X X^T u, up to twice the step asked for, and solves an "
    "N x N system per step.",
    "radam": "radam on cwy/tcwy is exactly torch.optim.Adam on the vectors (elementwise "
    "second moments); on the Stiefel manifolds geoopt keeps one second moment per matrix.",
    "rsgd": "rsgd is geoopt's RiemannianSGD with momentum 0.9; sgd is torch.optim.SGD with "
    "momentum 0.9.",
    "line-search": "line-search is geoopt's RiemannianLineSearch (Armijo backtracking, no "
    "learning rate); its closure returns a detached loss.",
}
_MAX_SEED = 2**63


def _check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer; got {value!r}")
    if value < low or (high is not None and value >= high):
        bound = "" if high is None else " and below 2**63"  # high: None or _MAX_SEED
        raise ConfigError(f"{name} must be at least {low}{bound}; got {value}")
    return int(value)


def _seeds(seed: object, seeds: object) -> list[int]:
    first = _check_int(seed, "seed", 0, _MAX_SEED)
    if isinstance(seeds, Iterable) and not isinstance(seeds, str):
        values = [_check_int(s, "seeds", 0, _MAX_SEED) for s in seeds]
        if not values or len(set(values)) < len(values):
            raise ConfigError(f"seeds must be distinct non-negative integers; got {seeds!r}")
        return values
    count = _check_int(seeds, "seeds", 1)
    if first + count > _MAX_SEED:
        raise ConfigError(f"seed + seeds must be below 2**63; got {first} + {count}")
    return [first + k for k in range(count)]


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compare(
    problem: Problem,
    *,
    methods: object = None,
    optimizers: object = DEFAULT_OPTIMIZERS,
    references: Iterable[str] | str | None = None,
    steps: int = 500,
    lr: object = None,
    lr_grid: Sequence[float] = DEFAULT_LR_GRID,
    seed: int = 0,
    seeds: int | Sequence[int] = 1,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    tol: float | None = 1e-6,
    grad_tol: float | None = 1e-6,
    time_budget: float | None = None,
    skip_invalid: bool = False,
    skip_inapplicable: bool = False,
    threads: int | None = None,
    progress: str | bool | None = None,
) -> Comparison:
    r"""Run every (method, optimizer) pair on ``problem`` from the same starts and compare.

    Parameters
    ----------
    problem : Problem
        Any :class:`~cwy_manifolds.problems.Problem`
        (:meth:`~cwy_manifolds.problems.Problem.from_function` makes one from a loss); its
        ``loss`` is applied to ``matrix(x)``.
    methods : str, geoopt.manifolds.base.Manifold, iterable or mapping, optional
        Registry names (:data:`~cwy_manifolds.registry.METHODS`), with constructor
        options if wanted (``"cwy(gradient=matrix)"``,
        :func:`~cwy_manifolds.tools.choices.parse_method`), geoopt manifold instances,
        ``(label, manifold)`` pairs, or a ``{label: manifold}`` mapping, e.g.
        ``{"cwy-L8": CWY(n_reflections=8)}``. A bare string is one name. Default: every
        default method that applies (Note [components of O(n)]).
    optimizers : str, callable, iterable or mapping, default ``("rsgd", "radam")``
        Registry names (:data:`~cwy_manifolds.registry.OPTIMIZERS`), or factories
        ``(params, lr) -> torch.optim.Optimizer``, labelled as for ``methods``.
    references : iterable of str, optional
        pymanopt solvers, keys of :data:`~cwy_manifolds.tools.compare.REFERENCES`; each
        runs on pymanopt's manifold (method ``pymanopt``) and on the vectors of every flat
        method compared. Default: all of them when pymanopt is installed.
    steps : int, default 500
        Steps (solver iterations) per run at most.
    lr : float, optional
        A fixed learning rate (any positive real: int, float, NumPy scalar, 0-d tensor)
        instead of the grid search.
    lr_grid : sequence of float, default :data:`~cwy_manifolds.tools.compare.DEFAULT_LR_GRID`
        The rates searched per pair (Note [fair learning rates]).
    seed : int, default 0
        Seed of the first start (a non-negative integer below :math:`2^{63}`).
    seeds : int or sequence of int, default 1
        Starts per pair: ``seed, seed + 1, ...``, or the given seeds. Tables report the
        median and range over them.
    dtype, device
        Of the optimized parameters; metrics are computed in float64 on the CPU.
        pymanopt rows run in float64 on the CPU.
    tol : float or None, default 1e-6
        Stop a run once the relative gap is at most ``tol`` (Note [stopping rules]).
    grad_tol : float or None, default 1e-6
        Stop a run once the Riemannian gradient norm of the matrix is at most ``grad_tol``.
    time_budget : float, optional
        Seconds of optimization per run at most.
    skip_invalid : bool, default False
        Skip (with a note) pairs whose optimizer cannot run on the method, such as torch's
        ``adam`` on a Stiefel manifold; by default they raise
        :class:`~cwy_manifolds.tools.results.ConfigError`.
    skip_inapplicable : bool, default False
        Skip (with a note) methods named in ``methods`` that cannot stand for the
        problem's matrices (``cwy`` on a thin problem, a manifold instance of the other
        component of :math:`O(n)`), as defaults are; by default they raise
        :class:`~cwy_manifolds.tools.results.ConfigError`.
        :func:`~cwy_manifolds.tools.suite.compare_suite` sets it.
    threads : int, optional
        torch threads for the comparison (restored after); default: unchanged.
    progress : {"bar", "lines"}, bool or None
        ``"lines"``: one line per finished pair on stdout; ``"bar"`` or True: a bar on
        stderr; default: the bar on a terminal, nothing otherwise.

    Returns
    -------
    Comparison
        When interrupted by Ctrl-C (KeyboardInterrupt), the pairs finished so far, with
        ``interrupted=True``.

    Raises
    ------
    ConfigError
        For bad settings, with one line naming the setting or the pair.

    Examples
    --------
    >>> from cwy_manifolds import compare
    >>> from cwy_manifolds.problems import PCA
    >>> result = compare(PCA.random(8, 2), methods=["tcwy", "qr"], optimizers="radam",
    ...                  references=[], lr_grid=[0.1, 0.3, 1.0], threads=1)
    >>> [(row["method"], row["gap"] <= 1e-6) for row in result.table()]
    [('tcwy', True), ('qr', True)]
    """
    if not isinstance(problem, Problem):
        raise ConfigError(f"problem must be a cwy_manifolds.problems.Problem; got {problem!r}")
    seed_list = _seeds(seed, seeds)
    steps = _check_int(steps, "steps", 1)
    fixed = None if lr is None else check_real(lr, "lr")
    rates = [check_real(r, "learning rates in lr_grid") for r in lr_grid] if lr is None else []
    if lr is None and not rates:
        raise ConfigError("lr_grid must hold at least one positive learning rate")
    tols = [
        None if t is None else check_real(t, name)
        for t, name in ((tol, "tol"), (grad_tol, "grad_tol"))
    ]
    budget = None if time_budget is None else check_real(time_budget, "time_budget")
    if threads is not None:
        threads = _check_int(threads, "threads", 1)
    if dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}")
    if progress not in (None, True, False, "bar", "lines"):
        raise ConfigError(f"progress must be 'bar', 'lines', True, False or None; got {progress!r}")
    device = check_device(device)
    plan = make_plan(
        problem,
        methods,
        optimizers,
        references,
        seed=seed_list[0],
        skip_invalid=bool(skip_invalid),
        lenient=bool(skip_inapplicable),
    )
    rule = StoppingRule(steps, tols[0], tols[1], budget)
    runner = PairRunner(
        problem, plan, rule, lr=fixed, rates=rates, seeds=seed_list, device=device, dtype=dtype
    )
    mode = {None: "bar" if sys.stderr.isatty() else None, True: "bar", False: None}.get(
        progress, progress
    )
    bar = Progress(len(plan.pairs), mode, prefix=f"{problem.name} ")
    load = _load()
    runs: list[Run] = []
    interrupted = False
    with _threads(threads):
        try:
            for pair in plan.pairs:
                pair_runs = runner.pair(pair)
                runner.check_component(pair_runs)
                runs += pair_runs
                bar.advance("/".join(pair.labels), _line(pair_runs))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
    notes = _notes(problem, plan, runs, rates, seed_list, interrupted)
    settings = {
        "problem": problem.name,
        "n": problem.n,
        "p": problem.p,
        "group": problem.group,
        "steps": steps,
        "tol": tols[0],
        "grad_tol": tols[1],
        "time_budget": budget,
        "lr": fixed,
        "lr_grid": rates,
        "seeds": seed_list,
        "dtype": str(dtype),
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads() if threads is None else threads,
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "clock": "process CPU time (time.process_time) and wall-clock (time.perf_counter)",
    }
    return Comparison(problem, runs, settings, notes, plan.warnings, interrupted)


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover (not on Windows)
        return None


def _line(runs: list[Run]) -> str:
    run = runs[0]
    lr = "" if run.lr is None else f"lr={run.lr:g}, "
    more = f" (+{len(runs) - 1} seeds)" if len(runs) > 1 else ""
    return f"{lr}{run.steps} steps, {run.cpu_seconds[-1]:.3f} s CPU, {run.stop_reason}{more}"


def _notes(
    problem: Problem,
    plan: Plan,
    runs: list[Run],
    rates: list[float],
    seeds: list[int],
    stopped: bool,
) -> list[str]:
    notes = list(plan.notes)
    labels = {name for run in runs for name in (run.method, run.optimizer)}
    notes += [text for key, text in _NOTES.items() if key in labels]
    edge = [
        r.label for r in runs if r.lr_grid and len(rates) > 1 and r.lr in (min(rates), max(rates))
    ]
    if edge:
        notes.append(
            f"best learning rate at the edge of the grid for {', '.join(dict.fromkeys(edge))}: "
            "a wider grid might do better."
        )
    if any(r.method == "pymanopt" or r.optimizer.startswith("pymanopt-") for r in runs):
        notes.append(
            "pymanopt rows run on the CPU in float64 from the same starts; their "
            "steps are accepted iterates (line searches and trust-region inner "
            "iterations cost more than one gradient)."
        )
    if len(seeds) > 1:
        notes.append(f"learning rates were chosen on seed {seeds[0]} and reused for the others.")
    if stopped:
        notes.append("interrupted: only the pairs that finished are shown.")
    return notes
