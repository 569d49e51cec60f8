"""Command-line entry point: ``cwy-manifolds`` (also ``python -m cwy_manifolds``).

Sub-commands: ``compare`` (the main job: methods and optimizers on a problem, a user's
problem or a suite, with tables and plots; ``cwy_manifolds.cli.compare``), ``demo`` (every
parametrization and pymanopt on the small ``demo`` suite with a performance profile, what
``make demo`` runs) and ``bench`` (the speed benchmark against the peers;
``cwy_manifolds.cli.bench``). Bad input gives a one-line error and exit code 2; Ctrl-C
during a comparison writes the finished runs and exits with code 130. The command line
sits on top of the package: nothing imports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import geoopt
import torch

from .. import __version__
from . import bench, compare
from .args import Parser

__all__ = ["main"]


def _parser() -> tuple[Parser, dict[str, argparse.ArgumentParser]]:
    parser = Parser(
        prog="cwy-manifolds",
        description="Optimization over orthogonal and Stiefel matrices with CWY and T-CWY.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__} (torch {torch.__version__}, geoopt {geoopt.__version__})",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="command", parser_class=Parser
    )
    commands = {"compare": compare.add_parser(sub)}
    commands["demo"] = compare.add_parser(sub, name="demo")
    commands["bench"] = sub.add_parser(
        "bench",
        help="time forming orthogonal matrices and optimizer steps against the peers",
        description="Time CWY/T-CWY and the peers (torch's orthogonal maps, geoopt's and "
        "this package's Stiefel retractions, the Householder products, geotorch if "
        "installed) in matmul equivalents; print the table, write bench.csv and bench.png.",
    )
    bench.add_arguments(commands["bench"])
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser, commands = _parser()
    args = parser.parse_args(argv)
    fail = commands[args.command]
    if args.command == "bench":
        try:
            return bench.run(args)
        except ValueError as error:
            fail.error(str(error))
    return compare.run(args, fail)


if __name__ == "__main__":
    sys.exit(main())
