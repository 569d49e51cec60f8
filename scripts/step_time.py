"""Time of one optimizer step: CWY against the QR retraction, side by side.

One step of ``geoopt.optim.RiemannianSGD`` (lr 1e-3, no momentum) on a
``geoopt.ManifoldParameter`` whose loss is the fixed linear function
``(cm.matrix(x) * g).sum()``: zero the gradient, forward, backward, ``opt.step()``.
Methods, all on square matrices:

- ``cwy``: ``cm.CWY()`` (default gauge: unit columns, ``L = N``, ``det = +1``), or
  ``cm.CWY(gradient="matrix")`` with ``--gradient matrix``;
- ``qr``: ``cm.QRStiefel()`` (the point is the matrix; QR retraction);
- ``geoopt``: geoopt's ``EuclideanStiefel`` (the point is the matrix; QR retraction);
- ``fwd+bwd``: the forward and backward pass of ``cm.matrix`` of the CWY point alone
  (no optimizer), to show where the CWY step spends its time.

The methods run in turn, round after round (the order rotating), and each figure is
the median over rounds of the mean time of ``--repeats`` steps, in microseconds; the
ratios are taken within one process. ``matmul`` is the time of one ``N x N`` matrix
product (batched for the batch case) in the same run: divide by it for figures that
travel between machines (matrix-product equivalents). The header gives the command
line, the load average before the run and the thread count; re-run when the load is
above 1.

    python scripts/step_time.py             # N = 3, 16, 32, 64, 256, 1000 x (8 x 8); f64, f32
    python scripts/step_time.py --quick     # fewer rounds and repeats
    python scripts/step_time.py --sizes 3 16 --dtypes float64
    python scripts/step_time.py --gradient matrix  # CWY(gradient="matrix") against QR
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable

import geoopt
import torch

import cwy_manifolds as cm

#: Case name -> shape of the matrix (a leading dimension is a batch).
CASES = {
    "3": (3, 3),
    "16": (16, 16),
    "32": (32, 32),
    "64": (64, 64),
    "256": (256, 256),
    "1000x8x8": (1000, 8, 8),
}
METHODS = ("cwy", "qr", "geoopt", "fwd+bwd", "matmul")


def _optimizer_step(manifold: geoopt.manifolds.Manifold, g: torch.Tensor) -> Callable[[], None]:
    """One RiemannianSGD step on a random point of ``manifold`` for the loss ``<matrix, g>``."""
    torch.manual_seed(1)
    start = manifold.random(*g.shape, dtype=g.dtype, device=g.device)
    x = geoopt.ManifoldParameter(start, manifold=manifold)
    opt = geoopt.optim.RiemannianSGD([x], lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (cm.matrix(x) * g).sum().backward()
        opt.step()

    return step


def _forward_backward(g: torch.Tensor) -> Callable[[], None]:
    """Forward and backward pass of the CWY matrix alone."""
    manifold = cm.CWY()
    torch.manual_seed(1)
    start = manifold.random(*g.shape, dtype=g.dtype, device=g.device)
    x = start.detach().requires_grad_()

    def step() -> None:
        x.grad = None
        (manifold.matrix(x) * g).sum().backward()

    return step


def _matmul(g: torch.Tensor) -> Callable[[], None]:
    a, b = torch.randn_like(g), torch.randn_like(g)
    return lambda: torch.matmul(a, b)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    rounds: int,
    repeats: int,
    gradient: str = "euclidean",
) -> dict[str, float]:
    """Median microseconds per call of each method, measured in interleaved rounds."""
    torch.manual_seed(0)
    g = torch.randn(shape, dtype=dtype, device=device)
    runs = {
        "cwy": _optimizer_step(cm.CWY(gradient=gradient), g),
        "qr": _optimizer_step(cm.QRStiefel(), g),
        "geoopt": _optimizer_step(geoopt.EuclideanStiefel(), g),
        "fwd+bwd": _forward_backward(g),
        "matmul": _matmul(g),
    }
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds + 1):  # round 0 warms up
        for name in names[r % len(names) :] + names[: r % len(names)]:
            step = runs[name]
            _sync(device)
            began = time.perf_counter()
            for _ in range(repeats):
                step()
            _sync(device)
            if r:
                times[name].append((time.perf_counter() - began) / repeats * 1e6)
    return {name: statistics.median(t) for name, t in times.items()}


def _header(args: argparse.Namespace, argv: list[str]) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    command = shlex.join(["python", "scripts/step_time.py", *argv])
    return "\n".join(
        [
            f"# {command}",
            f"# load average (1, 5, 15 min) before: {load}; {os.cpu_count()} CPUs",
            f"# torch {torch.__version__}, geoopt {geoopt.__version__}, Python "
            f"{platform.python_version()}, {args.device}, {torch.get_num_threads()} thread(s)",
            f"# median over {args.rounds} interleaved rounds of {args.repeats} steps "
            f"({max(1, args.repeats // 10)} at N = 256); microseconds per step",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Print the table of step times and CWY/QR ratios."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repeats")
    parser.add_argument("--sizes", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--dtypes", nargs="+", choices=["float64", "float32"],
                        default=["float64", "float32"])  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gradient", choices=["euclidean", "matrix"], default="euclidean",
                        help="the gradient option of the timed CWY")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--rounds", type=int, default=None, help="default 21 (quick: 7)")
    parser.add_argument("--repeats", type=int, default=None, help="default 50 (quick: 10)")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (7 if args.quick else 21)
    args.repeats = args.repeats or (10 if args.quick else 50)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        _table(args, argv)
    finally:
        torch.set_num_threads(threads)


def _table(args: argparse.Namespace, argv: list[str]) -> None:
    """Measure every case and print the header and one row per case and dtype."""
    device = torch.device(args.device)
    print(_header(args, argv))
    print()
    print(f"| case | dtype | {' | '.join(METHODS)} | CWY/QR | CWY/geoopt |")
    print("|---|---|" + "---:|" * (len(METHODS) + 2))
    for size in args.sizes:
        shape = CASES[size]
        # N = 256: fewer repeats keep the rounds short
        repeats = max(1, args.repeats // 10) if shape[-1] >= 256 else args.repeats
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            med = measure(shape, dtype, device, args.rounds, repeats, args.gradient)
            cells = " | ".join(f"{med[name]:.1f}" for name in METHODS)
            print(
                f"| {size} | {dtype_name} | {cells} | {med['cwy'] / med['qr']:.2f} | "
                f"{med['cwy'] / med['geoopt']:.2f} |",
                flush=True,
            )
    print(f"# load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
