r"""The :class:`Problem` protocol: a loss over Stiefel or orthogonal matrices.

Each problem is a differentiable loss of one matrix :math:`X` of shape ``(n, p)`` on a
group: ``"stiefel"`` (:math:`\mathrm{St}(n, p) = \{X : X^\top X = I_p\}`), ``"o"``
(:math:`O(n)`, square) or ``"so"`` (:math:`SO(n)`, square, determinant +1). Losses are
plain torch functions of the matrix, so any manifold or parametrization can use them
unchanged; the data follow the dtype and device of :math:`X`. No geoopt import.

A problem answers three questions, each one public method a subclass can override:

- :meth:`Problem.objective` (required): the loss at a point;
- :meth:`Problem.solve` (optional): the optimum, as an :class:`Answer` (value, a point
  attaining it, and where they come from); the default knows no optimum;
- :meth:`Problem.extra_metrics` (optional): problem-specific diagnostics.

A plain function is enough too: :meth:`Problem.from_function`.

Note [relative gap]
~~~~~~~~~~~~~~~~~~~
:meth:`Problem.gap` is the *relative* gap
:math:`(f(X) - f^\star) / \max(1, |f^\star|)`, evaluated in float64 on the CPU: absolute
for optimal values of magnitude at most 1 (every :class:`PCA`, by its scaling) and
relative above, so that one threshold fits instances of any scale. It can be slightly
negative at an infeasible point, or when :math:`f^\star` is a numerical reference.

Note [Riemannian gradient of the matrix]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
``metrics(x)["grad_norm"]`` is :math:`\|G - X \operatorname{sym}(X^\top G)\|_F` with
:math:`G = \nabla f(X)` the Euclidean gradient of the loss with respect to the *matrix*
and :math:`\operatorname{sym}(A) = (A + A^\top)/2`: the norm of the Riemannian gradient on
:math:`\mathrm{St}(n, p)` with the embedded metric (on :math:`O(n)` it equals
:math:`\|\operatorname{skew}(X^\top G)\|_F`). It is computed the same way whatever
manifold or solver produced :math:`X`, so one tolerance means the same for all of them.

Note [reference solutions]
~~~~~~~~~~~~~~~~~~~~~~~~~~
:attr:`Problem.reference` says where :attr:`Problem.optimum` and
:attr:`Problem.solution` come from. Closed forms (``eigh``, polar factor, Kabsch, known
diagonalizers) are global optima up to rounding. Problems without a closed form get the
best of a few runs of pymanopt's trust regions (:mod:`~cwy_manifolds.problems.reference`),
a critical point that is very likely, but not certified, a global minimum. It is computed
on first access; without pymanopt it is ``None`` and the gap is NaN.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..core import check_tensor, haar

__all__ = ["GROUPS", "Answer", "Problem"]

#: The sets a problem's point can live on, ``"stiefel"`` (:math:`\mathrm{St}(n, p)`),
#: ``"o"`` (:math:`O(n)`) and ``"so"`` (:math:`SO(n)`).
GROUPS = ("stiefel", "o", "so")
F64 = torch.float64
#: Extra metrics of a problem given by functions: one returning a mapping, or a mapping of
#: one function per metric (:meth:`Problem.from_function`).
MetricsSpec = Callable[[Tensor], Mapping[str, float]] | Mapping[str, Callable[[Tensor], float]]


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


def check_symmetric(c: Tensor, eps: float, name: str) -> Tensor:
    """Check that the float64 matrix ``c`` is square and symmetric to rounding; symmetrise it."""
    n = c.shape[0]
    if c.shape != (n, n):
        raise ValueError(f"{name} must be square; got shape {tuple(c.shape)}")
    norm = float(torch.linalg.matrix_norm(c))
    asym = float(torch.linalg.matrix_norm(c - c.T))
    if asym > 10 * n * eps * norm:
        raise ValueError(
            f"{name} must be symmetric; got ||{name} - {name}^T||_F = {asym:.2e} "
            f"against ||{name}||_F = {norm:.2e} (tolerance {10 * n * eps:.1e} relative)"
        )
    return (c + c.T) / 2


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


def tangent_norm(x: Tensor, g: Tensor) -> float:
    r""":math:`\|G - X \operatorname{sym}(X^\top G)\|_F` (Note [Riemannian gradient ...])."""
    xtg = x.mT @ g
    return float(torch.linalg.matrix_norm(g - x @ ((xtg + xtg.mT) / 2)))


@dataclass(frozen=True)
class Answer:
    """What :meth:`Problem.solve` returns: the optimum, a point attaining it, its source.

    Attributes
    ----------
    value : float or None
        The optimal (or reference) loss; ``None`` when unknown. Computed from ``point``
        when only the point is given.
    point : torch.Tensor or numpy.ndarray or None
        An optimal (or reference) point of shape ``(n, p)`` on the problem's group.
    source : str
        Where they come from, in plain words (Note [reference solutions]), e.g.
        ``"closed form: eigh"``.
    """

    value: float | None = None
    point: Tensor | np.ndarray | None = None
    source: str = "unknown: no reference optimum"


class Problem(abc.ABC):
    r"""A loss over Stiefel or orthogonal matrices, with its optimum when known.

    Subclasses implement :meth:`objective` (and optionally :meth:`solve` and
    :meth:`extra_metrics`); :meth:`from_function` builds one from a plain function. For a
    point :math:`X` (any real float dtype and device), the metrics are, in float64,

    .. math::

        \mathrm{gap}(X) = \frac{f(X) - f^\star}{\max(1, |f^\star|)}, \qquad
        \mathrm{feasibility}(X) = \|X^\top X - I_p\|_F, \qquad
        \mathrm{grad\_norm}(X) = \|G - X \operatorname{sym}(X^\top G)\|_F

    with :math:`G = \nabla f(X)` (Notes [relative gap], [Riemannian gradient of the
    matrix]).

    Parameters
    ----------
    name : str
        Short identifier of the instance, e.g. ``"pca"`` or ``"pca-digits"``.
    n, p : int
        Shape of the point :math:`X`, ``(n, p)`` with ``p <= n``.
    group : {"stiefel", "o", "so"}, default ``"stiefel"``
        :math:`\mathrm{St}(n, p)`, :math:`O(n)` or :math:`SO(n)`; the last two need
        ``p == n``.

    Examples
    --------
    A subclass needs one method:

    >>> import torch
    >>> from cwy_manifolds.problems import Answer, Problem
    >>> class Trace(Problem):
    ...     '''f(X) = -tr(X^T A X) for a fixed symmetric A.'''
    ...     def __init__(self, a, p):
    ...         super().__init__("trace", a.shape[0], p)
    ...         self.a = a
    ...     def objective(self, x):
    ...         return -(x * (self.a.to(x) @ x)).sum()
    >>> prob = Trace(torch.diag(torch.arange(4.0)), 2)
    >>> x = torch.eye(4, 2, requires_grad=True)
    >>> prob.loss(x).backward()
    >>> x.grad.shape, sorted(prob.metrics(x.detach()))
    (torch.Size([4, 2]), ['feasibility', 'gap', 'grad_norm', 'loss'])
    """

    #: Whether the loss is unchanged by flipping the sign of a column, so that both
    #: components of :math:`O(n)` hold an optimum (then :attr:`component` is None).
    column_signs_free: bool = False

    def __init__(self, name: str, n: int, p: int, group: str = "stiefel") -> None:
        self.n, self.p = check_sizes(n, p, group)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string; got {name!r}")
        self.name, self.group = name, group
        self._cache: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}

    # -- the protocol ---------------------------------------------------------------------

    @abc.abstractmethod
    def objective(self, x: Tensor) -> Tensor:
        """Return the loss at ``x``, a differentiable scalar in the dtype of ``x``.

        ``x`` has shape ``(n, p)`` (already checked by :meth:`loss`, which users call).
        """

    def solve(self) -> Answer:
        """Return the optimum (:class:`Answer`); the default knows none.

        Called once, on first access to :attr:`optimum`, :attr:`solution` or
        :attr:`reference`.
        """
        return Answer()

    def extra_metrics(self, x: Tensor) -> dict[str, float]:
        """Problem-specific metrics at ``x`` (float64, CPU); none by default."""
        return {}

    @staticmethod
    def from_function(
        loss: Callable[[Tensor], Tensor],
        n: int,
        p: int,
        *,
        group: str = "stiefel",
        optimum: float | None = None,
        solution: Tensor | np.ndarray | None = None,
        metrics: MetricsSpec | None = None,
        name: str = "custom",
        reference: str | None = None,
    ) -> Problem:
        """Build a problem from a plain loss function (a :class:`FunctionProblem`).

        See :class:`~cwy_manifolds.problems.FunctionProblem` for the parameters.

        Examples
        --------
        >>> import torch
        >>> from cwy_manifolds.problems import Problem
        >>> a = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))
        >>> prob = Problem.from_function(lambda x: -(x * (a @ x)).sum(), 3, 1,
        ...                              optimum=-3.0, name="top-eigenvector")
        >>> prob.gap(torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64))
        0.0
        """
        from .custom import FunctionProblem

        return FunctionProblem(
            loss,
            n,
            p,
            group=group,
            optimum=optimum,
            solution=solution,
            metrics=metrics,
            name=name,
            reference=reference,
        )

    # -- derived ----------------------------------------------------------------------------

    @functools.cached_property
    def _answer(self) -> tuple[float | None, Tensor | None, str]:
        answer = self.solve()
        if not isinstance(answer, Answer):
            raise TypeError(f"solve() must return an Answer; got {type(answer).__name__}")
        point = None
        if answer.point is not None:
            point = self.check_point(answer.point, "the solution")
        value = answer.value
        if value is None and point is not None:
            with torch.no_grad():
                value = float(self.loss(point))
        if value is not None and not math.isfinite(value):
            raise ValueError(f"the optimum must be a finite number; got {value!r}")
        return (None if value is None else float(value)), point, answer.source

    def check_point(self, point: Tensor | np.ndarray, what: str) -> Tensor:
        """Check that ``point`` lies on the problem's set; return it as a float64 tensor."""
        x, _ = as_matrix(point, what)
        if tuple(x.shape) != (self.n, self.p):
            raise ValueError(f"{what} must have shape {(self.n, self.p)}; got {tuple(x.shape)}")
        error = self.feasibility(x)
        if error > 1e-6 * max(1, self.p):
            raise ValueError(
                f"{what} must have orthonormal columns; got ||X^T X - I|| = {error:.1e}"
            )
        if self.group == "so" and float(torch.linalg.det(x)) < 0:
            raise ValueError(f"{what} must have determinant +1 for group 'so'; got -1")
        return x

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

    @property
    def component(self) -> int | None:
        """Determinant (+1 or -1) of :attr:`solution` for square problems, else ``None``.

        The connected component of :math:`O(n)` where the optimum lies; methods must start
        there to reach it. ``None`` also when both components hold an optimum
        (:attr:`~cwy_manifolds.problems.Problem.column_signs_free`).
        """
        point = self._answer[1]
        if point is None or self.p != self.n or self.column_signs_free:
            return None
        return 1 if float(torch.linalg.slogdet(point).sign) > 0 else -1

    def data(self, key: str, x: Tensor) -> Tensor:
        """Return the float64 tensor attribute ``key`` in the dtype and on the device of ``x``.

        Cached per dtype and device, so losses can use it on every call.
        """
        index = (key, x.dtype, x.device)
        if index not in self._cache:
            self._cache[index] = getattr(self, key).to(x.device, x.dtype)
        return self._cache[index]

    def loss(self, x: Tensor) -> Tensor:
        """Differentiable scalar loss at ``x`` of shape ``(n, p)``, in the dtype of ``x``."""
        x = check_tensor(x, "x")
        if tuple(x.shape) != (self.n, self.p):
            raise ValueError(f"x must have shape (n, p) = {(self.n, self.p)}; got {tuple(x.shape)}")
        return self.objective(x)

    def gap(self, x: Tensor) -> float:
        """Relative gap to the optimum (Note [relative gap]); NaN without an optimum."""
        return self.metrics(x, extra=False)["gap"]

    def feasibility(self, x: Tensor) -> float:
        r""":math:`\|X^\top X - I\|_F` in float64."""
        x = check_tensor(x, "x").detach().to("cpu", F64)
        return float(torch.linalg.matrix_norm(x.mT @ x - torch.eye(x.shape[-1], dtype=F64)))

    def metrics(self, x: Tensor, *, extra: bool = True) -> dict[str, float]:
        """Return ``loss``, ``gap``, ``feasibility``, ``grad_norm`` and problem-specific values.

        All in float64 on the CPU. ``grad_norm`` is the Riemannian gradient norm of the
        matrix (Note [Riemannian gradient of the matrix]). ``extra=False`` leaves out the
        problem-specific values (for PCA the principal angle, which costs SVDs), for cheap
        per-step records.
        """
        x = check_tensor(x, "x").detach().to("cpu", F64).requires_grad_()
        with torch.enable_grad():
            value = self.loss(x)
            if value.requires_grad:
                (grad,) = torch.autograd.grad(value, x, allow_unused=True)
            else:
                grad = None
        x = x.detach()
        value = float(value.detach())
        grad_norm = 0.0 if grad is None else tangent_norm(x, grad)
        optimum = self.optimum
        gap = math.nan if optimum is None else (value - optimum) / max(1.0, abs(optimum))
        out = {"loss": value, "gap": gap, "feasibility": self.feasibility(x)}
        out["grad_norm"] = grad_norm
        return out | {k: float(v) for k, v in self.extra_metrics(x).items()} if extra else out

    def __repr__(self) -> str:
        args = f"name={self.name!r}, n={self.n}, p={self.p}, group={self.group!r}"
        return f"{type(self).__name__}({args})"
