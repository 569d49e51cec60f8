r"""Dominant invariant subspaces: of a symmetric matrix, and of a covariance (PCA).

:class:`DominantSubspace` takes any symmetric matrix, indefinite included;
:class:`PCA` is the special case of a covariance matrix, scaled so that the loss is minus
the fraction of the variance explained. Both have closed forms from ``scipy.linalg.eigh``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from .base import (
    Answer,
    Problem,
    as_matrix,
    check_positive,
    check_sizes,
    check_symmetric,
    haar_matrix,
)

__all__ = ["PCA", "DominantSubspace"]


class DominantSubspace(Problem):
    r"""The invariant subspace of the :math:`p` largest eigenvalues of a symmetric matrix.

    .. math::

        f(X) = -\frac{\operatorname{tr}(X^\top A X)}{s}, \qquad X \in \mathrm{St}(n, p),
        \qquad s = \|A\|_2 = \max_i |\lambda_i|,

    for a symmetric :math:`n \times n` matrix :math:`A`, definite or not. The optimum is
    :math:`-(\lambda_1 + \dots + \lambda_p) / s` with
    :math:`\lambda_1 \ge \dots \ge \lambda_n` the eigenvalues of :math:`A` (largest in
    value, not in magnitude), reached by any orthonormal basis of the top-:math:`p`
    eigenvectors (``scipy.linalg.eigh``; Ky Fan's maximum principle). The scaling by
    :math:`s` keeps :math:`|f| \le p` whatever the scale of :math:`A`.

    Parameters
    ----------
    a : Tensor or numpy.ndarray, shape ``(n, n)``
        Symmetric (to rounding), non-zero, real and finite.
    p : int
        Dimension of the subspace, ``1 <= p <= n``.
    name : str, default ``"dominant-subspace"``

    Attributes
    ----------
    a : torch.Tensor
        :math:`A`, symmetrised, float64 on the CPU.
    eigenvalues : torch.Tensor
        :math:`\lambda_1 \ge \dots \ge \lambda_n`, float64.

    Notes
    -----
    Extra metric ``principal_angle``: the largest principal angle (radians) between
    :math:`\operatorname{span}(X)` and the top-:math:`p` eigenvector subspace; it is
    well defined when :attr:`eigengap` :math:`= \lambda_p - \lambda_{p+1} > 0`.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds.problems import DominantSubspace
    >>> prob = DominantSubspace(torch.diag(torch.tensor([-3.0, 1.0, 2.0])), 2)
    >>> prob.optimum  # -(2 + 1) / 3
    -1.0
    """

    column_signs_free = True
    #: How messages name the matrix (PCA: ``cov``).
    _what = "a"

    def __init__(self, a: Tensor | np.ndarray, p: int, *, name: str = "dominant-subspace") -> None:
        c, eps = as_matrix(a, self._what)
        c = check_symmetric(c, eps, self._what)
        n = c.shape[0]
        super().__init__(name, n, p, "stiefel")
        self.a = c
        values, vectors = scipy.linalg.eigh(c.numpy())
        values, self._vectors = values[::-1].copy(), vectors[:, ::-1].copy()
        self.eigenvalues = torch.from_numpy(values)
        self.scale = self._scale(eps)
        self._scaled = self.a / self.scale

    def _scale(self, eps: float) -> float:
        scale = float(self.eigenvalues.abs().max())
        if scale == 0:
            raise ValueError("a must be non-zero; got the zero matrix")
        return scale

    @property
    def eigengap(self) -> float:
        r""":math:`\lambda_p - \lambda_{p+1}` (:math:`\lambda_p` when ``p == n``)."""
        lower = float(self.eigenvalues[self.p]) if self.p < self.n else 0.0
        return float(self.eigenvalues[self.p - 1]) - lower

    def objective(self, x: Tensor) -> Tensor:
        r""":math:`-\operatorname{tr}(X^\top A X) / s`."""
        return -(x * (self.data("_scaled", x) @ x)).sum()

    def solve(self) -> Answer:
        """Return the closed form: the top-p eigenvectors."""
        top = self._vectors[:, : self.p]
        value = -float(self.eigenvalues[: self.p].sum()) / self.scale
        return Answer(value, top, "closed form: eigh (top-p eigenvectors)")

    def extra_metrics(self, x: Tensor) -> dict[str, float]:
        """Return the largest principal angle to the top-p eigenvector subspace."""
        angles = scipy.linalg.subspace_angles(x.numpy(), self._vectors[:, : self.p])
        return {"principal_angle": float(angles.max())}

    @classmethod
    def random(cls, n: int, p: int, *, seed: int = 0, eigengap: float = 0.5) -> DominantSubspace:
        r"""Seeded indefinite instance: eigenvalues from 1 down to -1 with a gap after :math:`p`.

        The top :math:`p` eigenvalues are evenly spaced in :math:`[\delta, 1]`, the other
        :math:`n - p` in :math:`[-1, 0]`, with :math:`\delta` = ``eigengap`` :math:`\in
        (0, 1]`; the eigenvectors are Haar-random.

        Examples
        --------
        >>> from cwy_manifolds.problems import DominantSubspace
        >>> prob = DominantSubspace.random(5, 2)
        >>> [round(float(v), 3) for v in prob.eigenvalues]
        [1.0, 0.5, 0.0, -0.5, -1.0]
        """
        n, p = check_sizes(n, p)
        delta = check_positive(eigengap, "eigengap")
        if delta > 1:
            raise ValueError(f"eigengap must be at most 1; got {eigengap!r}")
        top = np.linspace(1.0, delta, p) if p > 1 else np.ones(1)
        rest = np.linspace(0.0, -1.0, n - p) if n - p > 1 else -np.ones(n - p)
        q = haar_matrix(torch.Generator().manual_seed(seed), n, n)
        return cls((q * np.concatenate([top, rest])) @ q.T, p)


class PCA(DominantSubspace):
    r"""Principal subspace of a covariance matrix, as a loss over :math:`\mathrm{St}(n, p)`.

    .. math::

        f(X) = -\frac{\operatorname{tr}(X^\top C X)}{\operatorname{tr}(C)}, \qquad
        X \in \mathrm{St}(n, p),

    where :math:`C` is the symmetric positive semidefinite :math:`n \times n` covariance.
    :math:`f(X)` is minus the fraction of the variance explained by
    :math:`\operatorname{span}(X)`, in :math:`[-1, 0]` whatever the scale of the data.
    The optimum is :math:`-(\lambda_1 + \dots + \lambda_p) / \operatorname{tr}(C)` with
    :math:`\lambda_1 \ge \dots \ge \lambda_n` the eigenvalues of :math:`C`, reached by any
    orthonormal basis of the top-:math:`p` eigenvectors (``scipy.linalg.eigh``). For a
    symmetric *indefinite* matrix (no variance to explain) use
    :class:`DominantSubspace`, the same problem scaled by the spectral norm.

    Parameters
    ----------
    cov : Tensor or numpy.ndarray, shape ``(n, n)``
        Symmetric (to rounding) positive semidefinite, non-zero, real and finite.
    p : int
        Number of components, ``1 <= p <= n``.
    name : str, default ``"pca"``

    Attributes
    ----------
    a : torch.Tensor
        :math:`C`, symmetrised, float64 on the CPU (also :attr:`cov`).
    eigenvalues : torch.Tensor
        :math:`\lambda_1 \ge \dots \ge \lambda_n`, float64.

    Notes
    -----
    Extra metric ``principal_angle``, as for :class:`DominantSubspace`.

    Examples
    --------
    >>> from cwy_manifolds.problems import PCA
    >>> prob = PCA.random(6, 2, seed=0)
    >>> abs(prob.gap(prob.solution)) < 1e-12
    True
    >>> prob.metrics(prob.solution)["principal_angle"] < 1e-6
    True
    """

    _what = "cov"

    def __init__(self, cov: Tensor | np.ndarray, p: int, *, name: str = "pca") -> None:
        super().__init__(cov, p, name=name)

    def _scale(self, eps: float) -> float:
        values, n = self.eigenvalues.numpy(), self.n
        if values[0] <= 0 or values[-1] < -10 * n * eps * values[0]:
            raise ValueError(
                "cov must be positive semidefinite and non-zero (a covariance matrix); got "
                f"eigenvalues from {values[-1]:.2e} to {values[0]:.2e}. For a symmetric "
                "indefinite matrix use DominantSubspace(a, p)"
            )
        return float(torch.trace(self.a))

    @property
    def cov(self) -> Tensor:
        """The covariance :math:`C` (float64, CPU)."""
        return self.a

    @classmethod
    def from_data(cls, data: Tensor | np.ndarray, p: int, *, name: str = "pca") -> PCA:
        r"""PCA of ``data`` of shape ``(samples, n)`` (at least 2 rows), centered here.

        The covariance is :math:`C = \bar D^\top \bar D / (\mathrm{samples} - 1)` with
        :math:`\bar D` the centered data.

        Examples
        --------
        >>> import numpy as np
        >>> from cwy_manifolds.problems import PCA
        >>> PCA.from_data(np.random.default_rng(0).normal(size=(50, 4)), 2).n
        4
        """
        d, _ = as_matrix(data, "data")
        if d.shape[0] < 2:
            raise ValueError(
                f"data must have at least 2 rows (samples); got shape {tuple(d.shape)}"
            )
        d = d - d.mean(dim=0)
        c = d.T @ d / (d.shape[0] - 1)
        return cls((c + c.T) / 2, p, name=name)

    @classmethod
    def random(  # type: ignore[override]
        cls, n: int, p: int, *, seed: int = 0, eigengap: float = 2.0, condition: float = 10.0
    ) -> PCA:
        r"""Seeded instance with a clear eigengap at :math:`p` and a given condition number.

        The eigenvalues decrease geometrically from 1 to :math:`1/\kappa`
        (``condition``) with one extra factor ``eigengap`` :math:`= \lambda_p /
        \lambda_{p+1}` between the top :math:`p` and the rest (``eigengap`` is unused when
        ``p == n``); the eigenvectors are Haar-random. Requires ``condition >= eigengap
        > 1``, with equality when ``n == 2 > p``.

        Examples
        --------
        >>> from cwy_manifolds.problems import PCA
        >>> prob = PCA.random(5, 2, eigengap=4.0, condition=100.0)
        >>> round(float(prob.eigenvalues[1] / prob.eigenvalues[2]), 6)
        4.0
        """
        n, p = check_sizes(n, p)
        gap = check_positive(eigengap, "eigengap", low=1.0)
        kappa = check_positive(condition, "condition", low=1.0, strict=False)
        if p < n and (kappa < gap or (n == 2 and not math.isclose(kappa, gap))):
            raise ValueError(
                f"condition must be >= eigengap (and equal to it for n = 2); "
                f"got condition={kappa}, eigengap={gap}, n={n}"
            )
        below = np.arange(n) >= p  # the eigenvalues after the eigengap
        steps = n - 1 - int(p < n)  # geometric steps besides the eigengap
        step = math.log(kappa / gap if p < n else kappa) / steps if steps else 0.0
        logs = -step * (np.arange(n) - below) - math.log(gap) * below
        q = haar_matrix(torch.Generator().manual_seed(seed), n, n)
        return cls((q * np.exp(logs)) @ q.T, p)

    @classmethod
    def digits(cls, p: int) -> PCA:
        """PCA of scikit-learn's bundled handwritten digits (1797 samples, ``n = 64``).

        The data ship inside scikit-learn (no download). Raises ImportError if
        scikit-learn is missing.

        Examples
        --------
        >>> from cwy_manifolds.problems import PCA
        >>> prob = PCA.digits(4)  # doctest: +SKIP
        >>> prob.n, prob.reference  # doctest: +SKIP
        (64, 'closed form: eigh (top-p eigenvectors)')
        """
        try:
            from sklearn.datasets import load_digits
        except ImportError as error:
            raise ImportError(
                "PCA.digits needs scikit-learn: pip install scikit-learn "
                "(or pip install 'cwy_manifolds[compare]')"
            ) from error
        return cls.from_data(load_digits().data, p, name="pca-digits")
