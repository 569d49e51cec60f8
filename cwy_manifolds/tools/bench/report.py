"""Reports of :mod:`cwy_manifolds.tools.bench`: the text table, the CSV file and the plot."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence

from .methods import METHODS

METRICS = ("forward", "forward_backward", "step")


def _fmt(x: float, spec: str) -> str:
    return "-" if math.isnan(x) else format(x, spec)


def format_table(rows: Sequence[dict]) -> str:
    """Render benchmark rows as plain text, one block per row group.

    The rows are those of :func:`~cwy_manifolds.tools.bench.benchmark`.

    Times are in matmul equivalents (``mm``), then as ratios to the fastest peer.
    """
    lines: list[str] = []
    header = (
        f"  {'method':<27}{'family':<7}{'fwd':>9}{'fwd+bwd':>9}{'step':>9}"
        f"{'fwd/peer':>10}{'f+b/peer':>10}{'step/peer':>10}{'orth.err':>10}"
    )
    group_of = lambda r: tuple(r[k] for k in ("kind", "batch", "n", "m", "reflections", "dtype"))  # noqa: E731
    for key in dict.fromkeys(group_of(r) for r in rows):
        group = [r for r in rows if group_of(r) == key]
        kind, batch, n, m, refl, dtype = key
        lead = f"{batch} x " if kind == "batch" else ""
        lines += [
            "",
            f"{kind} {lead}{n} x {m}, L = {refl}, {dtype}, {group[0]['device']}: "
            f"1 matmul = {group[0]['matmul_ms']:.3g} ms",
            header,
        ]
        for r in group:
            if r["note"]:
                lines.append(f"  {r['method']:<27}{r['family']:<7}{r['note']}")
                continue
            cells = [_fmt(r[f"{m}_mm"], ".3g") for m in METRICS]
            cells += [_fmt(r[f"{m}_vs_peer"], ".3g") for m in METRICS]
            lines.append(
                f"  {r['method']:<27}{r['family']:<7}{cells[0]:>9}{cells[1]:>9}{cells[2]:>9}"
                f"{cells[3]:>10}{cells[4]:>10}{cells[5]:>10}"
                f"{_fmt(r['orthogonality_error'], '.1e'):>10}"
            )
    return "\n".join(lines[1:])


def write_csv(rows: Sequence[dict], path: str | os.PathLike) -> None:
    """Write the rows of :func:`~cwy_manifolds.tools.bench.benchmark` to a CSV file."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["method"])
        writer.writeheader()
        writer.writerows(rows)


def _label(row: dict) -> str:
    lead = f"{row['batch']}x" if row["kind"] == "batch" else ""
    return f"{row['kind']} {lead}{row['n']}x{row['m']} L{row['reflections']} {row['dtype']}"


def _style(name: str) -> dict:
    """Return the line style of a method: a fixed colour; ours solid with dots, peers dashed."""
    from matplotlib import colormaps

    ours = METHODS[name].family == "ours"
    return {
        "color": colormaps["tab20"](list(METHODS).index(name) % 20),
        "marker": "o" if ours else "x",
        "linestyle": "-" if ours else "--",
        "linewidth": 2 if ours else 1,
    }


def plot(rows: Sequence[dict], path: str | os.PathLike) -> None:
    """Plot matmul equivalents per method and row group (log scale) to a PNG file.

    One panel per metric; lines join the groups of one kind (square, thin, batch) only.
    """
    from matplotlib.figure import Figure  # lazy: matplotlib is needed only here

    groups = list(dict.fromkeys(_label(r) for r in rows))
    names = list(dict.fromkeys(r["method"] for r in rows))
    fig = Figure(figsize=(max(8.0, 0.4 * len(groups) + 5), 11), layout="constrained")
    axes = fig.subplots(len(METRICS), 1, sharex=True, squeeze=False)[:, 0]
    for ax, metric in zip(axes, METRICS, strict=True):
        for name in names:
            for kind in dict.fromkeys(r["kind"] for r in rows):
                points = [
                    (groups.index(_label(r)), r[f"{metric}_mm"])
                    for r in rows
                    if r["method"] == name and r["kind"] == kind and r[f"{metric}_mm"] > 0
                ]
                if points:
                    ax.plot(*zip(*points, strict=True), **_style(name))
        ax.set_yscale("log")
        ax.set_ylabel(f"{metric.replace('_', '+')}\n[matmul equivalents]")
        ax.grid(True, which="both", alpha=0.3)
    axes[-1].set_xticks(range(len(groups)), groups, rotation=60, ha="right")
    handles = [axes[0].plot([], [], **_style(name))[0] for name in names]
    fig.legend(handles, names, loc="outside right upper", fontsize="small")
    fig.savefig(path, dpi=100)
