r"""Joint diagonalization of symmetric matrices (no closed form in general)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .base import (
    F64,
    Answer,
    Problem,
    as_matrix,
    check_positive,
    check_size,
    check_sizes,
    check_symmetric,
    haar_matrix,
)
from .reference import trust_region_reference

__all__ = ["JointDiagonalization"]


class JointDiagonalization(Problem):
    r"""Joint diagonalization: the frame that makes :math:`K` symmetric matrices most diagonal.

    .. math::

        f(X) = -\frac{\sum_{k=1}^K \|\operatorname{diag}(X^\top A_k X)\|_2^2}
                     {\sum_{k=1}^K \|A_k\|_F^2}, \qquad X \in \mathrm{St}(n, p),

    in :math:`[-1, 0]`. There is no closed form in general, and the optimum comes from
    pymanopt's trust regions (Note [reference solutions]). When the matrices share an
    eigenbasis, :math:`A_k = Q D_k Q^\top` with :math:`Q` orthogonal and :math:`D_k`
    diagonal, it is exact: since :math:`\|\operatorname{diag}(M)\| \le \|M\|_F` and
    :math:`\|X^\top A_k X\|_F \le \|A_k X\|_F`,

    .. math::

        -f(X) \le \frac{\operatorname{tr}(X^\top S X)}{\sum_k \|A_k\|_F^2}
              \le \frac{s_1 + \dots + s_p}{\sum_k \|A_k\|_F^2}, \qquad
        S = \sum_k A_k^2 = Q \operatorname{diag}(s) Q^\top, \quad s_i = \sum_k d_{k,i}^2,

    with :math:`s_1 \ge s_2 \ge \dots` sorted, and the columns of :math:`Q` with the
    :math:`p` largest :math:`s_i` attain both bounds. Pass that :math:`Q` as
    ``diagonalizer`` (it is checked) to use the exact optimum. Every other choice of
    :math:`p < n` columns of :math:`Q` is a critical point too, and some are local minima:
    thin instances are hard from random starts; square ones (:math:`p = n`, where every
    column order and sign is optimal) are not.

    Parameters
    ----------
    matrices : Tensor or numpy.ndarray, shape ``(K, n, n)``
        Symmetric, real and finite, not all zero.
    p : int
        ``1 <= p <= n``.
    diagonalizer : torch.Tensor or numpy.ndarray, optional
        An orthogonal :math:`Q` (``n x n``) with every :math:`Q^\top A_k Q` diagonal.
    group : {"stiefel", "o", "so"}, default ``"stiefel"``
        For ``p == n``; the sign of a column does not change the loss, so every
        component of :math:`O(n)` holds an optimum.
    name : str, default ``"joint-diagonalization"``
    starts : tuple of numpy.ndarray, default ``()``
        Extra starting points for the trust-region reference (without ``diagonalizer``).

    Attributes
    ----------
    matrices : torch.Tensor
        The :math:`A_k`, symmetrised, float64 on the CPU, shape ``(K, n, n)``.

    Examples
    --------
    >>> from cwy_manifolds.problems import JointDiagonalization
    >>> prob = JointDiagonalization.random(5, 2, seed=0)
    >>> prob.reference
    'closed form: known joint diagonalizer (A_k = Q D_k Q^T)'
    >>> abs(prob.gap(prob.solution)) < 1e-12
    True
    """

    column_signs_free = True

    def __init__(
        self,
        matrices: Tensor | np.ndarray,
        p: int,
        *,
        diagonalizer: Tensor | np.ndarray | None = None,
        group: str = "stiefel",
        name: str = "joint-diagonalization",
        starts: tuple[np.ndarray, ...] = (),
    ) -> None:
        stack = (
            torch.as_tensor(np.asarray(matrices)) if isinstance(matrices, np.ndarray) else matrices
        )
        if not isinstance(stack, Tensor) or stack.ndim != 3 or stack.shape[0] == 0:
            shape = tuple(stack.shape) if isinstance(stack, Tensor) else type(stack).__name__
            raise ValueError(f"matrices must have shape (K, n, n) with K >= 1; got {shape}")
        checked = []
        for k, a in enumerate(stack):
            c, eps = as_matrix(a, f"matrices[{k}]")
            checked.append(check_symmetric(c, eps, f"matrices[{k}]"))
        self.matrices = torch.stack(checked)
        super().__init__(name, self.matrices.shape[-1], p, group)
        self.total = float(self.matrices.square().sum())
        if self.total == 0:
            raise ValueError("matrices must not all be zero")
        self._scaled = self.matrices / math.sqrt(self.total)
        self._q = None if diagonalizer is None else self._check_diagonalizer(diagonalizer, eps)
        self._starts = starts

    def _check_diagonalizer(self, q: Tensor | np.ndarray, eps: float) -> np.ndarray:
        q64, _ = as_matrix(q, "diagonalizer")
        n = self.n
        if tuple(q64.shape) != (n, n):
            raise ValueError(f"diagonalizer must have shape {(n, n)}; got {tuple(q64.shape)}")
        ortho = float(torch.linalg.matrix_norm(q64.T @ q64 - torch.eye(n, dtype=F64)))
        inner = q64.T @ self.matrices @ q64
        off = float((inner - torch.diag_embed(inner.diagonal(dim1=-2, dim2=-1))).norm())
        tol = 100 * n * max(eps, torch.finfo(F64).eps)
        if ortho > tol or off > tol * math.sqrt(self.total):
            raise ValueError(
                "diagonalizer must be orthogonal and diagonalize every matrix; got "
                f"||Q^T Q - I|| = {ortho:.1e}, off-diagonal norm {off:.1e}"
            )
        return q64.numpy()

    def objective(self, x: Tensor) -> Tensor:
        r""":math:`-\sum_k \|\operatorname{diag}(X^\top A_k X)\|^2 / \sum_k \|A_k\|_F^2`."""
        diag = (x * (self.data("_scaled", x) @ x)).sum(dim=-2)  # (K, p): x_i^T A_k x_i
        return -diag.square().sum()

    def solve(self) -> Answer:
        """Exact with a known diagonalizer, otherwise pymanopt's trust regions."""
        if self._q is not None:
            diag = np.einsum("ij,kil,lj->kj", self._q, self.matrices.numpy(), self._q)
            s = (diag**2).sum(axis=0)
            order = np.argsort(-s, kind="stable")[: self.p]
            x = self._q[:, order].copy()
            if self.group == "so" and np.linalg.det(x) < 0:
                x[:, -1] *= -1  # a column's sign does not change the loss
            value = -float(s[order].sum()) / self.total
            return Answer(value, x, "closed form: known joint diagonalizer (A_k = Q D_k Q^T)")
        return trust_region_reference(self, self._starts, scale=2.0)

    def extra_metrics(self, x: Tensor) -> dict[str, float]:
        r"""Return ``off_diagonal``, the norm of the off-diagonals of every :math:`X^\top A_k X`."""
        inner = x.mT @ self.data("_scaled", x) @ x
        off = inner - torch.diag_embed(inner.diagonal(dim1=-2, dim2=-1))
        return {"off_diagonal": float(off.norm())}

    @classmethod
    def random(
        cls,
        n: int,
        p: int,
        *,
        k: int = 4,
        seed: int = 0,
        noise: float = 0.0,
        group: str = "stiefel",
    ) -> JointDiagonalization:
        r"""Seeded instance :math:`A_k = Q D_k Q^\top + \text{noise}`, :math:`Q` Haar.

        The diagonals are Gaussian, rescaled so that :math:`s_i = \sum_k d_{k,i}^2`
        decreases evenly from 2 to 1 over the first :math:`p` and from 0.5 to 0.1 over the
        rest (a clear gap, so the optimum is unique up to order and signs). Without noise
        :math:`Q` is passed as the known diagonalizer (exact optimum); with noise
        (symmetric Gaussian, entries of standard deviation ``noise / sqrt(n)``) the
        reference comes from pymanopt's trust regions, started from the noiseless answer.
        """
        n, p = check_sizes(n, p, group)
        k = check_size(k, "k")
        noise = check_positive(noise, "noise", strict=False)
        gen = torch.Generator().manual_seed(seed)
        q = haar_matrix(gen, n, n)
        g = torch.randn(k, n, generator=gen, dtype=F64).numpy()
        top = np.linspace(2.0, 1.0, p) if p > 1 else np.full(1, 2.0)
        rest = np.linspace(0.5, 0.1, n - p) if n - p > 1 else np.full(n - p, 0.5)
        s = np.concatenate([top, rest])
        d = g / np.linalg.norm(g, axis=0) * np.sqrt(s)
        stack = np.einsum("ij,kj,lj->kil", q, d, q)
        if noise == 0:
            return cls(stack, p, diagonalizer=q, group=group)
        e = torch.randn(k, n, n, generator=gen, dtype=F64).numpy() * noise / math.sqrt(n)
        stack = stack + (e + e.transpose(0, 2, 1)) / 2
        order = np.argsort(-s, kind="stable")[:p]
        return cls(stack, p, group=group, starts=(q[:, order],))
