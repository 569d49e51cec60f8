"""``cwy-manifolds compare`` (and ``demo``, the main job): methods and optimizers on a problem."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..problems import PCA, Problem, Procrustes
from ..registry import DTYPES, METHODS, OPTIMIZERS
from ..tools.compare import DEFAULT_LR_GRID, REFERENCES, compare
from ..tools.plots import plot_comparison
from ..tools.results import ConfigError
from .args import positive_float, positive_int

__all__ = ["add_parser", "make_problem", "run"]

PROBLEM_NAMES = ("pca", "procrustes", "trap", "digits")


def add_parser(sub: argparse._SubParsersAction, name: str = "compare") -> argparse.ArgumentParser:
    """Add the ``compare`` sub-command to ``sub`` (as ``name``: ``demo`` is the same job)."""
    p = sub.add_parser(
        name,
        help="compare manifolds and optimizers on a problem with a known answer"
        if name == "compare"
        else "the main job: compare with its defaults (what make demo runs)",
        description="Run every (method, optimizer) pair from the same Haar-random start on a "
        "problem with a known optimum; print a summary table and write CSV, JSON and plots. "
        "Learning rates: best of a log grid per pair unless --lr is given.",
    )
    p.add_argument(
        "--problem",
        choices=PROBLEM_NAMES,
        default="pca",
        help="pca (random covariance), procrustes, trap (square Procrustes on SO(n) "
        "whose O(n) optimum has determinant -1), digits (PCA of scikit-learn's "
        "digits, n = 64); default pca",
    )
    p.add_argument("--n", type=positive_int, default=None, help="rows (default 64)")
    p.add_argument(
        "--p",
        type=positive_int,
        default=None,
        help="columns (default 8; n for square groups and trap)",
    )
    p.add_argument(
        "--group",
        choices=("stiefel", "o", "so"),
        default="stiefel",
        help="constraint set of procrustes (default stiefel)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        metavar="METHOD",
        help=f"among {', '.join(METHODS)} (default: all that apply)",
    )
    p.add_argument(
        "--optimizers",
        nargs="+",
        choices=list(OPTIMIZERS),
        default=["rsgd", "radam"],
        metavar="OPT",
        help=f"among {', '.join(OPTIMIZERS)} (default rsgd radam)",
    )
    p.add_argument(
        "--references",
        nargs="*",
        choices=list(REFERENCES),
        metavar="SOLVER",
        help=f"pymanopt solvers among {', '.join(REFERENCES)} (default: all if "
        "pymanopt is installed; give none to skip)",
    )
    p.add_argument("--steps", type=positive_int, default=200)
    p.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="a fixed learning rate instead of the grid search",
    )
    p.add_argument(
        "--lr-grid",
        type=positive_float,
        nargs="+",
        default=None,
        metavar="LR",
        help="learning rates searched per pair (default 0.001 to 30 in half-decades)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("out/compare"), help="output folder")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def make_problem(args: argparse.Namespace) -> Problem:
    """Build the problem that ``--problem``, ``--n``, ``--p``, ``--group``, ``--seed`` ask for."""
    n = 64 if args.n is None else args.n
    square = args.problem == "trap" or (args.problem == "procrustes" and args.group != "stiefel")
    p = (n if square else min(8, n)) if args.p is None else args.p
    if args.problem == "pca":
        return PCA.random(n, p, seed=args.seed)
    if args.problem == "procrustes":
        return Procrustes.random(n, p, group=args.group, seed=args.seed)
    if args.problem == "trap":
        if p != n:
            raise ValueError(f"--p must equal --n for trap (square); got n={n}, p={p}")
        return Procrustes.determinant_trap(n, seed=args.seed)
    if n != 64:
        raise ValueError(f"--n must be 64 for digits (its number of features); got {n}")
    return PCA.digits(p)


def run(args: argparse.Namespace, fail: argparse.ArgumentParser) -> int:
    """Run ``cwy-manifolds compare`` for parsed ``args``; errors go through ``fail``."""
    try:
        problem = make_problem(args)
        device = torch.device(args.device)
    except (ValueError, RuntimeError, ImportError) as error:
        fail.error(str(error))
    if device.type == "cuda" and not torch.cuda.is_available():
        fail.error(f"--device must be available; got {args.device!r} but CUDA is not")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        probe = args.out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        fail.error(f"--out must be a writable folder; got {str(args.out)!r} ({error.strerror})")
    try:
        result = compare(
            problem,
            methods=args.methods,
            optimizers=args.optimizers,
            references=args.references,
            steps=args.steps,
            lr=args.lr,
            lr_grid=args.lr_grid or DEFAULT_LR_GRID,
            seed=args.seed,
            dtype=DTYPES[args.dtype],
            device=device,
        )
    except ConfigError as error:
        fail.error(str(error))
    print(f"{problem!r}; optimum: {problem.reference}")
    print(result.format_table())
    paths = [result.to_csv(args.out / "summary.csv"), result.to_json(args.out / "results.json")]
    if not args.no_plots:
        paths += plot_comparison(result, args.out)
    print("\nwrote:", *(f"  {path}" for path in paths), sep="\n")
    return 0
