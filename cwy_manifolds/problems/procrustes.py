r"""Orthogonal Procrustes problems over St(n, p), O(n) and SO(n)."""

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
    haar_matrix,
    polar,
)
from .reference import trust_region_reference

__all__ = ["Procrustes"]

_DRAWS = 100  # draws of the noise for an optimum of determinant ``det`` (``random``)


class Procrustes(Problem):
    r"""Orthogonal Procrustes: fit :math:`A X \approx B` with :math:`X` on a group.

    .. math::

        f(X) = \tfrac12 \|A X - B\|_F^2
             = \tfrac12 \operatorname{tr}(X^\top A^\top A X)
               - \operatorname{tr}(X^\top A^\top B) + \tfrac12 \|B\|_F^2,

    with :math:`A` of shape :math:`m \times n`, :math:`B` of shape :math:`m \times p` and
    :math:`X` on :math:`\mathrm{St}(n, p)`, :math:`O(n)` or :math:`SO(n)` (``group``).
    When :math:`X^\top A^\top A X` has constant trace (square :math:`X`, or
    :math:`A^\top A = c I`), minimising :math:`f` maximises
    :math:`\operatorname{tr}(X^\top M)`, :math:`M = A^\top B = U \Sigma V^\top` (thin SVD,
    singular values decreasing): the optimum is the polar factor :math:`U V^\top` on
    :math:`\mathrm{St}(n, p)` and :math:`O(n)`, and Kabsch's :math:`U D V^\top` on
    :math:`SO(n)`, with :math:`D = \operatorname{diag}(1, \dots, 1, \det(U V^\top))`.
    Other thin problems get a numerical reference from pymanopt (Note [reference
    solutions]). Kabsch's problem, the rotation that best aligns two clouds of points in
    :math:`\mathbb{R}^3` (rows of :math:`P` and :math:`Q`), is ``Procrustes(P, Q, "so")``.

    Parameters
    ----------
    a : Tensor or numpy.ndarray, shape ``(m, n)``
    b : Tensor or numpy.ndarray, shape ``(m, p)``
        Real, finite; ``p <= n``.
    group : {"stiefel", "o", "so"}, default ``"stiefel"``
        ``"o"`` and ``"so"`` need ``p == n``.
    name : str, default ``"procrustes"``

    Attributes
    ----------
    a, b : torch.Tensor
        :math:`A` and :math:`B`, float64 on the CPU.

    Notes
    -----
    Extra metric for square problems: ``det``, the determinant of :math:`X`.

    Examples
    --------
    >>> from cwy_manifolds.problems import Procrustes
    >>> prob = Procrustes.determinant_trap(4)
    >>> prob.reference
    'closed form: Kabsch (SVD with determinant fix)'
    >>> round(prob.metrics(prob.solution)["det"]), round(float(prob.over("o").solution.det()))
    (1, -1)
    """

    def __init__(
        self,
        a: Tensor | np.ndarray,
        b: Tensor | np.ndarray,
        group: str = "stiefel",
        *,
        name: str = "procrustes",
    ) -> None:
        self.a, _ = as_matrix(a, "a")
        self.b, _ = as_matrix(b, "b")
        if self.a.shape[0] != self.b.shape[0]:
            raise ValueError(
                f"b must have as many rows as a (m = {self.a.shape[0]}); "
                f"got shapes a {tuple(self.a.shape)}, b {tuple(self.b.shape)}"
            )
        super().__init__(name, self.a.shape[1], self.b.shape[1], group)

    def over(self, group: str) -> Procrustes:
        """Return the same data over another group, e.g. ``"o"`` (no determinant constraint)."""
        return Procrustes(self.a, self.b, group, name=self.name)

    def objective(self, x: Tensor) -> Tensor:
        r""":math:`\tfrac12 \|A X - B\|_F^2`."""
        return 0.5 * (self.data("a", x) @ x - self.data("b", x)).square().sum()

    def solve(self) -> Answer:
        """Return closed forms for square and isotropic problems, else a pymanopt reference."""
        a, b = self.a.numpy(), self.b.numpy()
        gram, m = a.T @ a, a.T @ b
        spread = np.linalg.norm(gram - np.trace(gram) / self.n * np.eye(self.n))
        isotropic = spread <= 10 * self.n * np.finfo(float).eps * np.linalg.norm(gram)  # A^T A = cI
        if self.group == "so":
            x, text = polar(m, special=True), "closed form: Kabsch (SVD with determinant fix)"
        elif self.p == self.n or isotropic:
            x, text = polar(m), "closed form: polar factor (SVD)"
        else:
            scale = np.linalg.norm(gram, 2) + np.linalg.norm(m)
            return trust_region_reference(self, [polar(m)], scale=scale)
        return Answer(0.5 * float(np.linalg.norm(a @ x - b) ** 2), x, text)

    def extra_metrics(self, x: Tensor) -> dict[str, float]:
        """``det``, the determinant of :math:`X`, for square problems."""
        if self.p != self.n:
            return {}
        sign, logabs = torch.linalg.slogdet(x)
        return {"det": float(sign * logabs.exp())}

    @classmethod
    def random(
        cls,
        n: int,
        p: int | None = None,
        *,
        group: str = "stiefel",
        seed: int = 0,
        m: int | None = None,
        condition: float = 10.0,
        noise: float = 0.1,
        det: int | None = None,
    ) -> Procrustes:
        r"""Seeded instance :math:`B = A X_0 + \text{noise}`, :math:`X_0` Haar on the group.

        Parameters
        ----------
        n : int
        p : int, optional
            Defaults to ``n`` (square).
        group : {"stiefel", "o", "so"}, default ``"stiefel"``
        seed : int, default 0
        m : int, optional
            Rows of :math:`A` and :math:`B`; defaults to ``n``.
        condition : float, default 10
            Condition number :math:`\kappa \ge 1` of :math:`A`: singular values
            geometric from 1 to :math:`1/\kappa`, Haar singular vectors. With
            ``condition=1`` and ``m >= n``, :math:`A^\top A = I` and thin problems have a
            closed form.
        noise : float, default 0.1
            Entries of the noise are Gaussian with standard deviation
            :math:`\text{noise}/\sqrt{m}` (columns of norm about ``noise``).
        det : {1, -1}, optional
            Determinant of :math:`X_0` when square; ``group="so"`` defaults to 1. Given
            for ``group="o"`` (or a square ``"stiefel"``), it is also the determinant of
            the optimum: the noise is drawn again, from the same generator, while the
            polar factor of :math:`A^\top B` has the other one (noise can flip the
            weakest direction of an ill-conditioned :math:`A`).

        Examples
        --------
        >>> from cwy_manifolds.problems import Procrustes
        >>> prob = Procrustes.random(5, group="o", seed=1)
        >>> prob.reference, prob.solution.shape
        ('closed form: polar factor (SVD)', torch.Size([5, 5]))
        """
        n, p = check_sizes(n, n if p is None else p, group)
        m = n if m is None else check_size(m, "m")
        kappa = check_positive(condition, "condition", low=1.0, strict=False)
        noise = check_positive(noise, "noise", strict=False)
        if det not in (None, 1, -1) or (det is not None and p != n):
            raise ValueError(f"det must be None, or 1 or -1 for square problems; got {det!r}")
        if group == "so" and det == -1:
            raise ValueError("det must be 1 (or None) for group 'so'; got -1")
        gen = torch.Generator().manual_seed(seed)
        k = min(m, n)
        sigma = np.geomspace(1.0, 1.0 / kappa, k)
        a = (haar_matrix(gen, m, k) * sigma) @ haar_matrix(gen, n, k).T
        x0 = haar_matrix(gen, n, p, det=1 if group == "so" and det is None else det)
        for _ in range(_DRAWS):
            b = a @ x0 + noise / math.sqrt(m) * torch.randn(m, p, generator=gen, dtype=F64).numpy()
            if det is None or group == "so" or np.linalg.det(polar(a.T @ b)) * det > 0:
                return cls(a, b, group)
        raise ValueError(
            f"det={det} could not be kept by the optimum in {_DRAWS} draws of the noise; "
            f"lower noise ({noise:g}) or condition ({kappa:g})"
        )

    @classmethod
    def determinant_trap(
        cls, n: int, *, seed: int = 0, condition: float = 2.0, noise: float = 0.01
    ) -> Procrustes:
        r"""Square instance on :math:`SO(n)` whose :math:`O(n)` optimum has determinant -1.

        :math:`B = A R + \text{noise}` with :math:`\det R = -1`. Noise-free, the
        :math:`O(n)` optimum is :math:`R` itself (the polar factor of
        :math:`A^\top A R`); :meth:`over` ``("o")`` gives it. The :math:`SO(n)` optimum
        differs and has a strictly larger loss. With noise, :meth:`random` draws it again
        until the :math:`O(n)` optimum keeps determinant -1.

        Examples
        --------
        >>> from cwy_manifolds.problems import Procrustes
        >>> trap = Procrustes.determinant_trap(3)
        >>> trap.optimum > trap.over("o").optimum
        True
        """
        prob = cls.random(n, group="o", seed=seed, condition=condition, noise=noise, det=-1)
        return Procrustes(prob.a, prob.b, "so", name="procrustes-determinant-trap")
