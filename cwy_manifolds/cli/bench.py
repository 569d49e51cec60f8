"""``cwy-manifolds bench``: the speed benchmark from the command line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from ..registry import DTYPES
from ..tools.bench import METHODS, benchmark, format_table, plot, write_csv

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``cwy-manifolds bench`` to ``parser``."""
    parser.add_argument("--quick", action="store_true", help="small grid, about a minute")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), help="default: by mode")
    parser.add_argument("--out", default="bench-results", help="folder for bench.csv, bench.png")
    parser.add_argument("--repeats", type=int, help="timed rounds (default: 3 quick, 5 full)")
    parser.add_argument("--sizes", type=int, nargs="*", metavar="N", help="square sizes N")
    parser.add_argument("--thin", nargs="*", metavar="NxM", help="Stiefel shapes, e.g. 4096x64")
    parser.add_argument("--batch", nargs="*", metavar="BxN", help="batches, e.g. 1024x16")
    parser.add_argument("--methods", nargs="+", metavar="NAME", help=f"of {', '.join(METHODS)}")


def _out_folder(out: str | os.PathLike) -> Path:
    """Check that ``out`` is, or can be created as, a writable folder (creates nothing)."""
    path = Path(out)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor))
    if existing == path and not path.is_dir():
        raise ValueError(f"out must be a writable folder; got {str(out)!r} (a file)")
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"out must be a writable folder; got {str(out)!r} ({existing} is not)")
    return path


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed ``args`` (see :func:`add_arguments`); return 0.

    Prints the table, then the paths of the CSV file and the plot written to ``args.out``.
    Raises ValueError for bad arguments before timing anything.
    """
    out = _out_folder(args.out)
    load = os.getloadavg()[0]
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
    mode = "quick" if args.quick else "full"
    print(
        f"\ncwy_manifolds bench ({mode}): torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
        f"{load:.1f} before and {os.getloadavg()[0]:.1f} after; median over rounds; "
        "times in matmul equivalents"
    )
    print(format_table(rows))
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "bench.csv", out / "bench.png"
    write_csv(rows, csv_path)
    plot(rows, png_path)
    print(f"\nwrote {csv_path}\nwrote {png_path}")
    return 0
