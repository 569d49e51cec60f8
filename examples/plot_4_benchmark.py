r"""
Timing CWY against the peers
============================

:func:`cwy_manifolds.tools.bench.benchmark` times forming an orthogonal matrix (forward and
forward+backward) and one optimizer step for CWY/T-CWY and for the other ways to get
orthogonal matrices in PyTorch, and reports each time in *matmul equivalents*: as a
multiple of one :math:`N \times N` matrix product timed in the same rounds, so that the
figures mean something on any machine. The command ``cwy-manifolds bench`` runs the full
grid; this page runs a small one while the documentation builds, so its figures are
those of the build machine (see :doc:`/benchmarks` for a complete run and its reading).
"""

import matplotlib.pyplot as plt
import torch

from cwy_manifolds.tools.bench import benchmark, format_table

torch.manual_seed(0)

# %%
# Square matrices with :math:`L = N` reflections: CWY against PyTorch's ``cayley`` and
# ``matrix_exp`` maps and LAPACK's Householder product, forward and backward.

square = benchmark(
    quick=True,
    sizes=[32, 64, 128, 256],
    thin=[],
    batch=[],
    repeats=3,
    methods=["cwy", "linalg-householder-product", "torch-cayley", "torch-matrix-exp"],
)
square = [r for r in square if r["reflections"] == r["n"]]

# %%
# Tall Stiefel matrices: T-CWY's forward+backward against one optimizer step of the
# retraction-based manifolds (their parameter is the matrix, so a step is their whole
# cost).

thin = benchmark(
    quick=True,
    sizes=[],
    thin=["1024x8", "1024x16", "1024x32", "1024x64"],
    batch=[],
    repeats=3,
    methods=["tcwy", "geoopt-euclidean", "geoopt-canonical", "cayley", "qr"],
)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
panels = (
    (square, "n", "forward_backward_mm", "N (L = N)", "forward + backward, N x N"),
    (thin, "m", "step_mm", "M (N = 1024)", "one optimizer step, 1024 x M"),
)
for ax, (rows, x, y, xlabel, title) in zip(axes, panels, strict=True):
    for name in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == name]
        ax.plot([r[x] for r in mine], [r[y] for r in mine], "o-", label=name)
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="matmul equivalents", title=title)
    ax.legend(fontsize="small")
plt.show()

# %%
# The same figures as the command prints them (``fwd/peer`` and the other ratios are to
# the fastest method not from this package in each group):

print(format_table(square + thin))
