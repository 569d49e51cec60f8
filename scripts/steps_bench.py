"""Steps to a tight tolerance: every manifold of the package, its best learning rate.

For each problem, manifold and optimizer, run from the same Haar start with every
learning rate of a log grid and report the fewest steps after which the relative gap
``(f - f*) / max(1, |f*|)`` is below ``--tol`` (default 1e-10), with the learning rate
that took them. float64 throughout. A run stops when it reaches the tolerance, diverges
(non-finite or exploding loss, or invalid vectors) or needs more steps than the best
learning rate so far. The problems, all with a known optimum:

(a) dominant invariant subspace: minimise ``-tr(X^T A X)`` on St(1000, 10), ``A``
    symmetric indefinite with Haar eigenvectors, eigenvalues uniform on [-1, 1] and
    ``p`` above them with an eigengap of 0.1; optimum minus the sum of the top ``p``.
(b) Brockett cost ``tr(X^T A X N)`` on St(300, 8), ``N = diag(p, ..., 1)``, ``A``
    symmetric with eigenvalues -1, -0.9, ..., (``p`` of them, gaps 0.1) and the rest
    uniform on [0, 1]; the minimum pairs the eigenvalues in ascending order with ``N``'s
    diagonal in descending order: ``sum_i (p - i + 1) lambda_i``.
(c) ``cm.problems.PCA.random(64, 8, eigengap=1.1, condition=100)``.
(d) ``cm.problems.Procrustes.random(32, group="o", det=-1)``: square, optimum in the
    determinant -1 component; every manifold takes ``det=-1`` (CWY for the vectors).

Manifolds: QR, Cayley and exponential-map Stiefel manifolds, T-CWY (CWY for (d)) with
the default gauge, and the same with ``gauge="unit"`` and ``gauge="free"`` (the geometry
of earlier releases, "as shipped"); for (d) also ``CWY(gradient="matrix")``. Optimizers:
geoopt's RiemannianSGD (momentum 0.9) and RiemannianAdam.

    python scripts/steps_bench.py                 # the tables (several minutes)
    python scripts/steps_bench.py --quick         # smaller problems, a quick look
    python scripts/steps_bench.py --only d        # one problem (letters a-d)
    python scripts/steps_bench.py --plot          # also docs/_static/optimizing_vectors.png
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geoopt
import numpy as np
import torch

import cwy_manifolds as cm

F64 = torch.float64
GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
OPTIMIZERS: dict[str, Callable] = {
    "rsgd": lambda params, lr: geoopt.optim.RiemannianSGD(params, lr=lr, momentum=0.9),
    "radam": lambda params, lr: geoopt.optim.RiemannianAdam(params, lr=lr),
}
TITLES = {"rsgd": "RiemannianSGD (momentum 0.9)", "radam": "RiemannianAdam"}
PLOT = Path(__file__).resolve().parents[1] / "docs" / "_static" / "optimizing_vectors.png"


@dataclass
class Problem:
    """A loss on St(n, p) (O(n) with ``det`` when square) with its optimum ``fstar``."""

    name: str
    n: int
    p: int
    loss: Callable[[torch.Tensor], torch.Tensor]
    fstar: float
    det: int | None = None
    note: str = ""


def _spectral(eigenvalues: np.ndarray, seed: int) -> torch.Tensor:
    """``Q diag(eigenvalues) Q^T`` with Haar-random ``Q`` (symmetrised)."""
    n = len(eigenvalues)
    g = np.random.default_rng(seed).standard_normal((n, n))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))
    a = (q * eigenvalues) @ q.T
    return torch.from_numpy((a + a.T) / 2)


def dominant(n: int, p: int, *, gap: float = 0.1, seed: int = 0) -> Problem:
    """Return (a): ``-tr(X^T A X)``, eigenvalues uniform on [-1, 1], ``p`` above a gap."""
    rng = np.random.default_rng(seed)
    rest = np.sort(rng.uniform(-1.0, 1.0, n - p))
    top = np.sort(rng.uniform(0.0, 1.0, p))
    top = rest[-1] + gap + (top - top[0])  # the eigengap is exactly ``gap``
    a = _spectral(np.concatenate([rest, top]), seed + 1)
    note = f"eigengap {gap}, eigenvalues in [{rest[0]:.2f}, {top[-1]:.2f}]"
    return Problem(
        f"(a) dominant {n}x{p}", n, p, lambda w: -(w * (a @ w)).sum(), -top.sum(), note=note
    )


def brockett(n: int, p: int, *, seed: int = 0) -> Problem:
    """Return (b): ``cm.problems.Brockett`` with ``p`` smallest eigenvalues -1, -0.9, ..."""
    rng = np.random.default_rng(seed)
    low = -1.0 + 0.1 * np.arange(p)  # the p smallest, ascending, gaps 0.1
    a = _spectral(np.concatenate([low, rng.uniform(0.0, 1.0, n - p)]), seed + 1)
    prob = cm.problems.Brockett(a, p)  # N = diag(p, ..., 1); closed-form optimum
    note = f"smallest eigenvalues {low[0]:g}..{low[-1]:g}, N = diag({p}..1)"
    return Problem(f"(b) brockett {n}x{p}", n, p, prob.loss, prob.optimum, note=note)


def pca(n: int, p: int, *, seed: int = 0) -> Problem:
    """Return (c): ``cm.problems.PCA.random`` with eigengap 1.1 and condition 100."""
    prob = cm.problems.PCA.random(n, p, eigengap=1.1, condition=100.0, seed=seed)
    return Problem(
        f"(c) pca {n}x{p}", n, p, prob.loss, prob.optimum, note="eigengap 1.1, condition 100"
    )


def procrustes(n: int, *, seed: int = 0) -> Problem:
    """Return (d): square Procrustes over O(n) whose optimum has determinant -1."""
    prob = cm.problems.Procrustes.random(n, group="o", det=-1, seed=seed)
    assert float(torch.linalg.det(prob.solution)) < 0
    return Problem(
        f"(d) procrustes O({n})", n, n, prob.loss, prob.optimum, det=-1, note="optimum in det -1"
    )


def problems(quick: bool, only: str = "abcd") -> list[Problem]:
    """Return the problems whose letters are in ``only``; ``quick`` shrinks (a), (b) and (d)."""
    if quick:
        suite = [dominant(300, 8), brockett(100, 6), pca(64, 8), procrustes(16)]
    else:
        suite = [dominant(1000, 10), brockett(300, 8), pca(64, 8), procrustes(32)]
    return [problem for problem in suite if problem.name[1] in only]


COLUMNS = ("qr", "cayley", "exp", "default", "unit", "free", "matrix")


def manifolds(problem: Problem) -> dict[str, Callable[[], object]]:
    """Columns of the tables: name -> manifold factory (CWY or T-CWY for the vectors)."""
    det = problem.det
    vectors = cm.CWY if problem.n == problem.p else cm.TCWY
    return {
        "qr": lambda: cm.QRStiefel(det=det),
        "cayley": lambda: cm.CayleyStiefel(det=det),
        "exp": lambda: cm.ExpStiefel(det=det),
        "default": lambda: vectors(det=det or 1),
        "unit": lambda: vectors(det=det or 1, gauge="unit"),
        "free": lambda: vectors(det=det or 1, gauge="free"),
        **(
            {"matrix": lambda: cm.CWY(det=det or 1, gradient="matrix")} if vectors is cm.CWY else {}
        ),
    }


@dataclass
class Best:
    """Outcome of the grid for one problem, manifold and optimizer."""

    steps: int | None = None
    lr: float | None = None
    per_lr: dict[float, str] = field(default_factory=dict)


class _Run:
    """One learning rate: a point, its optimizer and the state of the race."""

    def __init__(self, problem: Problem, make: Callable, optimizer: str, lr: float, start) -> None:
        self.problem, self.lr = problem, lr
        self.x = geoopt.ManifoldParameter(cm.from_matrix(make(), start))
        self.opt = OPTIMIZERS[optimizer]([self.x], lr)
        self.first: float | None = None
        self.done: str | None = None

    def gap_then_step(self, k: int, tol: float) -> None:
        """Record the gap at step ``k``; take a step unless it is below ``tol``."""
        problem = self.problem
        try:
            self.opt.zero_grad(set_to_none=True)
            loss = problem.loss(cm.matrix(self.x))
            gap = (float(loss.detach()) - problem.fstar) / max(1.0, abs(problem.fstar))
            self.first = gap if self.first is None else self.first
            if not math.isfinite(gap) or gap > 1e3 * (1 + self.first):
                self.done = "diverged"
            elif gap < tol:
                self.done = str(k)
            else:
                loss.backward()
                self.opt.step()
        except ValueError:  # invalid vectors (NaN or a zero column) after a huge step
            self.done = "diverged"


def best_lr(
    problem: Problem, make: Callable, optimizer: str, start: torch.Tensor, tol: float, steps: int
) -> Best:
    """Race every learning rate of the grid step by step; the first below ``tol`` wins.

    The same as running each to the tolerance and keeping the fewest steps (ties go to
    the larger learning rate), at the cost of the winner's steps times the grid size.
    """
    runs = [_Run(problem, make, optimizer, lr, start) for lr in sorted(GRID, reverse=True)]
    out = Best()
    for k in range(steps + 1):
        for run in runs:
            if run.done is None:
                run.gap_then_step(k, tol)
                if out.steps is None and run.done == str(k):
                    out.steps, out.lr = k, run.lr
        if out.steps is not None or all(run.done for run in runs):
            break
    for run in runs:
        out.per_lr[run.lr] = run.done or f">{k}"
    return out


def _cell(best: Best | None) -> str:
    if best is None:
        return "n/a"
    return "-" if best.steps is None else f"{best.steps} ({best.lr:g})"


def run_tables(suite: list[Problem], tol: float, steps: int, verbose: bool) -> dict:
    """Run the grid for every problem, manifold and optimizer; print the two tables."""
    results: dict = {}
    for optimizer in OPTIMIZERS:
        for problem in suite:
            start = cm.QRStiefel(det=problem.det).random(
                problem.n, problem.p, dtype=F64, generator=torch.Generator().manual_seed(1)
            )
            for name, make in manifolds(problem).items():
                began = time.perf_counter()
                results[optimizer, problem.name, name] = best = best_lr(
                    problem, make, optimizer, start, tol, steps
                )
                if verbose:
                    grid = " ".join(f"{lr:g}:{t}" for lr, t in sorted(best.per_lr.items()))
                    print(
                        f"  {optimizer} {problem.name} {name}: {grid} "
                        f"[{time.perf_counter() - began:.0f} s]",
                        flush=True,
                    )
        print_table(suite, optimizer, results, tol)
    return results


def print_table(suite: list[Problem], optimizer: str, results: dict, tol: float) -> None:
    """One table: rows are problems, cells 'steps (best lr)'."""
    print(f"\n{TITLES[optimizer]}: steps to a relative gap < {tol:g} (best lr of the grid)\n")
    heads = [*COLUMNS[:3], "vectors", "gauge unit", "gauge free", "matrix gradient"]
    heads += ["vectors/qr", "free/qr", "matrix/qr"]
    print(f"| problem | {' | '.join(heads)} |")
    print("|---|" + "---|" * len(heads))
    for problem in suite:
        cells = [results.get((optimizer, problem.name, column)) for column in COLUMNS]
        qr = cells[0].steps
        ratios = [
            "n/a" if c is None else "-" if c.steps is None or qr is None else f"{c.steps / qr:.2f}"
            for c in (cells[3], cells[5], cells[6])
        ]
        label = f"{problem.name} ({'cwy' if problem.n == problem.p else 'tcwy'})"
        print(f"| {label} | {' | '.join(map(_cell, cells))} | {' | '.join(ratios)} |")
    print(
        "\nvectors: CWY/T-CWY with the default gauge ('auto': unit columns for SGD, free for"
        "\nAdam); gauge free: plain V + U with the Euclidean metric, as shipped before;"
        "\nmatrix gradient: CWY(gradient='matrix'), default gauge (square problems only)."
    )
    for problem in suite:
        if problem.note:
            print(f"{problem.name}: {problem.note}, f* = {problem.fstar:.6g}")


def plot(path: Path, steps: int) -> None:
    """Gap and column norms against the step on (c), RiemannianSGD, best lr of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problem = pca(64, 8)
    start = cm.QRStiefel().random(64, 8, dtype=F64, generator=torch.Generator().manual_seed(1))
    lines = {  # label -> (factory, color)
        "QRStiefel": (cm.QRStiefel, "C0"),
        "TCWY (default: unit gauge)": (cm.TCWY, "C1"),
        "TCWY(gauge='free') (as shipped)": (lambda: cm.TCWY(gauge="free"), "C2"),
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, (make, color) in lines.items():
        best = best_lr(problem, make, "rsgd", start, 1e-10, steps)
        lr = best.lr if best.lr is not None else 1.0
        manifold = make()
        x = geoopt.ManifoldParameter(cm.from_matrix(manifold, start))
        opt = OPTIMIZERS["rsgd"]([x], lr)
        gaps, norms = [], []
        for _ in range(min(steps, 1000)):
            opt.zero_grad()
            loss = problem.loss(cm.matrix(x))
            gaps.append(
                max((float(loss.detach()) - problem.fstar) / max(1, abs(problem.fstar)), 1e-16)
            )
            if isinstance(manifold, cm.TCWY):
                norms.append(float(torch.linalg.vector_norm(x.detach(), dim=-2).mean()))
            loss.backward()
            opt.step()
        left.semilogy(gaps, color=color, label=f"{label}, lr {lr:g}")
        if norms:
            right.plot(norms, color=color, label=label)
    left.axhline(1e-10, color="gray", lw=0.5)
    left.set(
        xlabel="step", ylabel="relative gap", title="(c) PCA 64x8, RiemannianSGD (momentum 0.9)"
    )
    left.legend(fontsize=7)
    right.set(xlabel="step", ylabel="mean column norm of V", title="column norms, same runs")
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")


def main(argv: list[str] | None = None) -> None:
    """Parse the options and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="step budget per run")
    parser.add_argument("--tol", type=float, default=1e-10, help="relative gap to reach")
    parser.add_argument("--quick", action="store_true", help="smaller problems")
    parser.add_argument("--only", default="abcd", help="letters of the problems to run")
    parser.add_argument("--plot", action="store_true", help=f"also write {PLOT.name}")
    parser.add_argument("--no-tables", action="store_true", help="skip the step tables")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--verbose", action="store_true", help="print every learning rate")
    args = parser.parse_args(argv)
    if not set(args.only) <= set("abcd") or not args.only:
        parser.error(f"--only takes letters of a, b, c, d; got {args.only!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.no_tables:
        run_tables(problems(args.quick, args.only), args.tol, args.steps, args.verbose)
    if args.plot:
        plot(PLOT, args.steps)


if __name__ == "__main__":
    main()
