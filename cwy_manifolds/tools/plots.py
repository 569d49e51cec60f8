"""Plots of a :class:`~cwy_manifolds.tools.results.Comparison` (needs matplotlib).

Uses matplotlib's object interface with the Agg canvas, so it neither needs a display nor
changes the pyplot backend of the caller.
"""

from __future__ import annotations

import math
from pathlib import Path

from .results import Comparison, Run

__all__ = ["plot_comparison"]

_FLOOR = 1e-17  # gaps at or below zero are drawn here on the log scale
_STYLES = {"rsgd": "-", "radam": "--", "sgd": "-.", "adam": ":"}


def _series(run: Run, y: str) -> list[float]:
    return [max(v, _FLOOR) if math.isfinite(v) else math.nan for v in getattr(run, y)]


def plot_comparison(result: Comparison, folder: str | Path) -> list[Path]:
    """Write ``gap_vs_step.png``, ``gap_vs_time.png`` and ``feasibility_vs_step.png``.

    Parameters
    ----------
    result : Comparison
        From :func:`~cwy_manifolds.compare`.
    folder : str or pathlib.Path
        Created if missing.

    Returns
    -------
    list of pathlib.Path
        The files written. Without a reference optimum (gap NaN) the first two plots
        show the loss instead of the gap.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plots need matplotlib: pip install matplotlib (or 'cwy_manifolds[compare]')"
        ) from error
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    has_gap = any(math.isfinite(g) for run in result.runs for g in run.gap)
    value, label = ("gap", "relative gap to the optimum") if has_gap else ("loss", "loss")
    specs = [
        ("gap_vs_step.png", "step", value, label),
        ("gap_vs_time.png", "seconds", value, label),
        ("feasibility_vs_step.png", "step", "feasibility", r"$\|X^\top X - I\|_F$"),
    ]
    colors: dict[str, str] = {}
    paths = []
    for name, x, y, ylabel in specs:
        fig = Figure(figsize=(7.5, 4.8), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for run in result.runs:
            color = colors.setdefault(run.method, f"C{len(colors) % 10}")
            style = _STYLES.get(run.optimizer, (0, (1, 1)))
            lr = "" if run.lr is None else f", lr={run.lr:g}"
            values = _series(run, y) if y != "loss" else run.loss
            ax.plot(
                getattr(run, x),
                values,
                linestyle=style,
                color=color,
                lw=1.4,
                label=f"{run.method}/{run.optimizer}{lr}",
            )
        if y != "loss":
            ax.set_yscale("log")
        ax.set_xlabel("wall-clock seconds of the steps" if x == "seconds" else x)
        ax.set_ylabel(ylabel)
        s = result.settings
        ax.set_title(f"{s['problem']} (n={s['n']}, p={s['p']}, {s['group']}), {s['dtype']}")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        path = folder / name
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths
