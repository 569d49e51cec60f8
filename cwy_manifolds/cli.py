"""Command-line entry point: ``cwy-manifolds`` (also ``python -m cwy_manifolds``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cwy-manifolds",
        description="Optimization over orthogonal and Stiefel matrices with CWY and T-CWY.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    demo = sub.add_parser(
        "demo",
        help="form CWY/T-CWY matrices; compare error and time with the sequential product",
        description="Form CWY (L = N) and T-CWY (M = N/8) matrices and compare their "
        "orthogonality error and median time with the sequential Householder product.",
    )
    demo.add_argument("--sizes", type=_positive_int, nargs="+", default=[64, 256, 512], metavar="N")
    demo.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    demo.add_argument("--repeats", type=_positive_int, default=5)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from .demo import format_table, run_demo

        print(
            f"cwy_manifolds demo: torch {torch.__version__}, {args.dtype}, "
            f"{torch.get_num_threads()} threads, median of {args.repeats} runs"
        )
        print(format_table(run_demo(args.sizes, dtype=DTYPES[args.dtype], repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
