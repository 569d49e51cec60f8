"""``cwy-manifolds compare`` and ``demo``: methods and optimizers on a problem or a suite.

``demo`` is the main message in one command (what ``make demo`` runs): every
parametrization and pymanopt's solvers on the small ``demo`` suite, three seeds, with a
performance profile. ``compare`` runs one problem (or ``--suite``) with the options given.
Bad settings fail before any run, in one line with exit code 2; Ctrl-C writes the runs
that finished and exits with code 130; outputs are written together (Note [output files]).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..problems import PROBLEMS, SUITES, Problem
from ..registry import DTYPES, METHODS, OPTIMIZERS
from ..tools.choices import check_device, parse_method
from ..tools.compare import DEFAULT_LR_GRID, DEFAULT_OPTIMIZERS, REFERENCES, compare
from ..tools.output import check_folder, write_files
from ..tools.plots import comparison_figures, suite_figures
from ..tools.results import Comparison, ConfigError
from ..tools.suite import SuiteComparison, compare_suite
from .args import DefaultsFormatter, positive_float, positive_int, seed_int
from .problems import problems_from_args

__all__ = ["add_parser", "run"]

#: Every file name the command writes besides the per-problem plots of suites.
SINGLE_PLOTS = ("gap_vs_step.png", "gap_vs_time.png", "feasibility_vs_step.png")
KNOWN = ("summary.csv", "results.json", "report.txt", "profile.png", *SINGLE_PLOTS)
DEMO = {
    "suite": "demo",
    "seeds": 3,
    "lr_grid": [0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    "optimizers": ["rsgd", "radam", "line-search"],
}


def add_parser(sub: argparse._SubParsersAction, name: str = "compare") -> argparse.ArgumentParser:
    """Add the ``compare`` sub-command to ``sub`` (as ``name``: ``demo`` has its own defaults)."""
    demo = name == "demo"
    p = sub.add_parser(
        name,
        formatter_class=DefaultsFormatter,
        help="every parametrization and pymanopt on the demo suite, with a profile (make demo)"
        if demo
        else "compare manifolds and optimizers on a problem or a suite of problems",
        description="Run every (method, optimizer) pair, and pymanopt's solvers, from the same "
        "Haar-random starts on a problem (or a suite), under the same stopping rules; print "
        "a summary table and write summary.csv, results.json, report.txt and plots. "
        "Learning rates: best of a log grid per pair unless --lr is given.",
    )
    where = p.add_argument_group("problem")
    where.add_argument(
        "--problem",
        metavar="NAME|MODULE:ATTR|FILE.py:ATTR",
        help=f"a problem type ({', '.join(PROBLEMS)}), or a user's Problem (or a zero-argument "
        "callable returning one) as module:attribute or path/to/file.py:attribute "
        "(default: pca)",
    )
    where.add_argument(
        "--suite",
        choices=list(SUITES),
        help="run every problem of a named suite and draw performance profiles"
        + (" (default: demo, unless --problem is given)" if demo else ""),
    )
    where.add_argument("--n", type=positive_int, help="rows of the matrix (default 64)")
    where.add_argument(
        "--p", type=positive_int, help="columns (default: n on O(n)/SO(n), else min(8, n))"
    )
    where.add_argument(
        "--group",
        choices=("stiefel", "o", "so"),
        help="the constraint set (default: the type's first)",
    )
    what = p.add_argument_group("methods and optimizers")
    what.add_argument(
        "--methods",
        nargs="+",
        type=_method_spec,
        metavar="METHOD",
        help=f"among {', '.join(METHODS)}, each with constructor options if wanted, as in "
        "'cwy(gradient=matrix)' (default: the default methods that apply)",
    )
    what.add_argument(
        "--optimizers",
        nargs="+",
        choices=list(OPTIMIZERS),
        default=DEMO["optimizers"] if demo else list(DEFAULT_OPTIMIZERS),
        metavar="OPT",
        help=f"among {', '.join(OPTIMIZERS)}",
    )
    what.add_argument(
        "--references",
        nargs="*",
        choices=list(REFERENCES),
        metavar="SOLVER",
        help=f"pymanopt solvers among {', '.join(REFERENCES)}, run on pymanopt's manifold and "
        "on the CWY/T-CWY vectors (default: all if pymanopt is installed; none: skip)",
    )
    what.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip pairs whose optimizer cannot run on the method (e.g. adam on qr) with a "
        "note, instead of refusing them",
    )
    stop = p.add_argument_group("stopping rules (every run, pymanopt included)")
    stop.add_argument(
        "--steps", type=positive_int, default=500, help="maximum steps (solver iterations) per run"
    )
    stop.add_argument(
        "--tol",
        type=positive_float,
        default=1e-6,
        help="stop once the relative gap to the optimum is at most this",
    )
    stop.add_argument(
        "--grad-tol",
        type=positive_float,
        default=1e-6,
        help="stop once the Riemannian gradient norm of the matrix is at most this",
    )
    stop.add_argument(
        "--time-budget",
        type=positive_float,
        metavar="SECONDS",
        help="stop a run after this many seconds of optimization",
    )
    stop.add_argument("--lr", type=positive_float, help="a fixed learning rate instead of the grid")
    stop.add_argument(
        "--lr-grid",
        type=positive_float,
        nargs="+",
        metavar="LR",
        default=DEMO["lr_grid"] if demo else list(DEFAULT_LR_GRID),
        help="learning rates searched per pair",
    )
    run_group = p.add_argument_group("runs")
    run_group.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="seed of the problem instance and of the first start (0 <= seed < 2**63)",
    )
    run_group.add_argument(
        "--seeds",
        type=positive_int,
        default=DEMO["seeds"] if demo else 1,
        help="starts per pair (seed, seed + 1, ...); tables show the median and range",
    )
    run_group.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="float64",
        help="dtype of the optimized parameters (metrics are float64)",
    )
    run_group.add_argument(
        "--device", default="cpu", help="cpu or cuda[:k] (pymanopt rows run on the CPU)"
    )
    run_group.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch threads; one is fastest and times most steadily for small problems",
    )
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, default=Path("out/compare"), help="output folder")
    out.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def _writers(result: Comparison | SuiteComparison, report: str, plots: bool) -> dict[str, Callable]:
    writers: dict[str, Callable] = {
        "summary.csv": result.to_csv,
        "results.json": result.to_json,
        "report.txt": lambda path: Path(path).write_text(report + "\n"),
    }
    if plots:
        figures = (
            suite_figures(result)
            if isinstance(result, SuiteComparison)
            else comparison_figures(result)
        )
        for name, fig in figures.items():
            writers[name] = lambda path, fig=fig: fig.savefig(path, dpi=110, format="png")
    return writers


def _names(suite: str | None, problems: list[Problem], plots: bool) -> list[str]:
    names = ["summary.csv", "results.json", "report.txt"]
    if plots:
        names += (
            ["profile.png", *(f"{p.name}.png" for p in problems)] if suite else list(SINGLE_PLOTS)
        )
    return names


def _method_spec(text: str) -> str:
    """Check a ``--methods`` item: a registry name, or ``name(key=value, ...)`` (argparse type)."""
    try:
        name, _ = parse_method(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if name not in METHODS:
        names = ", ".join(map(repr, METHODS))
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {names})")
    return text


def run(args: argparse.Namespace, fail: argparse.ArgumentParser) -> int:
    """Run ``cwy-manifolds compare`` (or ``demo``) for parsed ``args``; errors via ``fail``.

    Returns 0, or 130 after Ctrl-C (having written the runs that finished, if any).
    """
    if args.command == "demo" and args.suite is None and args.problem is None:
        args.suite = DEMO["suite"]
    try:
        return _run(args, fail)
    except KeyboardInterrupt:  # before any run finished, or while writing
        print("interrupted: nothing new was written", file=sys.stderr)
        return 130


def _options(args: argparse.Namespace) -> dict[str, object]:
    return {
        "methods": args.methods,
        "optimizers": args.optimizers,
        "references": args.references,
        "steps": args.steps,
        "lr": args.lr,
        "lr_grid": args.lr_grid,
        "seeds": args.seeds,
        "dtype": DTYPES[args.dtype],
        "device": args.device,
        "tol": args.tol,
        "grad_tol": args.grad_tol,
        "time_budget": args.time_budget,
        "skip_invalid": args.skip_invalid,
        "threads": args.threads,
        "progress": "bar" if sys.stdout.isatty() else "lines",
    }


def _run(args: argparse.Namespace, fail: argparse.ArgumentParser) -> int:
    try:
        check_device(args.device)
        suite, problems = problems_from_args(args)
        check_folder(args.out, _names(suite, problems, not args.no_plots))
    except (ValueError, ImportError) as error:
        fail.error(str(error))
    try:
        if suite is not None:
            result: Comparison | SuiteComparison = compare_suite(
                problems, seed=args.seed, **_options(args)
            )
            result.name = suite
            report = result.format()
        else:
            result = compare(problems[0], seed=args.seed, **_options(args))
            report = result.format_table()
    except ConfigError as error:
        fail.error(str(error))
    print(report)
    if result.interrupted:
        print("interrupted: writing the runs that finished", flush=True)
    paths = write_files(args.out, _writers(result, report, not args.no_plots), known=KNOWN)
    print("\nwrote:", *(f"  {path}" for path in paths), sep="\n")
    return 130 if result.interrupted else 0
