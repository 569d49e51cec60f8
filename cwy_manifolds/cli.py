"""Command-line entry point: ``cwy-manifolds`` (also ``python -m cwy_manifolds``).

Sub-commands: ``compare`` (the main job: optimizers and manifolds on a problem with a
known answer, a table and plots), ``bench`` (the speed benchmark against the peers,
:mod:`cwy_manifolds.bench`) and ``demo`` (the functional core against the sequential
product of reflections). Bad input gives a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import torch

if TYPE_CHECKING:
    from .problems import Problem

DTYPES = {"float32": torch.float32, "float64": torch.float64}
PROBLEM_NAMES = ("pca", "procrustes", "trap", "digits")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text}")
    return value


def _add_compare(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .compare import METHODS, OPTIMIZERS, REFERENCES

    p = sub.add_parser(
        "compare",
        help="compare manifolds and optimizers on a problem with a known answer",
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
    p.add_argument("--n", type=_positive_int, default=None, help="rows (default 64)")
    p.add_argument(
        "--p",
        type=_positive_int,
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
    p.add_argument("--steps", type=_positive_int, default=200)
    p.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        help="a fixed learning rate instead of the grid search",
    )
    p.add_argument(
        "--lr-grid",
        type=_positive_float,
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


def _parser() -> tuple[_Parser, dict[str, argparse.ArgumentParser]]:
    parser = _Parser(
        prog="cwy-manifolds",
        description="Optimization over orthogonal and Stiefel matrices with CWY and T-CWY.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="command", parser_class=_Parser
    )
    compare = _add_compare(sub)
    demo = sub.add_parser(
        "demo",
        help="form CWY/T-CWY matrices; compare error and time with the sequential product",
        description="Form CWY (L = N) and T-CWY (M = N/8) matrices and compare their "
        "orthogonality error and median time with the sequential Householder product.",
    )
    demo.add_argument("--sizes", type=_positive_int, nargs="+", default=[64, 256, 512], metavar="N")
    demo.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    demo.add_argument("--repeats", type=_positive_int, default=5)
    from .bench import add_arguments

    bench = sub.add_parser(
        "bench",
        help="time forming orthogonal matrices and optimizer steps against the peers",
        description="Time CWY/T-CWY and the peers (torch's orthogonal maps, geoopt's and "
        "this package's Stiefel retractions, the Householder products, geotorch if "
        "installed) in matmul equivalents; print the table, write bench.csv and bench.png.",
    )
    add_arguments(bench)
    return parser, {"compare": compare, "demo": demo, "bench": bench}


def _make_problem(args: argparse.Namespace) -> Problem:
    from .problems import PCA, Procrustes

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


def _compare(args: argparse.Namespace, fail: argparse.ArgumentParser) -> int:
    from .compare import DEFAULT_LR_GRID, ConfigError, compare

    try:
        problem = _make_problem(args)
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
        from .plots import plot_comparison

        paths += plot_comparison(result, args.out)
    print("\nwrote:", *(f"  {path}" for path in paths), sep="\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser, commands = _parser()
    args = parser.parse_args(argv)
    if args.command == "compare":
        return _compare(args, commands["compare"])
    if args.command == "bench":
        from .bench import run

        try:
            return run(args)
        except ValueError as error:
            commands["bench"].error(str(error))
    from .demo import format_table, run_demo

    print(
        f"cwy_manifolds demo: torch {torch.__version__}, {args.dtype}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} runs"
    )
    print(format_table(run_demo(args.sizes, dtype=DTYPES[args.dtype], repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
