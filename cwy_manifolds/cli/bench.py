"""``cwy-manifolds bench``: the speed benchmark from the command line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from ..registry import DTYPES
from ..tools.bench import METHODS, benchmark, format_table, plot, write_csv
from ..tools.bench.run import BenchmarkInterrupted
from ..tools.output import check_folder, write_files

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``cwy-manifolds bench`` to ``parser``."""
    parser.add_argument("--quick", action="store_true", help="small grid, about a minute")
    parser.add_argument("--device", default="cpu", help="torch device, cpu or cuda (default: cpu)")
    parser.add_argument(
        "--dtype", nargs="+", choices=sorted(DTYPES), help="default: float32 (quick), both (full)"
    )
    parser.add_argument(
        "--out",
        default="bench-results",
        help="folder for bench.csv, bench.png (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, help="timed rounds (default: 3 quick, 5 full)")
    parser.add_argument("--sizes", type=int, nargs="*", metavar="N", help="square sizes N")
    parser.add_argument("--thin", nargs="*", metavar="NxM", help="Stiefel shapes, e.g. 4096x64")
    parser.add_argument("--batch", nargs="*", metavar="BxN", help="batches, e.g. 1024x16")
    parser.add_argument("--methods", nargs="+", metavar="NAME", help=f"of {', '.join(METHODS)}")


OUTPUTS = ("bench.csv", "bench.png")


def _write(rows: list[dict], out: Path) -> list[Path]:
    """Write the CSV file and the plot of ``rows`` to ``out`` together (Note [output files])."""
    writers = {"bench.csv": lambda p: write_csv(rows, p), "bench.png": lambda p: plot(rows, p)}
    return write_files(out, writers, known=OUTPUTS)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed ``args`` (see :func:`add_arguments`); return the exit code.

    Prints the table, then the paths of the CSV file and the plot written to ``args.out``.
    Raises ValueError for bad arguments, including an output folder that cannot be
    written, before timing anything. On Ctrl-C, writes the row groups finished so far,
    says so in one line and returns 130.
    """
    out = check_folder(args.out, OUTPUTS)
    load = os.getloadavg()[0]
    try:
        rows = benchmark(
            quick=args.quick,
            sizes=args.sizes,
            thin=args.thin,
            batch=args.batch,
            dtypes=args.dtype,
            device=args.device,
            repeats=args.repeats,
            methods=args.methods,
            progress=lambda line: print(f"timing {line}", flush=True),
        )
    except BenchmarkInterrupted as stop:
        paths = _write(stop.rows, out) if stop.rows else []
        written = ", ".join(map(str, paths)) or "nothing (no group had finished)"
        print(f"\ninterrupted: wrote the {len(stop.rows)} rows finished so far to {written}")
        return 130
    mode = "quick" if args.quick else "full"
    print(
        f"\ncwy_manifolds bench ({mode}): torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
        f"{load:.1f} before and {os.getloadavg()[0]:.1f} after; median over rounds; "
        "times in matmul equivalents"
    )
    print(format_table(rows))
    paths = _write(rows, out)
    print("", *(f"wrote {path}" for path in paths), sep="\n")
    return 0
