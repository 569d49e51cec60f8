r"""Brockett's cost function: eigenvectors in order, with a closed-form optimum."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from .base import Answer, Problem, as_matrix, check_sizes, check_symmetric, haar_matrix

__all__ = ["Brockett"]


class Brockett(Problem):
    r"""Brockett's cost :math:`\operatorname{tr}(X^\top A X N)` over :math:`\mathrm{St}(n, p)`.

    .. math::

        f(X) = \operatorname{tr}(X^\top A X N) = \sum_{i=1}^p \mu_i\, x_i^\top A x_i,
        \qquad N = \operatorname{diag}(\mu_1, \dots, \mu_p),

    with :math:`A` symmetric and weights :math:`\mu_1 > \dots > \mu_p > 0` (default
    :math:`N = \operatorname{diag}(p, \dots, 1)`). Unlike :class:`PCA`, the loss sees the
    order of the columns, so the minimizer is a basis, not only a subspace: with the
    eigenvalues of :math:`A` in *increasing* order :math:`\lambda_1 \le \dots \le
    \lambda_n` and eigenvectors :math:`v_i`, the minimum pairs the largest weight with the
    smallest eigenvalue,

    .. math::

        f^\star = \sum_{i=1}^p \mu_i \lambda_i, \qquad X^\star = [v_1, \dots, v_p]

    (up to the signs of the columns; unique up to those when the :math:`\lambda_i` and
    the :math:`\mu_i` are distinct). Brockett (1991), *Dynamical systems that sort lists,
    diagonalize matrices, and solve linear programming problems*.

    Parameters
    ----------
    a : Tensor or numpy.ndarray, shape ``(n, n)``
        Symmetric, real and finite.
    p : int
        ``1 <= p <= n``.
    weights : sequence of float, optional
        :math:`\mu_1 > \dots > \mu_p > 0`; default ``(p, ..., 1)``.
    group : {"stiefel", "o", "so"}, default ``"stiefel"``
        For ``p == n``; flipping the sign of a column keeps a minimizer, so every
        component of :math:`O(n)` holds one.
    name : str, default ``"brockett"``

    Attributes
    ----------
    a : torch.Tensor
        :math:`A`, symmetrised, float64 on the CPU.
    weights : torch.Tensor
        :math:`(\mu_1, \dots, \mu_p)`, float64.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds.problems import Brockett
    >>> prob = Brockett(torch.diag(torch.tensor([3.0, 1.0, 2.0])), 2)
    >>> prob.optimum  # 2 * 1 + 1 * 2
    4.0
    """

    column_signs_free = True

    def __init__(
        self,
        a: Tensor | np.ndarray,
        p: int,
        *,
        weights: Tensor | np.ndarray | list[float] | None = None,
        group: str = "stiefel",
        name: str = "brockett",
    ) -> None:
        c, eps = as_matrix(a, "a")
        c = check_symmetric(c, eps, "a")
        super().__init__(name, c.shape[0], p, group)
        self.a = c
        if weights is None:
            mu = np.arange(self.p, 0, -1, dtype=np.float64)
        else:
            mu = np.asarray(weights, dtype=np.float64).reshape(-1)
        if mu.shape != (self.p,) or not np.all(np.isfinite(mu)) or np.any(mu <= 0):
            raise ValueError(
                f"weights must be {self.p} positive finite numbers; got shape {mu.shape}"
            )
        if np.any(np.diff(mu) >= 0):
            raise ValueError("weights must be strictly decreasing (mu_1 > ... > mu_p)")
        self.weights = torch.from_numpy(mu.copy())

    def objective(self, x: Tensor) -> Tensor:
        r""":math:`\operatorname{tr}(X^\top A X N)`."""
        return ((x * (self.data("a", x) @ x)).sum(dim=0) * self.data("weights", x)).sum()

    def solve(self) -> Answer:
        """Return the closed form: the smallest eigenvalues' eigenvectors, largest weight first."""
        values, vectors = scipy.linalg.eigh(self.a.numpy())
        x = vectors[:, : self.p].copy()
        if self.group == "so" and np.linalg.det(x) < 0:
            x[:, -1] *= -1
        value = float(self.weights.numpy() @ values[: self.p])
        return Answer(value, x, "closed form: eigh (smallest eigenvalues, sorted)")

    @classmethod
    def random(cls, n: int, p: int, *, seed: int = 0, group: str = "stiefel") -> Brockett:
        r"""Seeded instance: eigenvalues evenly spaced in :math:`[-1, 1]`, Haar eigenvectors.

        Examples
        --------
        >>> from cwy_manifolds.problems import Brockett
        >>> round(Brockett.random(4, 2).optimum, 12)  # 2 * (-1) + 1 * (-1/3)
        -2.333333333333
        """
        n, p = check_sizes(n, p, group)
        values = np.linspace(-1.0, 1.0, n) if n > 1 else np.ones(1)
        q = haar_matrix(torch.Generator().manual_seed(seed), n, n)
        return cls((q * values) @ q.T, p, group=group)
