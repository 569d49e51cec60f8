"""A short demo: CWY and T-CWY against the sequential Householder product.

For a few sizes it forms the CWY matrix (``L = N`` reflections) and the T-CWY matrix
(``M = N / 8`` columns), and the same matrices with reflections applied one at a time
(:func:`~cwy_manifolds.householder_product` for CWY; for T-CWY the reflections applied
to :math:`[I; 0]` from the right, :math:`4 N M^2` flops), and reports each one's
orthogonality error and median time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .householder import cwy, householder_product, tcwy


def _median_time(fn: Callable[[], Tensor], repeats: int) -> tuple[Tensor, float]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def _sequential_stiefel(v: Tensor) -> Tensor:
    """``H(v_1) ... H(v_M) [I; 0]``, applying one reflection at a time from the right."""
    n, m = v.shape[-2:]
    x = torch.eye(n, m, dtype=v.dtype, device=v.device)
    u = v / torch.linalg.vector_norm(v, dim=-2, keepdim=True)
    for i in reversed(range(m)):
        ui = u[..., i : i + 1]
        x = x - 2 * ui @ (ui.mT @ x)
    return x


def orthogonality_error(a: Tensor) -> float:
    """Frobenius norm of ``A^T A - I``, computed in float64."""
    a = a.to(torch.float64)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return float(torch.linalg.matrix_norm(a.mT @ a - eye).max())


def run_demo(
    sizes: Sequence[int] = (64, 256, 512), *, dtype: torch.dtype = torch.float32, repeats: int = 5
) -> list[dict[str, object]]:
    """Time CWY and T-CWY against the sequential product; return one row per case."""
    rows: list[dict[str, object]] = []
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        for kind, cols in (("cwy", n), ("tcwy", max(1, n // 8))):
            v = torch.randn(n, cols, generator=gen, dtype=dtype)
            fast, slow = (
                (cwy, householder_product) if kind == "cwy" else (tcwy, _sequential_stiefel)
            )
            q_fast, t_fast = _median_time(lambda v=v, fast=fast: fast(v), repeats)
            q_seq, t_seq = _median_time(lambda v=v, slow=slow: slow(v), repeats)
            rows.append(
                {
                    "map": kind,
                    "N": n,
                    "columns": cols,
                    "error": orthogonality_error(q_fast),
                    "error_sequential": orthogonality_error(q_seq),
                    "max_difference": float((q_fast - q_seq).abs().max()),
                    "ms": 1e3 * t_fast,
                    "ms_sequential": 1e3 * t_seq,
                    "speedup": t_seq / t_fast,
                }
            )
    return rows


def format_table(rows: Sequence[dict[str, object]]) -> str:
    """Render the rows of :func:`run_demo` as a plain-text table."""
    header = (
        f"{'map':<5} {'N':>5} {'cols':>5} {'||Q^TQ-I||_F':>13} {'sequential':>11} "
        f"{'ms':>9} {'seq ms':>9} {'speedup':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['map']:<5} {r['N']:>5} {r['columns']:>5} {r['error']:>13.2e} "
            f"{r['error_sequential']:>11.2e} {r['ms']:>9.2f} {r['ms_sequential']:>9.2f} "
            f"{r['speedup']:>7.1f}x"
        )
    return "\n".join(lines)
