"""Long runs: orthogonality drift and column norms over many optimizer steps.

Online PCA in float32: every step draws a minibatch of samples from a fixed covariance
and takes one optimizer step on minus the captured variance, so the point keeps moving
for the whole run. For each manifold the script records ||X^T X - I||_F of the matrix
(computed in float64) at log-spaced steps; for T-CWY it also records the column norms of
the vectors, which plain SGD steps (``gauge="free"``) can only grow (the gradient is
orthogonal to each column), and the default gauge keeps at one.

    python scripts/long_run.py                  # 100,000 steps (several minutes)
    python scripts/long_run.py --steps 2000     # a quick look

``--drift`` prints instead the drift table of the user guide: every manifold (the
package's five and geoopt's three), float32 and float64, RiemannianAdam and
RiemannianSGD, on a 64 x 8 and a 32 x 32 matrix, each run on an online Brockett loss
(minus the captured variance, weighted per column, so square matrices move too):

    python scripts/long_run.py --drift --steps 20000   # about 8 minutes per dtype, one core
"""

from __future__ import annotations

import argparse
import math

import geoopt
import torch

import cwy_manifolds as cm

# method -> (manifold factory, geoopt's stabilize period, renormalize_ period)
METHODS = {
    # the free gauge: plain V + U steps, whose norms SGD grows (Note [gauge] in cwy.py)
    "tcwy": (lambda: cm.TCWY(gauge="free"), None, None),
    "tcwy, renormalized every 100": (lambda: cm.TCWY(gauge="free"), None, 100),
    "tcwy, default gauge": (cm.TCWY, None, None),
    "cayley": (cm.CayleyStiefel, None, None),
    "qr": (cm.QRStiefel, None, None),
    "exp": (cm.ExpStiefel, None, None),
    "exp, stabilize=100": (cm.ExpStiefel, 100, None),
    "geoopt EuclideanStiefelExact": (geoopt.EuclideanStiefelExact, None, None),
    "geoopt CanonicalStiefel": (geoopt.CanonicalStiefel, None, None),
}


def checkpoints(steps: int) -> list[int]:
    """Return the steps 0, 10, 100, ... up to ``steps`` (always included)."""
    return sorted({0, steps, *(10**k for k in range(1, int(math.log10(steps)) + 1))})


def run(
    method: str,
    steps: int,
    *,
    n: int = 64,
    p: int = 8,
    batch: int = 16,
    lr: float = 0.05,
    momentum: float = 0.0,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> dict[int, dict[str, float]]:
    """Run online PCA with RiemannianSGD; return metrics at the checkpoints."""
    factory, stabilize, renormalize = METHODS[method]
    gen = torch.Generator().manual_seed(seed)
    scales = torch.linspace(2.0, 0.2, n, dtype=torch.float64)
    start = cm.QRStiefel().random(n, p, dtype=torch.float64, generator=gen).to(dtype)
    manifold = factory()
    x = geoopt.ManifoldParameter(cm.from_matrix(manifold, start))
    opt = geoopt.optim.RiemannianSGD([x], lr=lr, momentum=momentum, stabilize=stabilize)
    marks, out = set(checkpoints(steps)), {}
    for k in range(steps + 1):
        if k in marks:
            w = cm.matrix(x).detach().double()
            entry = {
                "error": float(
                    torch.linalg.matrix_norm(w.T @ w - torch.eye(p, dtype=torch.float64))
                )
            }
            if isinstance(manifold, cm.TCWY):
                norms = torch.linalg.vector_norm(x.detach().double(), dim=0)
                entry |= {"norm_mean": float(norms.mean()), "norm_max": float(norms.max())}
            out[k] = entry
        if k == steps:
            break
        samples = (torch.randn(batch, n, generator=gen, dtype=torch.float64) * scales).to(dtype)
        opt.zero_grad()
        projected = samples @ cm.matrix(x)
        (-projected.square().sum() / batch).backward()
        opt.step()
        if renormalize and (k + 1) % renormalize == 0:
            cm.renormalize_(x, opt)
    return out


#: The drift table: manifold factories (det=+1 where square starts need it).
DRIFT_MANIFOLDS = {
    "cwy": lambda: cm.CWY(),
    "tcwy": lambda: cm.TCWY(),
    "cayley": lambda: cm.CayleyStiefel(det=1),
    "exp": lambda: cm.ExpStiefel(det=1),
    "qr": lambda: cm.QRStiefel(det=1),
    "geoopt-canonical": geoopt.CanonicalStiefel,
    "geoopt-euclidean": geoopt.EuclideanStiefel,
    "geoopt-exact": geoopt.EuclideanStiefelExact,
}
#: optimizer name -> factory (params -> optimizer)
DRIFT_OPTIMIZERS = {
    "RiemannianAdam": lambda ps: geoopt.optim.RiemannianAdam(ps, lr=0.01),
    "RiemannianSGD": lambda ps: geoopt.optim.RiemannianSGD(ps, lr=0.05, momentum=0.9),
}
DRIFT_SHAPES = ((64, 8), (32, 32))


def drift_run(
    method: str,
    optimizer: str,
    steps: int,
    *,
    shape: tuple[int, int] = (64, 8),
    dtype: torch.dtype = torch.float32,
    batch: int = 16,
    seed: int = 0,
) -> dict[int, float]:
    """Return max |X^T X - I| (float64) at the checkpoints of one run (online Brockett)."""
    n, p = shape
    gen = torch.Generator().manual_seed(seed)
    scales = torch.linspace(2.0, 0.2, n, dtype=torch.float64).to(dtype)
    weights = torch.linspace(1.0, 0.1, p, dtype=torch.float64).to(dtype)
    start = cm.QRStiefel(det=1).random(n, p, dtype=torch.float64, generator=gen).to(dtype)
    x = geoopt.ManifoldParameter(cm.from_matrix(DRIFT_MANIFOLDS[method](), start))
    opt = DRIFT_OPTIMIZERS[optimizer]([x])
    marks, out = set(checkpoints(steps)), {}
    eye = torch.eye(p, dtype=torch.float64)
    for k in range(steps + 1):
        if k in marks:
            w = cm.matrix(x).detach().double()
            out[k] = float((w.T @ w - eye).abs().max())
        if k == steps:
            break
        samples = torch.randn(batch, n, generator=gen, dtype=dtype) * scales
        opt.zero_grad()
        (-((samples @ cm.matrix(x)).square().sum(0) * weights).sum() / batch).backward()
        opt.step()
    return out


def drift_table(steps: int, dtypes: list[str]) -> None:
    """Print the drift table (markdown) for ``steps`` steps."""
    header = "| manifold | shape | dtype | optimizer | step 1,000 | step 10,000 | final | max |"
    print(f"max |X^T X - I| over {steps:,} steps (online Brockett, batch 16):\n")
    print(header)
    print("|---|---|---|---|---|---|---|---|")
    for name in DRIFT_MANIFOLDS:
        for shape in DRIFT_SHAPES:
            if name == "cwy" and shape[0] != shape[1]:
                continue
            for dtype_name in dtypes:
                for optimizer in DRIFT_OPTIMIZERS:
                    out = drift_run(name, optimizer, steps, shape=shape, dtype=DTYPES[dtype_name])
                    cells = [f"{out[k]:.1e}" if k in out else "-" for k in (1000, 10_000)]
                    print(
                        f"| {name} | {shape[0]}x{shape[1]} | {dtype_name} | {optimizer} | "
                        + " | ".join(cells)
                        + f" | {out[steps]:.1e} | {max(out.values()):.1e} |",
                        flush=True,
                    )


DTYPES = {"float32": torch.float32, "float64": torch.float64}


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="100,000; 20,000 with --drift")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--drift", action="store_true", help="the drift table instead")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.drift:
        drift_table(args.steps or 20_000, args.dtypes)
        return
    args.steps = args.steps or 100_000
    marks = checkpoints(args.steps)
    results = {m: run(m, args.steps, lr=args.lr) for m in METHODS}
    print(f"||X^T X - I||_F, float32, n = 64, p = 8, RiemannianSGD lr = {args.lr}:\n")
    print("| method | " + " | ".join(f"step {k:,}" for k in marks) + " |")
    print("|---|" + "---|" * len(marks))
    for method, out in results.items():
        print(f"| {method} | " + " | ".join(f"{out[k]['error']:.1e}" for k in marks) + " |")
    for name in ("tcwy", "tcwy, renormalized every 100", "tcwy, default gauge"):
        print(f"\n{name}: column norms (they start at 1):\n")
        print("| step | mean norm | max norm | effective step lr / mean norm^2 |")
        print("|---|---|---|---|")
        for k in marks:
            mean, top = results[name][k]["norm_mean"], results[name][k]["norm_max"]
            print(f"| {k:,} | {mean:.4f} | {top:.4f} | {args.lr / mean**2:.4f} |")


if __name__ == "__main__":
    main()
