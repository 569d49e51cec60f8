r"""
Procrustes: the determinant trap, and thin problems
===================================================

Orthogonal Procrustes fits an orthogonal (or Stiefel) matrix :math:`X` to data
:math:`A \in \mathbb{R}^{m \times n}`, :math:`B \in \mathbb{R}^{m \times p}`:

.. math::

    \min_X \ \tfrac12 \|A X - B\|_F^2 .

For a square :math:`X` the answer is known in closed form: the polar factor of
:math:`A^\top B` over :math:`O(n)`, and Kabsch's determinant-corrected version over
:math:`SO(n)`. A product of :math:`L` reflections always has determinant
:math:`(-1)^L`, so a CWY parametrization, like every method that moves continuously from
a start in :math:`SO(n)`, can only reach one component of :math:`O(n)`. This example
builds a problem whose :math:`O(n)` optimum has determinant :math:`-1` and shows the
trap, then solves a thin (Stiefel) instance.
"""

import geoopt
import matplotlib.pyplot as plt
import torch

import cwy_manifolds as cm
from cwy_manifolds.problems import Procrustes

# %%
# A square problem whose best orthogonal matrix is a reflection
# -------------------------------------------------------------
# ``determinant_trap`` poses the problem on :math:`SO(n)`; ``over("o")`` is the same
# data on all of :math:`O(n)`, whose optimum has determinant -1 and a lower loss.
trap = Procrustes.determinant_trap(8)
over_o = trap.over("o")
print(f"optimum over SO(8): {trap.optimum:.6f}   over O(8): {over_o.optimum:.6f}")
print("determinant of the O(8) optimum:", round(float(torch.linalg.det(over_o.solution))))


def fit(manifold, problem, start, steps=400, lr=0.2):
    """RiemannianAdam on ``manifold`` from the matrix ``start``; return the loss trace."""
    x = geoopt.ManifoldParameter(cm.from_matrix(manifold, start))
    optimizer = geoopt.optim.RiemannianAdam([x], lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = problem.loss(cm.matrix(x))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# one Haar-random rotation (seeded) as the common start, and its mirror image for det = -1
gen = torch.Generator().manual_seed(0)
rotation = cm.CWY().matrix(cm.CWY().random(8, 8, dtype=torch.float64, generator=gen)).detach()
mirrored = rotation * torch.tensor([1.0] * 7 + [-1.0], dtype=torch.float64)
runs = {
    "CWY(det=+1)": fit(cm.CWY(det=1), over_o, rotation),
    "CayleyStiefel from the same rotation": fit(cm.CayleyStiefel(), over_o, rotation),
    "CWY(det=-1)": fit(cm.CWY(det=-1), over_o, mirrored),
}

# %%
# Only the manifold on the right component reaches the :math:`O(8)` optimum; the others
# converge to the best rotation, the :math:`SO(8)` optimum.
fig, ax = plt.subplots(figsize=(7, 4))
for label, losses in runs.items():
    ax.semilogy([max(v - over_o.optimum, 1e-16) for v in losses], label=label)
ax.axhline(trap.optimum - over_o.optimum, color="gray", ls=":", label="SO(8) optimum")
ax.set_xlabel("step")
ax.set_ylabel("loss minus the O(8) optimum")
ax.legend()

assert abs(runs["CWY(det=-1)"][-1] - over_o.optimum) < 1e-6
for label in ("CWY(det=+1)", "CayleyStiefel from the same rotation"):
    assert abs(runs[label][-1] - trap.optimum) < 1e-6

# %%
# A thin problem
# --------------
# Over :math:`\mathrm{St}(n, p)` with a general :math:`A` there is no closed form; the
# problem module computes a reference with pymanopt's trust regions and labels it as
# such. :func:`cwy_manifolds.compare` runs several manifolds from the same start, with
# the best learning rate of a small grid for each.
thin = Procrustes.random(30, 5, seed=1)
print(thin.reference)
result = cm.compare(
    thin,
    methods=["tcwy", "cayley", "qr"],
    optimizers=["radam"],
    references=[],
    steps=400,
    lr_grid=[0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
    threads=1,
)
print(result.format_table())

fig, ax = plt.subplots(figsize=(7, 4))
for run in result.runs:
    ax.semilogy(run.step, [max(g, 1e-16) for g in run.gap], label=f"{run.method}, lr={run.lr:g}")
ax.set_xlabel("step")
ax.set_ylabel("relative gap to the reference")
ax.legend()

# %%
# Which method wins depends on the problem and on the optimizer: here geoopt's Adam with
# one second moment per matrix (Cayley, QR) beats Adam on the reflection vectors.
assert all(row["gap"] < 1e-6 for row in result.table())
