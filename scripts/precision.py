"""Orthogonality error of CWY and T-CWY per dtype and size.

Forms Q = cwy(V) (L = N) and Omega = tcwy(V) (M = N/8) from Gaussian vectors and reports
||Q^T Q - I||_F, computed in float64, in absolute terms and in units of N * eps(dtype).
float16/bfloat16 use float32 internals (normalisation, Gram matrix, triangular solve; on
the CPU the large products too), so their error is that of rounding the result.

    python scripts/precision.py                    # N up to 4096
    python scripts/precision.py --sizes 64 256 --device cuda
"""

from __future__ import annotations

import argparse

import torch

import cwy_manifolds as cm

DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def error(a: torch.Tensor) -> float:
    """Return ||A^T A - I||_F in float64."""
    a = a.to(torch.float64)
    return float(
        torch.linalg.matrix_norm(a.mT @ a - torch.eye(a.shape[-1], dtype=a.dtype, device=a.device))
    )


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    print("| dtype | N | CWY error | / (N eps) | T-CWY (M = N/8) error | / (N eps) |")
    print("|---|---|---|---|---|---|")
    for name, dtype in DTYPES.items():
        eps = torch.finfo(dtype).eps
        for n in args.sizes:
            gen = torch.Generator(device=device).manual_seed(args.seed)
            v = torch.randn(n, n, generator=gen, device=device).to(dtype)
            eq, eo = error(cm.cwy(v)), error(cm.tcwy(v[:, : max(1, n // 8)]))
            units = f"{eq / (n * eps):.3f} | {eo:.2e} | {eo / (n * eps):.3f}"
            print(f"| {name} | {n} | {eq:.2e} | {units} |")


if __name__ == "__main__":
    main()
