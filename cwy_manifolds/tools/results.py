r"""The results of :func:`~cwy_manifolds.compare`: runs, tables, CSV and JSON.

One :class:`Run` per (method, optimizer) pair; the :class:`Comparison` holds them,
formats the summary table and writes it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..problems import Problem

__all__ = ["Comparison", "ConfigError", "Run"]


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
        Names from :data:`~cwy_manifolds.registry.METHODS` and
        :data:`~cwy_manifolds.registry.OPTIMIZERS` (``"pymanopt"`` and a key of
        :data:`~cwy_manifolds.tools.compare.REFERENCES` for reference rows).
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
    """What :func:`~cwy_manifolds.compare` returns: the problem, the runs, settings and notes."""

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
