r"""Toy optimization problems over Stiefel and orthogonal matrices with known answers.

Each problem is a differentiable loss of one matrix :math:`X` of shape ``(n, p)`` on a
group: ``"stiefel"`` (:math:`\mathrm{St}(n, p) = \{X : X^\top X = I_p\}`), ``"o"``
(:math:`O(n)`, square) or ``"so"`` (:math:`SO(n)`, square, determinant +1). Losses are
plain torch functions of the matrix, so any manifold or parametrization can use them
unchanged; the data follow the dtype and device of :math:`X`. No geoopt import.

Note [relative gap]
~~~~~~~~~~~~~~~~~~~
:meth:`Problem.gap` is the *relative* gap
:math:`(f(X) - f^\star) / \max(1, |f^\star|)`, evaluated in float64 on the CPU: absolute
for optimal values of magnitude at most 1 (every :class:`PCA`, by its scaling) and
relative above, so that one threshold fits instances of any scale. It can be slightly
negative at an infeasible point, or when :math:`f^\star` is a numerical reference.

Note [reference solutions]
~~~~~~~~~~~~~~~~~~~~~~~~~~
:attr:`Problem.reference` says where :attr:`Problem.optimum` and
:attr:`Problem.solution` come from. Closed forms (``eigh``, polar factor, Kabsch) are
global optima up to rounding. Thin Procrustes problems have no closed form unless
:math:`A^\top A = c I`: their reference is the best of a few runs of pymanopt's trust
regions, a critical point that is very likely, but not certified, a global minimum. It is
computed on first access; without pymanopt it is ``None`` and the gap is NaN.
"""

from __future__ import annotations

import abc
import functools
import math
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from ._checks import check_tensor

__all__ = ["GROUPS", "PCA", "PROBLEMS", "Problem", "Procrustes", "make_problem"]

#: The sets a problem's point can live on, ``"stiefel"`` (:math:`\mathrm{St}(n, p)`),
#: ``"o"`` (:math:`O(n)`) and ``"so"`` (:math:`SO(n)`).
GROUPS = ("stiefel", "o", "so")
F64 = torch.float64


def _check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be positive; got {value}")
    return int(value)


def _check_sizes(n: object, p: object, group: object = "stiefel") -> tuple[int, int]:
    n, p = _check_size(n, "n"), _check_size(p, "p")
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(map(repr, GROUPS))}; got {group!r}")
    if p > n:
        raise ValueError(f"p must be at most n (a Stiefel matrix is tall); got n={n}, p={p}")
    if group != "stiefel" and p != n:
        raise ValueError(f"p must equal n for group {group!r} (square matrices); got n={n}, p={p}")
    return n, p


def _check_positive(value: object, name: str, *, low: float = 0.0, strict: bool = True) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        raise ValueError(
            f"{name} must be a finite number {'>' if strict else '>='} {low}; got {value!r}"
        )
    return float(value)


def _as_matrix(x: object, name: str) -> tuple[Tensor, float]:
    """Check a finite real matrix; return it as a float64 CPU tensor and its dtype's eps."""
    if isinstance(x, np.ndarray):
        try:
            x = torch.as_tensor(x)
        except TypeError:
            raise TypeError(f"{name} must have a real floating dtype; got {x.dtype}") from None
    x = check_tensor(x, name, min_ndim=0)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a matrix (2 dimensions); got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} must have finite entries; got {bad} NaN/Inf entries")
    return x.detach().to("cpu", F64).clone(), torch.finfo(x.dtype).eps


def _haar(rng: np.random.Generator, n: int, p: int, det: int | None = None) -> np.ndarray:
    """Haar-random point of St(n, p) (QR of a Gaussian with the sign fix), optional det."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
    if det is not None and np.linalg.det(q) * det < 0:
        q[:, -1] *= -1
    return q[:, :p]


def _polar(m: np.ndarray, *, special: bool = False) -> np.ndarray:
    """Maximiser of tr(X^T M) over St(n, p) (polar factor) or, with ``special``, SO(n)."""
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    if special and np.linalg.det(u @ vt) < 0:  # Kabsch: flip the weakest direction
        u[:, -1] *= -1
    return u @ vt


class Problem(abc.ABC):
    r"""A loss over Stiefel or orthogonal matrices with a known (or reference) optimum.

    Subclasses define the loss :math:`f(X)` and where the optimum :math:`f^\star` comes
    from. For a point :math:`X` (any real float dtype and device), the metrics are, in
    float64,

    .. math::

        \mathrm{gap}(X) = \frac{f(X) - f^\star}{\max(1, |f^\star|)}, \qquad
        \mathrm{feasibility}(X) = \|X^\top X - I_p\|_F

    (Note [relative gap]).

    Attributes
    ----------
    name : str
        Short identifier of the instance, e.g. ``"pca"`` or ``"pca-digits"``.
    n, p : int
        Shape of the point :math:`X`, ``(n, p)`` with ``p <= n``.
    group : str
        ``"stiefel"`` (:math:`\mathrm{St}(n, p)`), ``"o"`` (:math:`O(n)`) or ``"so"``
        (:math:`SO(n)`); the last two have ``p == n``.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds.problems import make_problem
    >>> prob = make_problem("pca", 5, 2)
    >>> x = torch.eye(5, 2, requires_grad=True)
    >>> prob.loss(x).backward()
    >>> x.grad.shape, sorted(prob.metrics(x))
    (torch.Size([5, 2]), ['feasibility', 'gap', 'loss', 'principal_angle'])
    """

    def __init__(self, name: str, n: int, p: int, group: str) -> None:
        self.n, self.p = _check_sizes(n, p, group)
        self.name, self.group = name, group
        self._cache: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}

    @classmethod
    @abc.abstractmethod
    def random(cls, n: int, p: int, *, seed: int = 0, **kwargs: Any) -> Problem:
        """Return a seeded random instance."""

    @abc.abstractmethod
    def _loss(self, x: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _solve(self) -> tuple[float | None, np.ndarray | None, str]: ...

    def _extra_metrics(self, x: Tensor) -> dict[str, float]:
        return {}

    @functools.cached_property
    def _answer(self) -> tuple[float | None, Tensor | None, str]:
        value, point, reference = self._solve()
        return value, None if point is None else torch.from_numpy(point), reference

    @property
    def optimum(self) -> float | None:
        """Optimal (or reference) loss value, ``None`` when unavailable."""
        return self._answer[0]

    @property
    def solution(self) -> Tensor | None:
        """An optimal (or reference) point, a new float64 tensor, ``None`` when unavailable."""
        point = self._answer[1]
        return None if point is None else point.clone()

    @property
    def reference(self) -> str:
        """Where :attr:`optimum` and :attr:`solution` come from, in plain words."""
        return self._answer[2]

    def _data(self, key: str, x: Tensor) -> Tensor:
        """Return the float64 attribute ``key`` in the dtype and on the device of ``x``."""
        index = (key, x.dtype, x.device)
        if index not in self._cache:
            self._cache[index] = getattr(self, key).to(x.device, x.dtype)
        return self._cache[index]

    def loss(self, x: Tensor) -> Tensor:
        """Differentiable scalar loss at ``x`` of shape ``(n, p)``, in the dtype of ``x``."""
        x = check_tensor(x, "x")
        if tuple(x.shape) != (self.n, self.p):
            raise ValueError(f"x must have shape (n, p) = {(self.n, self.p)}; got {tuple(x.shape)}")
        return self._loss(x)

    def gap(self, x: Tensor) -> float:
        """Relative gap to the optimum (Note [relative gap]); NaN without an optimum."""
        return self.metrics(x, extra=False)["gap"]

    def feasibility(self, x: Tensor) -> float:
        r""":math:`\|X^\top X - I\|_F` in float64."""
        x = check_tensor(x, "x").detach().to("cpu", F64)
        return float(torch.linalg.matrix_norm(x.mT @ x - torch.eye(x.shape[-1], dtype=F64)))

    def metrics(self, x: Tensor, *, extra: bool = True) -> dict[str, float]:
        """Return ``loss``, ``gap`` (relative), ``feasibility`` and problem-specific values.

        ``extra=False`` leaves out the problem-specific values (for PCA the principal
        angle, which costs SVDs), for cheap per-step records.
        """
        x = check_tensor(x, "x").detach().to("cpu", F64)
        with torch.no_grad():
            value = float(self.loss(x))
        optimum = self.optimum
        gap = math.nan if optimum is None else (value - optimum) / max(1.0, abs(optimum))
        out = {"loss": value, "gap": gap, "feasibility": self.feasibility(x)}
        return out | self._extra_metrics(x) if extra else out

    def __repr__(self) -> str:
        args = f"name={self.name!r}, n={self.n}, p={self.p}, group={self.group!r}"
        return f"{type(self).__name__}({args})"


class PCA(Problem):
    r"""Principal subspace of a covariance matrix, as a loss over :math:`\mathrm{St}(n, p)`.

    .. math::

        f(X) = -\frac{\operatorname{tr}(X^\top C X)}{\operatorname{tr}(C)}, \qquad
        X \in \mathrm{St}(n, p),

    where :math:`C` is the symmetric positive semidefinite :math:`n \times n` covariance.
    :math:`f(X)` is minus the fraction of the variance explained by
    :math:`\operatorname{span}(X)`, in :math:`[-1, 0]` whatever the scale of the data.
    The optimum is :math:`-(\lambda_1 + \dots + \lambda_p) / \operatorname{tr}(C)` with
    :math:`\lambda_1 \ge \dots \ge \lambda_n` the eigenvalues of :math:`C`, reached by any
    orthonormal basis of the top-:math:`p` eigenvectors (``scipy.linalg.eigh``).

    Parameters
    ----------
    cov : Tensor or numpy.ndarray, shape ``(n, n)``
        Symmetric (to rounding) positive semidefinite, non-zero, real and finite.
    p : int
        Number of components, ``1 <= p <= n``.
    name : str, default ``"pca"``

    Attributes
    ----------
    cov : torch.Tensor
        :math:`C`, symmetrised, float64 on the CPU.
    eigenvalues : torch.Tensor
        :math:`\lambda_1 \ge \dots \ge \lambda_n`, float64.

    Notes
    -----
    Extra metric ``principal_angle``: the largest principal angle (radians) between
    :math:`\operatorname{span}(X)` and the top-:math:`p` eigenvector subspace; it is
    well defined when :attr:`eigengap` :math:`= \lambda_p - \lambda_{p+1} > 0`.

    Examples
    --------
    >>> from cwy_manifolds.problems import PCA
    >>> prob = PCA.random(6, 2, seed=0)
    >>> abs(prob.gap(prob.solution)) < 1e-12
    True
    >>> prob.metrics(prob.solution)["principal_angle"] < 1e-6
    True
    """

    def __init__(self, cov: Tensor | np.ndarray, p: int, *, name: str = "pca") -> None:
        c, eps = _as_matrix(cov, "cov")
        n = c.shape[0]
        if c.shape != (n, n):
            raise ValueError(f"cov must be square; got shape {tuple(c.shape)}")
        norm = float(torch.linalg.matrix_norm(c))
        asym = float(torch.linalg.matrix_norm(c - c.T))
        if asym > 10 * n * eps * norm:
            raise ValueError(
                f"cov must be symmetric; got ||cov - cov^T||_F = {asym:.2e} "
                f"against ||cov||_F = {norm:.2e} (tolerance {10 * n * eps:.1e} relative)"
            )
        super().__init__(name, n, p, "stiefel")
        self.cov = (c + c.T) / 2
        values, vectors = scipy.linalg.eigh(self.cov.numpy())
        values, self._vectors = values[::-1].copy(), vectors[:, ::-1].copy()
        if values[0] <= 0 or values[-1] < -10 * n * eps * values[0]:
            raise ValueError(
                "cov must be positive semidefinite and non-zero (a covariance matrix); got "
                f"eigenvalues from {values[-1]:.2e} to {values[0]:.2e}"
            )
        self.eigenvalues = torch.from_numpy(values)
        self._scaled = self.cov / float(torch.trace(self.cov))

    @property
    def eigengap(self) -> float:
        r""":math:`\lambda_p - \lambda_{p+1}` (:math:`\lambda_p` when ``p == n``)."""
        lower = float(self.eigenvalues[self.p]) if self.p < self.n else 0.0
        return float(self.eigenvalues[self.p - 1]) - lower

    def _loss(self, x: Tensor) -> Tensor:
        return -(x * (self._data("_scaled", x) @ x)).sum()

    def _solve(self) -> tuple[float, np.ndarray, str]:
        top = self._vectors[:, : self.p]
        value = -float(self.eigenvalues[: self.p].sum() / torch.trace(self.cov))
        return value, top, "closed form: eigh (top-p eigenvectors)"

    def _extra_metrics(self, x: Tensor) -> dict[str, float]:
        angles = scipy.linalg.subspace_angles(x.numpy(), self._vectors[:, : self.p])
        return {"principal_angle": float(angles.max())}

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
        d, _ = _as_matrix(data, "data")
        if d.shape[0] < 2:
            raise ValueError(
                f"data must have at least 2 rows (samples); got shape {tuple(d.shape)}"
            )
        d = d - d.mean(dim=0)
        c = d.T @ d / (d.shape[0] - 1)
        return cls((c + c.T) / 2, p, name=name)

    @classmethod
    def random(
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
        n, p = _check_sizes(n, p)
        gap = _check_positive(eigengap, "eigengap", low=1.0)
        kappa = _check_positive(condition, "condition", low=1.0, strict=False)
        if p < n and (kappa < gap or (n == 2 and not math.isclose(kappa, gap))):
            raise ValueError(
                f"condition must be >= eigengap (and equal to it for n = 2); "
                f"got condition={kappa}, eigengap={gap}, n={n}"
            )
        below = np.arange(n) >= p  # the eigenvalues after the eigengap
        steps = n - 1 - int(p < n)  # geometric steps besides the eigengap
        step = math.log(kappa / gap if p < n else kappa) / steps if steps else 0.0
        logs = -step * (np.arange(n) - below) - math.log(gap) * below
        q = _haar(np.random.default_rng(seed), n, n)
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
    solutions]).

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
        self.a, self._eps = _as_matrix(a, "a")
        self.b, _ = _as_matrix(b, "b")
        if self.a.shape[0] != self.b.shape[0]:
            raise ValueError(
                f"b must have as many rows as a (m = {self.a.shape[0]}); "
                f"got shapes a {tuple(self.a.shape)}, b {tuple(self.b.shape)}"
            )
        super().__init__(name, self.a.shape[1], self.b.shape[1], group)

    def over(self, group: str) -> Procrustes:
        """Return the same data over another group, e.g. ``"o"`` (no determinant constraint)."""
        return Procrustes(self.a, self.b, group, name=self.name)

    def _loss(self, x: Tensor) -> Tensor:
        return 0.5 * (self._data("a", x) @ x - self._data("b", x)).square().sum()

    def _solve(self) -> tuple[float | None, np.ndarray | None, str]:
        a, b = self.a.numpy(), self.b.numpy()
        gram, m = a.T @ a, a.T @ b
        spread = np.linalg.norm(gram - np.trace(gram) / self.n * np.eye(self.n))
        isotropic = spread <= 10 * self.n * np.finfo(float).eps * np.linalg.norm(gram)  # A^T A = cI
        if self.group == "so":
            x, text = _polar(m, special=True), "closed form: Kabsch (SVD with determinant fix)"
        elif self.p == self.n or isotropic:
            x, text = _polar(m), "closed form: polar factor (SVD)"
        else:
            x, text = self._pymanopt(gram, m)
            if x is None:
                return None, None, text
        return 0.5 * float(np.linalg.norm(a @ x - b) ** 2), x, text

    def _pymanopt(self, gram: np.ndarray, m: np.ndarray) -> tuple[np.ndarray | None, str]:
        try:
            import pymanopt
        except ImportError:
            return None, "unavailable: thin Procrustes needs pymanopt (pip install pymanopt)"
        manifold = pymanopt.manifolds.Stiefel(self.n, self.p)
        a, b = self.a.numpy(), self.b.numpy()

        @pymanopt.function.numpy(manifold)
        def cost(x: np.ndarray) -> float:
            return 0.5 * float(np.linalg.norm(a @ x - b) ** 2)

        @pymanopt.function.numpy(manifold)
        def gradient(x: np.ndarray) -> np.ndarray:
            return gram @ x - m

        @pymanopt.function.numpy(manifold)
        def hessian(x: np.ndarray, u: np.ndarray) -> np.ndarray:
            return gram @ u

        problem = pymanopt.Problem(
            manifold, cost, euclidean_gradient=gradient, euclidean_hessian=hessian
        )
        tol = 1e-12 * max(1.0, np.linalg.norm(gram, 2) + np.linalg.norm(m))
        optimizer = pymanopt.optimizers.TrustRegions(verbosity=0, min_gradient_norm=tol)
        rng = np.random.default_rng(0)
        starts = [_polar(m)] + [_haar(rng, self.n, self.p) for _ in range(3)]
        runs = [optimizer.run(problem, initial_point=x0) for x0 in starts]
        best = min(runs, key=lambda run: run.cost)
        return best.point, (
            f"reference: pymanopt trust regions (best of {len(runs)} starts, Riemannian "
            f"gradient norm {best.gradient_norm:.1e}), not a certified optimum"
        )

    def _extra_metrics(self, x: Tensor) -> dict[str, float]:
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
            Determinant of :math:`X_0` when square; ``group="so"`` defaults to 1.

        Examples
        --------
        >>> from cwy_manifolds.problems import Procrustes
        >>> prob = Procrustes.random(5, group="o", seed=1)
        >>> prob.reference, prob.solution.shape
        ('closed form: polar factor (SVD)', torch.Size([5, 5]))
        """
        n, p = _check_sizes(n, n if p is None else p, group)
        m = n if m is None else _check_size(m, "m")
        kappa = _check_positive(condition, "condition", low=1.0, strict=False)
        noise = _check_positive(noise, "noise", strict=False)
        if det not in (None, 1, -1) or (det is not None and p != n):
            raise ValueError(f"det must be None, or 1 or -1 for square problems; got {det!r}")
        if group == "so" and det == -1:
            raise ValueError("det must be 1 (or None) for group 'so'; got -1")
        rng = np.random.default_rng(seed)
        k = min(m, n)
        sigma = np.geomspace(1.0, 1.0 / kappa, k)
        a = (_haar(rng, m, k) * sigma) @ _haar(rng, n, k).T
        x0 = _haar(rng, n, p, det=1 if group == "so" and det is None else det)
        b = a @ x0 + noise / math.sqrt(m) * rng.standard_normal((m, p))
        return cls(a, b, group)

    @classmethod
    def determinant_trap(
        cls, n: int, *, seed: int = 0, condition: float = 2.0, noise: float = 0.01
    ) -> Procrustes:
        r"""Square instance on :math:`SO(n)` whose :math:`O(n)` optimum has determinant -1.

        :math:`B = A R + \text{noise}` with :math:`\det R = -1`. Noise-free, the
        :math:`O(n)` optimum is :math:`R` itself (the polar factor of
        :math:`A^\top A R`); :meth:`over` ``("o")`` gives it. The :math:`SO(n)` optimum
        differs and has a strictly larger loss. Raises ValueError if ``noise`` is so
        large that the :math:`O(n)` optimum has determinant +1.

        Examples
        --------
        >>> from cwy_manifolds.problems import Procrustes
        >>> trap = Procrustes.determinant_trap(3)
        >>> trap.optimum > trap.over("o").optimum
        True
        """
        prob = cls.random(n, group="o", seed=seed, condition=condition, noise=noise, det=-1)
        if np.linalg.det(prob.solution.numpy()) > 0:
            raise ValueError(
                f"noise must be small enough for the O(n) optimum to keep determinant -1; "
                f"got noise={noise}"
            )
        return Procrustes(prob.a, prob.b, "so", name="procrustes-determinant-trap")


#: Problem classes by name, for :func:`make_problem`.
PROBLEMS: dict[str, type[Problem]] = {"pca": PCA, "procrustes": Procrustes}


def make_problem(name: str, n: int, p: int, *, seed: int = 0, **kwargs: Any) -> Problem:
    """Build a seeded random instance of the problem registered as ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`PROBLEMS`: ``"pca"`` or ``"procrustes"``.
    n, p : int
        Shape of the point, ``1 <= p <= n``.
    seed : int, default 0
    **kwargs
        Passed to the ``random`` constructor of the class (e.g. ``group``, ``condition``).

    Examples
    --------
    >>> from cwy_manifolds.problems import make_problem
    >>> make_problem("procrustes", 4, 4, group="so")
    Procrustes(name='procrustes', n=4, p=4, group='so')
    """
    if not isinstance(name, str) or name not in PROBLEMS:
        raise ValueError(f"name must be one of {', '.join(map(repr, PROBLEMS))}; got {name!r}")
    return PROBLEMS[name].random(n, p, seed=seed, **kwargs)
