"""Fixed-width text tables of comparisons (what the command line prints)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import Comparison

__all__ = ["format_comparison", "header"]

#: Short words for the stop codes, for the "stopped" column.
STOP_WORDS = {
    "gap": "gap tol",
    "grad": "grad tol",
    "critical": "critical pt",
    "steps": "max steps",
    "time": "time budget",
    "capped": "capped",
    "diverged": "diverged",
    "infeasible": "left manifold",
    "solver": "solver",
    "interrupted": "interrupted",
}
_GROUPS = {"stiefel": "St({n}, {p})", "o": "O({n})", "so": "SO({n})"}


def _num(value: object, fmt: str, missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, fmt)


def _range(row: dict, key: str, fmt: str) -> str:
    low, mid, high = row[f"{key}_min"], row[key], row[f"{key}_max"]
    if row["seeds"] == 1:
        return format(mid, fmt)
    return f"{mid:{fmt}} [{low:{fmt}}-{high:{fmt}}]"


def header(result: Comparison) -> list[str]:
    """Lines naming the problem, its optimum, the seeds, the clock and the machine load."""
    s = result.settings
    problem = result.problem
    where = _GROUPS[problem.group].format(n=problem.n, p=problem.p)
    optimum = problem.optimum
    value = "unknown" if optimum is None else f"{optimum:.10g}"
    seeds = s["seeds"]
    load = s.get("load_average")
    load_text = " ".join(f"{v:g}" for v in load) if load else "unknown"
    return [
        f"{problem.name}: {where}, optimum {value} ({problem.reference})",
        f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} per pair"
        + (" (median [min-max]); " if len(seeds) > 1 else "; ")
        + f"times are process CPU seconds of the steps (wall-clock in summary.csv); "
        f"load average {load_text} on {s.get('cpu_count')} cores, {s.get('threads')} torch "
        f"thread{'s' if s.get('threads') != 1 else ''}",
    ]


def format_comparison(result: Comparison) -> str:
    """Format the summary table of ``result``: header, rows, rates, notes and warnings."""
    rows = result.table()
    has_gap = any(isinstance(r["gap"], float) and math.isfinite(r["gap"]) for r in rows)
    # labels are never cut: long ones ("cwy(gradient=matrix)") widen their column
    wm = max([18, *(len(r["method"]) + 2 for r in rows)])
    wo = max([13, *(len(r["optimizer"]) + 2 for r in rows)])
    head = (
        f"{'method':<{wm}}{'optimizer':<{wo}}{'lr':>7}{'final loss':>13}"
        + (f"{'gap':>9}" if has_gap else "")
        + f"{'|grad|':>9}{'steps':>17}{'CPU s':>22}{'ms/step':>9}  stopped"
    )
    lines = [*header(result), "", head, "-" * (len(head) + 12)]
    for row in rows:
        lr = "" if row["lr"] is None else f"{row['lr']:g}"
        stopped = STOP_WORDS.get(row["stop_code"], row["stop_code"])
        if row["seeds"] > 1:
            stopped += f" ({row['converged']}/{row['seeds']} conv.)"
        lines.append(
            f"{row['method']:<{wm}}{row['optimizer']:<{wo}}{lr:>7}{row['loss']:>13.6g}"
            + (f"{_num(row['gap'], '9.1e', '        -')}" if has_gap else "")
            + f"{_num(row['grad_norm'], '9.1e', '        -')}"
            + f"{_range(row, 'steps', 'g'):>17}{_range(row, 'cpu_s', '.3f'):>22}"
            + f"{_num(row['cpu_ms_per_step'], '9.2f', '        -')}  {stopped}"
        )
    if not rows:
        lines.append("(no runs finished)")
    grids = [f"  {r.label}: {_grid_text(r)}" for r in result.first_runs() if r.lr_grid]
    if grids:
        lines += ["", "outcome for each learning rate tried (* = reported):", *grids]
    lines += [""] + [f"note: {n}" for n in result.notes]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def _grid_text(run: object) -> str:
    return "  ".join(
        f"{lr:g}{'*' if lr == run.lr else ''}: {text}" for lr, text in run.lr_grid.items()
    )
