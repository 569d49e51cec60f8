"""Plots of comparisons and suites (needs matplotlib).

Uses matplotlib's object interface with the Agg canvas, so it neither needs a display nor
changes the pyplot backend of the caller. Every line has its own colour *and* marker
(pymanopt rows included), time axes are logarithmic, and legends sit outside the axes.
The ``*_figures`` functions return figures by file name, so that callers decide how to
write them (the command line writes them atomically: ``cwy_manifolds.tools.output``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .results import Comparison, Run
from .suite import SuiteComparison

__all__ = [
    "comparison_figures",
    "draw_profile",
    "line_style",
    "plot_comparison",
    "plot_suite",
    "suite_figures",
]

_FLOOR = 1e-17  # gaps at or below zero are drawn here on the log scale
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "*", "h", "p")
_LINES = ("-", "--", "-.", ":")


def _figure_classes() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plots need matplotlib: pip install matplotlib (or 'cwy_manifolds[compare]')"
        ) from error
    return Figure, FigureCanvasAgg


def _new_figure(width: float = 9.5, height: float = 4.8, **kwargs: Any) -> Any:
    figure_class, canvas = _figure_classes()
    fig = figure_class(figsize=(width, height), layout="constrained", **kwargs)
    canvas(fig)
    return fig


def line_style(k: int) -> dict[str, object]:
    """Return the ``k``-th distinct style: a ``tab10`` colour, a marker, a dash pattern."""
    return {
        "color": f"C{k % 10}",
        "marker": _MARKERS[k % len(_MARKERS)],
        "linestyle": _LINES[(k // 10) % len(_LINES)],
    }


def _values(run: Run, y: str) -> list[float]:
    values = getattr(run, y)
    if y == "loss":
        return list(values)
    return [max(v, _FLOOR) if math.isfinite(v) else math.nan for v in values]


def _trace(ax: Any, runs: Sequence[Run], x: str, y: str, styles: dict[str, dict]) -> None:
    for run in runs:
        xs, ys = getattr(run, x), _values(run, y)
        if x != "step":  # log time axis: leave out the start at t = 0
            keep = [i for i, t in enumerate(xs) if t > 0]
            xs, ys = [xs[i] for i in keep], [ys[i] for i in keep]
        lr = "" if run.lr is None else f", lr={run.lr:g}"
        ax.plot(
            xs,
            ys,
            lw=1.3,
            ms=3.5,
            markevery=max(1, len(xs) // 8),
            label=f"{run.label}{lr}",
            **styles[run.label],
        )
    if x != "step":
        ax.set_xscale("log")
    if y != "loss":
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)


def _axis_texts(result: Comparison) -> tuple[str, str]:
    has_gap = any(math.isfinite(g) for run in result.runs for g in run.gap)
    return ("gap", "relative gap to the optimum") if has_gap else ("loss", "loss")


def _title(result: Comparison) -> str:
    s = result.settings
    return (
        f"{s['problem']} (n={s['n']}, p={s['p']}, {s['group']}), {s['dtype']}, seed {s['seeds'][0]}"
    )


def comparison_figures(result: Comparison) -> dict[str, Any]:
    """``gap_vs_step.png``, ``gap_vs_time.png``, ``feasibility_vs_step.png`` as figures.

    One line per pair (its first seed). Without a reference optimum the first two show
    the loss instead of the gap.
    """
    runs = result.first_runs()
    styles = {run.label: line_style(k) for k, run in enumerate(runs)}
    value, label = _axis_texts(result)
    specs = [
        ("gap_vs_step.png", "step", value, label),
        ("gap_vs_time.png", "cpu_seconds", value, label),
        ("feasibility_vs_step.png", "step", "feasibility", r"$\|X^\top X - I\|_F$"),
    ]
    figures = {}
    for name, x, y, ylabel in specs:
        fig = _new_figure()
        ax = fig.add_subplot()
        _trace(ax, runs, x, y, styles)
        ax.set_xlabel("process CPU seconds of the steps (log)" if x != "step" else "step")
        ax.set_ylabel(ylabel)
        ax.set_title(_title(result), fontsize=10)
        fig.legend(loc="outside right upper", fontsize=7)
        figures[name] = fig
    return figures


def draw_profile(
    ax: Any, suite: SuiteComparison, measure: str = "steps", styles: dict | None = None
) -> None:
    """Draw the performance profiles of ``suite`` in ``measure`` on the matplotlib axes ``ax``.

    One step line per (method, optimizer) pair, log2 axis of tau, a marker at each
    jump (Note [performance profiles]); ``styles`` maps pairs to line styles (default:
    :func:`~cwy_manifolds.tools.plots.line_style` in order).
    """
    if styles is None:
        styles = {pair: line_style(k) for k, pair in enumerate(suite.costs(measure))}
    taus, rho = suite.profile(measure)
    counts = {pair: len(per) for pair, per in suite.costs(measure).items()}
    total = len(suite.comparisons)
    right = max(2.0, float(taus.max()) * 1.5) if len(taus) else 2.0
    for pair, values in rho.items():
        xs, ys = [*taus.tolist(), right], [*values.tolist(), values[-1] if len(values) else 0.0]
        ran = "" if counts[pair] == total else f" ({counts[pair]} of {total})"
        jumps = [0] + [k for k in range(1, len(ys)) if ys[k] != ys[k - 1]]
        ax.step(
            xs,
            ys,
            where="post",
            lw=1.3,
            ms=5,
            markevery=jumps,
            label=f"{pair}{ran}",
            **styles[pair],
        )
    ax.set_xscale("log", base=2)
    ax.set_xlim(1, right)
    ax.set_ylim(-0.02, 1.02)
    what = "steps" if measure == "steps" else "CPU time"
    ax.set_xlabel(f"within a factor tau of the best ({what}), log2")
    ax.set_ylabel("fraction of problems solved")
    ax.set_title(f"performance profile in {what}", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)


def suite_figures(suite: SuiteComparison) -> dict[str, Any]:
    """``profile.png`` (steps and CPU time) and one ``<problem>.png`` per problem."""
    pairs = list(suite.costs("steps"))
    styles = {pair: line_style(k) for k, pair in enumerate(pairs)}
    figures = {}
    if suite.comparisons:
        fig = _new_figure(12.0, 5.0)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, measure in zip(axes, ("steps", "cpu"), strict=True):
            draw_profile(ax, suite, measure, styles)
        fig.suptitle(f"suite {suite.name}: {len(suite.comparisons)} problems", fontsize=11)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
        figures["profile.png"] = fig
    for result in suite.comparisons:
        runs = result.first_runs()
        fig = _new_figure(12.0, 4.6)
        axes = fig.subplots(1, 2, sharey=True)
        value, label = _axis_texts(result)
        for ax, x in zip(axes, ("step", "cpu_seconds"), strict=True):
            _trace(ax, runs, x, value, styles)
            ax.set_xlabel("step" if x == "step" else "process CPU seconds (log)")
        axes[0].set_ylabel(label)
        fig.suptitle(_title(result), fontsize=10)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
        figures[f"{result.problem.name}.png"] = fig
    return figures


def _save(figures: dict[str, Any], folder: str | Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        fig.savefig(folder / name, dpi=110, format="png")
        paths.append(folder / name)
    return paths


def plot_comparison(result: Comparison, folder: str | Path) -> list[Path]:
    """Write the plots of :func:`comparison_figures` into ``folder`` (created if missing)."""
    return _save(comparison_figures(result), folder)


def plot_suite(suite: SuiteComparison, folder: str | Path) -> list[Path]:
    """Write the plots of :func:`suite_figures` into ``folder`` (created if missing)."""
    return _save(suite_figures(suite), folder)
