r"""
The matrix gradient of CWY
==========================

A step on the reflection vectors moves the matrix by :math:`J J^\top` times the matrix's
gradient, :math:`J` the Jacobian of :math:`V \mapsto Q(V)`. For square matrices the
eigenvalues of :math:`J J^\top` spread widely, so plain SGD on the vectors settles the
last digits slowly. ``CWY(gradient="matrix")`` steps along
:math:`(J^\top J)^+ \nabla_V f` instead, whose image is the matrix's own Riemannian
gradient (Note [matrix gradient]). Here: a Procrustes problem over :math:`O(24)` whose
optimum has determinant :math:`-1`, solved to a relative gap of :math:`10^{-10}`.
"""

import geoopt
import matplotlib.pyplot as plt
import torch

import cwy_manifolds as cm

n = 24
problem = cm.problems.Procrustes.random(n, group="o", det=-1, seed=0)
start = cm.QRStiefel(det=-1).random(
    n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
)

# %%
# The spread: the squared singular values of :math:`J` at the start (the dense Jacobian,
# for illustration; the manifold never forms it). The Euclidean step divides by their
# mean, 16 (the step scale); the matrix gradient inverts them all.
manifold = cm.CWY(det=-1)
v = cm.from_matrix(manifold, start).as_subclass(torch.Tensor)
jacobian = torch.autograd.functional.jacobian(manifold.matrix, v).reshape(n * n, n * n)
gains = torch.linalg.svdvals(jacobian)[: n * (n - 1) // 2] ** 2  # the nonzero ones
print(f"squared singular values of J: {gains.min():.2f} to {gains.max():.1f}")


# %%
# The same start, RiemannianSGD with momentum, each at a good learning rate:


def steps_to_tolerance(manifold, lr, limit=3000):
    x = geoopt.ManifoldParameter(cm.from_matrix(manifold, start))
    optimizer = geoopt.optim.RiemannianSGD([x], lr=lr, momentum=0.9)
    gaps = []
    for _ in range(limit):
        optimizer.zero_grad()
        loss = problem.loss(cm.matrix(x))
        gaps.append((loss.item() - problem.optimum) / max(1.0, abs(problem.optimum)))
        if gaps[-1] < 1e-10:
            break
        loss.backward()
        optimizer.step()
    return gaps


runs = {
    "QRStiefel(det=-1), lr 1": steps_to_tolerance(cm.QRStiefel(det=-1), 1.0),
    "CWY(det=-1), lr 3": steps_to_tolerance(cm.CWY(det=-1), 3.0),
    'CWY(det=-1, gradient="matrix"), lr 3': steps_to_tolerance(
        cm.CWY(det=-1, gradient="matrix"), 3.0
    ),
}
fig, ax = plt.subplots(figsize=(7, 4))
for label, gaps in runs.items():
    ax.semilogy(gaps, label=f"{label}: {len(gaps) - 1} steps")
ax.axhline(1e-10, color="gray", lw=0.5)
ax.set_xlabel("step")
ax.set_ylabel("relative gap")
ax.legend()

qr, euclidean, matrix = (len(gaps) - 1 for gaps in runs.values())
print(f"steps: QR {qr}, CWY {euclidean}, CWY with the matrix gradient {matrix}")
assert matrix <= 1.5 * qr < euclidean
