r"""
Performance profiles: every method on a suite, your own problem included
========================================================================

To compare optimization methods over several problems, Dolan and Moré's *performance
profile* plots, for each method :math:`s`, the fraction of problems it solves within a
factor :math:`\tau` of the best method on that problem,

.. math::

    \rho_s(\tau) = \frac{|\{q : t_{q,s} \le \tau \min_{s'} t_{q,s'}\}|}{|Q|},

where :math:`t_{q,s}` is the cost (steps, or CPU seconds) for :math:`s` to reach the
tolerance on problem :math:`q` (infinite if it never does). :math:`\rho_s(1)` is how often
:math:`s` is the fastest, :math:`\rho_s(\infty)` how often it succeeds at all.

Here the suite has two built-in problems and one defined in a few lines: aligning two
point clouds by a rotation in :math:`SO(3)` (Kabsch's problem),

.. math::

    \min_{R \in SO(3)} \ \tfrac12 \|P R - Q\|_F^2,

whose answer is known from one SVD. Every run stops at the same relative gap,
:math:`10^{-6}`, and each method starts in the optimum's component of :math:`O(n)`.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch

from cwy_manifolds.problems import PCA, Brockett, Problem
from cwy_manifolds.tools.plots import draw_profile
from cwy_manifolds.tools.suite import compare_suite

# %%
# A problem of your own: a loss on the matrix, a shape, and (if known) the answer
# --------------------------------------------------------------------------------
rng = np.random.default_rng(0)
p = torch.from_numpy(rng.standard_normal((40, 3)))
rotation = torch.linalg.qr(torch.from_numpy(rng.standard_normal((3, 3))))[0]
rotation *= torch.sign(torch.linalg.det(rotation))  # a rotation: det +1
q = p @ rotation + 0.05 * torch.from_numpy(rng.standard_normal((40, 3)))

u, _, vt = torch.linalg.svd(p.T @ q)  # Kabsch: the polar factor with det +1
kabsch = u @ torch.diag(torch.tensor([1.0, 1.0, torch.linalg.det(u @ vt)], dtype=u.dtype)) @ vt

align = Problem.from_function(
    lambda x: 0.5 * (p.to(x) @ x - q.to(x)).square().sum(),
    3,
    3,
    group="so",
    solution=kabsch,
    name="kabsch-so3",
)
print(align, "optimum:", round(align.optimum, 6))

# %%
# Every method, pymanopt's trust regions beside them, two starts each
# -------------------------------------------------------------------
# ``cwy`` stands for square matrices only, so it runs on the rotation problem alone; every
# method is built with ``det=+1`` there (T-CWY with :math:`M = N = 3` applies the sign
# flip :math:`D`, as CWY does); the profiles count each method over the problems it ran
# on.
problems = [PCA.random(12, 3, seed=1), Brockett.random(8, 2, seed=1), align]
suite = compare_suite(
    problems,
    methods=["cwy", "tcwy", "cayley", "qr"],
    optimizers=["radam"],
    references=["trust-regions"],
    lr_grid=[0.3, 1.0, 3.0],
    seeds=2,
    threads=1,
)
print(suite.format_profiles())

# %%
# The profiles, in steps and in CPU time
# --------------------------------------
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
for ax, measure in zip(axes, ("steps", "cpu"), strict=True):
    draw_profile(ax, suite, measure)
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)

# %%
# Every pair solved every problem it ran on, so every profile reaches 1; the fastest
# method in steps on each problem has :math:`\rho(1) > 0`.
taus, rho = suite.profile("steps")
assert all(values[-1] == 1.0 for values in rho.values()), rho
assert max(values[0] for values in rho.values()) > 0
rotation = suite.comparisons[2]
assert {row["method"] for row in rotation.table()} == {"cwy", "tcwy", "cayley", "qr", "pymanopt"}
assert all(row["gap"] <= 1e-6 for row in rotation.table())
assert not any(note.startswith("skipped") for note in rotation.notes)
