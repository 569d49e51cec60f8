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
import torch
from torch import Tensor

from ..core import check_tensor, haar

__all__ = ["GROUPS", "Problem"]

#: The sets a problem's point can live on, ``"stiefel"`` (:math:`\mathrm{St}(n, p)`),
#: ``"o"`` (:math:`O(n)`) and ``"so"`` (:math:`SO(n)`).
GROUPS = ("stiefel", "o", "so")
F64 = torch.float64


def check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be positive; got {value}")
    return int(value)


def check_sizes(n: object, p: object, group: object = "stiefel") -> tuple[int, int]:
    n, p = check_size(n, "n"), check_size(p, "p")
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(map(repr, GROUPS))}; got {group!r}")
    if p > n:
        raise ValueError(f"p must be at most n (a Stiefel matrix is tall); got n={n}, p={p}")
    if group != "stiefel" and p != n:
        raise ValueError(f"p must equal n for group {group!r} (square matrices); got n={n}, p={p}")
    return n, p


def check_positive(value: object, name: str, *, low: float = 0.0, strict: bool = True) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        raise ValueError(
            f"{name} must be a finite number {'>' if strict else '>='} {low}; got {value!r}"
        )
    return float(value)


def as_matrix(x: object, name: str) -> tuple[Tensor, float]:
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


def haar_matrix(gen: torch.Generator, n: int, p: int, det: int | None = None) -> np.ndarray:
    """Haar-random point of St(n, p) as a float64 array (:func:`~cwy_manifolds.core.haar`).

    With ``det``, the first ``p`` columns of a Haar matrix of :math:`O(n)` with that
    determinant.
    """
    return haar((n, n), det=det, dtype=F64, generator=gen)[:, :p].numpy()


def polar(m: np.ndarray, *, special: bool = False) -> np.ndarray:
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
        self.n, self.p = check_sizes(n, p, group)
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
