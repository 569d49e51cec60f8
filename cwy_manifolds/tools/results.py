r"""The results of :func:`~cwy_manifolds.compare`: runs, per-pair summaries, files.

One :class:`Run` per (method, optimizer, seed); the :class:`Comparison` holds them,
summarises each pair over its seeds (median and range) and writes CSV and JSON.
Formatting lives in ``cwy_manifolds.tools.tables``.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import Tensor

from ..problems import Problem

__all__ = ["SUMMARY_FIELDS", "Comparison", "ConfigError", "NothingToRunError", "Run"]


class ConfigError(ValueError):
    """A comparison was asked for with invalid settings (names, pairs, sizes, paths)."""


class NothingToRunError(ConfigError):
    """No (method, optimizer) pair applies to the problem."""


@dataclass
class Run:
    r"""One run of a (method, optimizer) pair from one start: settings, trace, outcome.

    The trace has one entry per recorded point: the start, then the point after each
    step (for pymanopt rows: each accepted iterate).

    Attributes
    ----------
    method, optimizer : str
        Labels: registry names (:data:`~cwy_manifolds.registry.METHODS`,
        :data:`~cwy_manifolds.registry.OPTIMIZERS`), the labels given for custom ones,
        ``"pymanopt"`` (pymanopt's own manifold) and ``"pymanopt-sd"``, ``"pymanopt-cg"``,
        ``"pymanopt-tr"``.
    lr : float or None
        The learning rate (None for optimizers that choose their own steps).
    seed : int
        Seed of the start.
    stop_reason : str
        Why the run stopped, in plain words (Note [stopping rules]).
    stop_code : str
        The same as a short code (:class:`~cwy_manifolds.tools.stopping.Stop`).
    converged : bool
        Whether it met the gap (or, without an optimum, the gradient) tolerance.
    step, loss, gap, feasibility, grad_norm, seconds, cpu_seconds : list
        The trace: step number, loss, relative gap, :math:`\|X^\top X - I\|_F`, Riemannian
        gradient norm of the matrix, cumulative wall-clock and process CPU seconds of the
        steps (Note [timing]).
    lr_grid : dict
        Learning rate -> short outcome, for every rate tried in a search.
    extras : dict
        The problem's extra metrics at the final point
        (:meth:`~cwy_manifolds.problems.Problem.extra_metrics`).
    point : torch.Tensor or None
        The final matrix (float64, CPU); kept in memory, not written to JSON.
    """

    method: str
    optimizer: str
    lr: float | None
    seed: int = 0
    stop_reason: str = ""
    stop_code: str = ""
    converged: bool = False
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    gap: list[float] = field(default_factory=list)
    feasibility: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    lr_grid: dict[float, str] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)
    point: Tensor | None = field(default=None, repr=False)

    def record(self, step: int, metrics: dict[str, float], wall: float, cpu: float) -> None:
        """Append one point of the trace."""
        self.step.append(step)
        self.loss.append(metrics["loss"])
        self.gap.append(metrics["gap"])
        self.feasibility.append(metrics["feasibility"])
        self.grad_norm.append(metrics.get("grad_norm", math.nan))
        self.seconds.append(wall)
        self.cpu_seconds.append(cpu)

    @property
    def label(self) -> str:
        """``"method/optimizer"``."""
        return f"{self.method}/{self.optimizer}"

    @property
    def steps(self) -> int:
        """Steps taken."""
        return self.step[-1] if self.step else 0

    @property
    def final_loss(self) -> float:
        """Loss at the final point."""
        return self.loss[-1] if self.loss else math.nan

    def cost(self, measure: str = "steps") -> float:
        """Return steps, ``"cpu"`` or ``"wall"`` seconds to convergence; inf if not converged."""
        if not self.converged or not self.step:
            return math.inf
        return {"steps": self.steps, "cpu": self.cpu_seconds[-1], "wall": self.seconds[-1]}[measure]

    def to_dict(self) -> dict[str, object]:
        """Plain values for JSON (the final point left out)."""
        data = asdict(self)
        data.pop("point")
        data["lr_grid"] = [[lr, text] for lr, text in self.lr_grid.items()]
        return data


#: Columns of :meth:`Comparison.table` (and of ``summary.csv``), in order.
SUMMARY_FIELDS = (
    "problem",
    "method",
    "optimizer",
    "lr",
    "seeds",
    "converged",
    "loss",
    "gap",
    "grad_norm",
    "max_feasibility",
    "steps",
    "steps_min",
    "steps_max",
    "cpu_s",
    "cpu_s_min",
    "cpu_s_max",
    "wall_s",
    "wall_s_min",
    "wall_s_max",
    "cpu_ms_per_step",
    "wall_ms_per_step",
    "steps_to_tol",
    "cpu_s_to_tol",
    "wall_s_to_tol",
    "stop_code",
    "stop_reason",
    "lr_grid",
    "extra",
)


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def summarize(problem: str, runs: Sequence[Run]) -> dict[str, object]:
    """One summary row for the runs of one pair over its seeds (medians and ranges).

    ``*_to_tol`` are medians over the seeds of the cost to convergence, with runs that
    did not converge counted as infinite (so ``None`` when half or more failed).
    """
    first = runs[0]
    steps = [r.steps for r in runs]
    cpu = [r.cpu_seconds[-1] if r.cpu_seconds else 0.0 for r in runs]
    wall = [r.seconds[-1] if r.seconds else 0.0 for r in runs]

    def to_tol(measure: str) -> float | None:
        value = statistics.median(r.cost(measure) for r in runs)
        return None if math.isinf(value) else value

    codes = [r.stop_code for r in runs]
    reason = first.stop_reason
    if len(runs) > 1 and len(set(codes)) > 1:
        counts = {c: codes.count(c) for c in dict.fromkeys(codes)}
        reason += " (" + ", ".join(f"{c}: {k} of {len(runs)}" for c, k in counts.items()) + ")"
    per_step = [c / s for c, s in zip(cpu, steps, strict=True) if s]
    wall_step = [w / s for w, s in zip(wall, steps, strict=True) if s]
    return {
        "problem": problem,
        "method": first.method,
        "optimizer": first.optimizer,
        "lr": first.lr,
        "seeds": len(runs),
        "converged": sum(r.converged for r in runs),
        "loss": _median([r.final_loss for r in runs]),
        "gap": _median([r.gap[-1] for r in runs if r.gap]),
        "grad_norm": _median([r.grad_norm[-1] for r in runs if r.grad_norm]),
        "max_feasibility": max((max(r.feasibility) for r in runs if r.feasibility), default=0.0),
        "steps": statistics.median(steps),
        "steps_min": min(steps),
        "steps_max": max(steps),
        "cpu_s": statistics.median(cpu),
        "cpu_s_min": min(cpu),
        "cpu_s_max": max(cpu),
        "wall_s": statistics.median(wall),
        "wall_s_min": min(wall),
        "wall_s_max": max(wall),
        "cpu_ms_per_step": 1e3 * statistics.median(per_step) if per_step else math.nan,
        "wall_ms_per_step": 1e3 * statistics.median(wall_step) if wall_step else math.nan,
        "steps_to_tol": to_tol("steps"),
        "cpu_s_to_tol": to_tol("cpu"),
        "wall_s_to_tol": to_tol("wall"),
        "stop_code": first.stop_code,
        "stop_reason": reason,
        "lr_grid": " ".join(f"{lr:g}:{text}" for lr, text in first.lr_grid.items()),
        "extra": " ".join(f"{k}={v:.6g}" for k, v in first.extras.items()),
    }


@dataclass
class Comparison:
    """What :func:`~cwy_manifolds.compare` returns: problem, runs, settings, notes, warnings.

    Attributes
    ----------
    problem : Problem
    runs : list of Run
        Every run kept: for each pair, one per seed, in pair order.
    settings : dict
        What was asked for, and the machine (threads, load average).
    notes : list of str
        Facts a reader needs (skipped pairs, reference optimum, fairness notes).
    warnings : list of str
        Results to distrust, e.g. a run that ended in another component of :math:`O(n)`
        than the reference solution.
    interrupted : bool
        True when Ctrl-C stopped the comparison; the runs are those that finished.
    """

    problem: Problem
    runs: list[Run]
    settings: dict[str, object]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False

    def pairs(self) -> list[tuple[str, str]]:
        """Return the (method, optimizer) labels, in table order."""
        return list(dict.fromkeys((r.method, r.optimizer) for r in self.runs))

    def runs_of(self, method: str, optimizer: str) -> list[Run]:
        """Return the runs of one pair (one per seed)."""
        return [r for r in self.runs if (r.method, r.optimizer) == (method, optimizer)]

    def first_runs(self) -> list[Run]:
        """Return the run of the first seed of every pair, in the order of :meth:`pairs`."""
        return [self.runs_of(*pair)[0] for pair in self.pairs()]

    def table(self) -> list[dict[str, object]]:
        """Return summary rows, one per pair (columns ``SUMMARY_FIELDS``), as plain dicts."""
        return [summarize(self.problem.name, self.runs_of(*pair)) for pair in self.pairs()]

    def format_table(self) -> str:
        """Format the summary as fixed-width text, with notes and warnings below it."""
        from .tables import format_comparison

        return format_comparison(self)

    def to_csv(self, path: str | Path) -> Path:
        """Write the summary table as CSV (a header only when there are no runs)."""
        return write_csv(path, self.table())

    def to_json(self, path: str | Path) -> Path:
        """Write settings, notes, warnings, summary and every trace as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, default=str))
        return Path(path)

    def to_dict(self) -> dict[str, object]:
        """Everything but the final points, as plain values."""
        return {
            "problem": repr(self.problem),
            "reference": self.problem.reference,
            "optimum": self.problem.optimum,
            "settings": self.settings,
            "notes": self.notes,
            "warnings": self.warnings,
            "interrupted": self.interrupted,
            "summary": self.table(),
            "runs": [run.to_dict() for run in self.runs],
        }


def write_csv(path: str | Path, rows: Sequence[dict[str, object]]) -> Path:
    """Write summary rows under the ``SUMMARY_FIELDS`` header; return the path."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(SUMMARY_FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)
