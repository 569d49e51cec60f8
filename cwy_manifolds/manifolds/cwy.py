r"""CWY as a geoopt manifold: orthogonal matrices as products of reflections.

The geometry is flat, on the reflection vectors (``flat.py``: Notes [gauge], [step
scale], [scale invariance], [singular at the identity]).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from geoopt import ManifoldTensor
from torch import Tensor

from ..core import (
    check_orthonormal,
    column_norms,
    cwy,
    few_reflections,
    flip_last_column,
    haar_vectors,
    orthonormality_atol,
    reflection_vectors,
)
from ._base import Device, Generator, Shape, any_true, matrix_shape, wrong_component
from .flat import _FlatVectors
from .matrix_gradient import matrix_gradient, matrix_inner

__all__ = ["CWY"]

#: Values of the ``gradient`` option of :class:`CWY` (Note [matrix gradient]).
GRADIENTS = ("euclidean", "matrix")


class CWY(_FlatVectors):
    r"""Orthogonal matrices as products of Householder reflections, in compact WY form.

    A point is a matrix :math:`V` of :math:`L \le N` reflection vectors, shape
    ``(*, N, L)``; it stands for the orthogonal matrix

    .. math::

        Q(V) = H(v_1) \cdots H(v_L) \, D^{s}, \qquad
        D = \operatorname{diag}(1, \dots, 1, -1),

    where :math:`s = 1` when :math:`(-1)^L` differs from ``det`` and :math:`s = 0`
    otherwise (:meth:`flips`), so that :math:`\det Q = \det`. The product is formed by
    :func:`~cwy_manifolds.cwy` (see there for the compact WY formula and its cost).

    Parameters
    ----------
    det : {+1, -1}, default +1
        The connected component of :math:`O(N)`: +1 is :math:`SO(N)`, -1 the
        orthogonal matrices with determinant -1. A fixed number of reflections reaches
        one component only (Note [determinant parity] in ``householder.py``), so there
        is no ``det=None``; the fixed sign flip :math:`D` selects the other component.
    n_reflections : int, optional
        :math:`L`; default :math:`N`, taken from the shape. With :math:`L < N` the
        manifold stands for the strict subset of :math:`\{Q : \det Q = \det\}` whose
        elements are :math:`P D^s` with :math:`P` fixing (at least) an
        :math:`(N - L)`-dimensional subspace, at cost about :math:`2 N^2 L` flops
        instead of :math:`2 N^3`.
    gauge : {"auto", "unit", "free"}, default ``"auto"``
        How a step sets the column norms, on which no matrix depends (Note [gauge] in
        ``cwy_manifolds/manifolds/flat.py``). ``"unit"`` keeps unit columns, so the
        effective step never shrinks, with the step divided by :math:`c` so that a
        learning rate moves the matrix about as much as on the Stiefel manifolds (Note
        [step scale]); ``"free"`` is the plain :math:`V + U` of earlier releases, whose
        growing norms shrink the step; ``"auto"`` is ``"free"`` for the points of
        Adam-type optimizers and line searches (which ask for the metric) and
        ``"unit"`` otherwise.
    gradient : {"euclidean", "matrix"}, default ``"euclidean"``
        The step direction (Note [matrix gradient] in
        ``cwy_manifolds/manifolds/matrix_gradient.py``). ``"euclidean"``: the gradient on
        the vectors as it is. ``"matrix"``: the step on the vectors whose image is the
        Riemannian gradient of the matrix, so that each step moves the matrix as a
        retraction's would (``egrad2rgrad`` returns it, ``inner`` is the metric
        :math:`\langle J U, J W \rangle` the vectors inherit from the matrix, and the unit
        gauge takes the step without the scale :math:`c`). It costs an
        :math:`N \times N` eigendecomposition per step and pays where the map is
        ill-conditioned, as for square matrices: on the package's Procrustes benchmark over
        :math:`O(32)`, ``RiemannianSGD`` took the steps of a retraction with it and about
        three times as many without (user guide, "Optimizing with the vector
        parametrizations").

    Notes
    -----
    Geometry: flat, on the vectors (module ``cwy_manifolds.manifolds.flat``): ``retr``
    moves to :math:`V + U` (to :math:`V + U / c`, :math:`c = 16` for :math:`L = N`, with
    unit columns, in the unit gauge), gradients are Euclidean (or the matrix gradient),
    transport is the identity, ``component_inner`` is elementwise. ``dist`` and ``logmap`` act in
    parameter space. Keep weight decay off for :math:`V` (Note [scale invariance]).
    ``random`` and ``origin`` take the shape of the matrix, ``(*, N, N)``, or, with
    ``n_reflections`` :math:`= L < N`, the point shape ``(*, N, L)`` (Note [sizes are
    matrix shapes]: so geoopt's ``ProductManifold`` works). ``random`` draws the vectors
    of a Haar-distributed matrix directly (Note [Haar vectors], :math:`O(N^2)`) for
    :math:`L = N`. ``origin`` is a singular point of the parametrization (Note [singular
    at the identity]): start optimizations from ``random`` or ``from_matrix``.

    Examples
    --------
    >>> import geoopt, torch
    >>> from cwy_manifolds import CWY
    >>> manifold = CWY()
    >>> x = geoopt.ManifoldParameter(manifold.random(5, 5))
    >>> q = manifold.matrix(x)
    >>> bool(torch.linalg.det(q) > 0), torch.allclose(q.T @ q, torch.eye(5), atol=1e-5)
    (True, True)
    """

    name = "CWY"

    def __init__(
        self,
        *,
        det: int = 1,
        n_reflections: int | None = None,
        gauge: str = "auto",
        gradient: str = "euclidean",
    ) -> None:
        super().__init__(det=det, gauge=gauge)
        if gradient not in GRADIENTS:
            raise ValueError(
                f"gradient must be one of {', '.join(map(repr, GRADIENTS))}; got {gradient!r}"
            )
        self.gradient = gradient
        if n_reflections is not None and (
            isinstance(n_reflections, bool)
            or not isinstance(n_reflections, int)
            or n_reflections < 0
        ):
            raise ValueError(f"n_reflections must be a non-negative integer; got {n_reflections!r}")
        self.n_reflections = n_reflections

    def extra_repr(self) -> str:
        """Describe the options in the repr."""
        return (
            f"det={self.det:+d}, n_reflections={self.n_reflections}, gauge={self.gauge!r}, "
            f"gradient={self.gradient!r}"
        )

    @staticmethod
    @lru_cache(maxsize=64)
    def _gain(n: int, count: int) -> float:
        # per vector 8 (n - 1), over a set of dimension L (n - 1) - L (L - 1) / 2
        return 16 * (n - 1) / (2 * n - 1 - count) if 2 * n - 1 - count > 0 else 1.0

    def step_scale(self, x: Tensor) -> float:
        """:math:`c` of Note [step scale]; 1 for ``gradient="matrix"``, whose steps have gain 1."""
        return 1.0 if self.gradient == "matrix" else super().step_scale(x)

    def egrad2rgrad(self, x: Tensor, u: Tensor) -> Tensor:
        """Return ``u``, or for ``gradient="matrix"`` the step of Note [matrix gradient]."""
        return matrix_gradient(x, u) if self.gradient == "matrix" else u

    def inner(
        self, x: Tensor, u: Tensor, v: Tensor | None = None, *, keepdim: bool = False
    ) -> Tensor:
        r"""Frobenius inner product, or :math:`\langle J u, J v \rangle` for ``gradient="matrix"``.

        Like every inner product of the vectors, it marks ``x`` as a point of an
        optimizer that uses the metric (Note [gauge]).
        """
        if self.gradient != "matrix":
            return super().inner(x, u, v, keepdim=keepdim)
        self._meter(x)
        out = matrix_inner(x, u, u if v is None else v)
        return out[..., None, None] if keepdim else out

    def _check_shape(self, shape: tuple[int, ...], name: str) -> tuple[bool, str | None]:
        ok, reason = super()._check_shape(shape, name)
        if ok and self.n_reflections is not None and shape[-1] != self.n_reflections:
            ok = False
            reason = f"`{name}` must have {self.n_reflections} columns (n_reflections); got {shape}"
        return ok, reason

    def _count(self, n: int) -> int:
        count = n if self.n_reflections is None else self.n_reflections
        if count > n:
            raise ValueError(f"n_reflections must be at most N = {n}; got {count}")
        return count

    def flips(self, n_reflections: int) -> bool:
        r"""Whether the matrix of ``n_reflections`` vectors is multiplied by the flip :math:`D`.

        True when :math:`(-1)^L` differs from ``det`` (Note [determinant parity]).
        """
        return (-1) ** n_reflections != self.det

    def _matrix_to_point(self, shape: tuple[int, ...], what: str) -> tuple[int, ...]:
        shape = matrix_shape((shape,), "CWY", what=what)
        if shape[-1] != shape[-2]:
            points = (
                f", or the point shape (*, N, {self.n_reflections}) (n_reflections)"
                if self.n_reflections is not None
                else ""
            )
            raise ValueError(
                f"{what} must be a square shape (*, N, N) for CWY{points}; got {shape}"
            )
        return (*shape[:-1], self._count(shape[-1]))

    def _point_shape(self, shape: tuple[int, ...], what: str) -> tuple[int, ...]:
        count = self.n_reflections
        if len(shape) >= 2 and count is not None and shape[-1] == count < shape[-2]:
            return matrix_shape((shape,), "CWY", what=what)  # a point shape (Note)
        return self._matrix_to_point(shape, what)

    def _within_reach(self, q: Tensor) -> Tensor:
        n = q.shape[-1]
        count = self._count(n)
        if count == n:
            return q
        target = flip_last_column(q) if self.flips(count) else q
        v, _ = few_reflections(target, count, orthonormality_atol(n, q.dtype))
        return self.matrix(v)

    def matrix(self, x: Tensor) -> Tensor:
        """Return the orthogonal matrix :math:`Q(V)`, shape ``(*, N, N)``, differentiably."""
        q = cwy(x)
        return flip_last_column(q) if self.flips(x.shape[-1]) else q

    def from_matrix(self, m: Tensor, *, atol: float | None = None) -> ManifoldTensor:
        r"""Return unit vectors ``V`` with ``matrix(V) == m``.

        Parameters
        ----------
        m : Tensor, shape ``(*, N, N)``
            Orthogonal matrices with determinant ``det``.
        atol : float, optional
            Tolerance on :math:`\max |m^\top m - I|`, as in
            :func:`~cwy_manifolds.cwy_inverse`.

        Raises
        ------
        ValueError
            If ``m`` is not square and orthogonal, has the other determinant, or (for
            ``n_reflections < N``) is not reachable with that many reflections.
        """
        m = check_orthonormal(m, "m", atol)
        n = m.shape[-1]
        if m.shape[-2] != n:
            raise ValueError(f"m must be square (*, N, N) for CWY; got shape {tuple(m.shape)}")
        count = self._count(n)
        p = flip_last_column(m) if self.flips(count) else m
        if count == n:
            v, wrong_det = reflection_vectors(p)
            wrong = any_true(wrong_det)
        else:
            atol = orthonormality_atol(n, m.dtype) if atol is None else atol
            v, resid = few_reflections(p, count, atol)
            wrong_det = torch.linalg.slogdet(m.to(v.dtype)).sign * self.det < 0
            wrong = any_true(wrong_det)
            if not wrong and any_true(resid > atol):
                raise ValueError(
                    f"m must be reachable with n_reflections = {count}, that is fix a "
                    f"subspace of dimension N - L = {n - count} (after the sign flip, if "
                    f"any); got max |P - I| = {float(resid.max()):.2e} after {count} "
                    "reflections. Use more reflections (n_reflections=None)"
                )
        if wrong:
            raise wrong_component("CWY", self.det, wrong_det)
        return self._point(v.to(m.dtype))

    def _random(self, shape: Shape, dtype: torch.dtype, device: Device, gen: Generator) -> Tensor:
        if shape[-1] == shape[-2]:  # Note [Haar vectors]; the flip keeps Haar measure
            return haar_vectors(shape, dtype=dtype, device=device, generator=gen)
        v = torch.randn(shape, dtype=dtype, device=device, generator=gen)
        return v / column_norms(v)
