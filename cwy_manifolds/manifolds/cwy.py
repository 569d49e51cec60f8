r"""CWY and T-CWY as geoopt manifolds: flat geometry on the reflection vectors.

A point is the matrix :math:`V` of reflection vectors; the orthogonal or Stiefel matrix
it stands for is ``matrix(V)``. The vectors are unconstrained, so the geometry is the
Euclidean one of :math:`\mathbb{R}^{N \times L}`: the retraction is :math:`V + U`, the
Riemannian gradient is the Euclidean gradient, transport is the identity and
``component_inner`` is elementwise, so that geoopt's ``RiemannianAdam`` takes exactly the
steps of ``torch.optim.Adam``. No retraction, projection or re-orthogonalisation is
needed: the matrix is recomputed from :math:`V` and cannot drift off the manifold.

Note [scale invariance]
~~~~~~~~~~~~~~~~~~~~~~~
The matrix depends on each column of :math:`V` only through its direction, so the
Euclidean gradient is orthogonal to each column. Plain gradient steps therefore never
shrink a column's norm, the effective step on a direction is about
:math:`\mathrm{lr} / \|v_i\|^2`, and weight decay on :math:`V` only shrinks the norms
(which raises the effective step): keep weight decay off for these parameters. Points
made by ``random``, ``origin`` and ``from_matrix`` have unit columns.

Note [singular at the identity]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
The map :math:`V \mapsto Q` loses rank where :math:`Q` is the identity (for CWY) or
:math:`[I; 0]` (for T-CWY): vectors whose reflections multiply to the identity span at
most half the space, and the derivative then reaches only part of the tangent space
(rank :math:`N - 1` instead of :math:`N (N - 1) / 2` for the vectors ``origin`` uses).
``origin`` is such a point. Start an optimization from ``random`` or from
``from_matrix`` of a generic matrix instead, where the map has full rank.
"""

from __future__ import annotations

import torch
from geoopt import ManifoldTensor
from torch import Tensor

from ..core import (
    check_orthonormal,
    cwy,
    few_reflections,
    flip_last_column,
    haar,
    orthonormality_atol,
    reflection_vectors,
    tcwy,
)
from ._base import MatrixManifold, matrix_shape

__all__ = ["CWY", "TCWY"]


class _FlatVectors(MatrixManifold):
    """Euclidean geometry on reflection vectors ``V`` (Note [scale invariance])."""

    reversible = True

    def _check_point_on_manifold(
        self, x: Tensor, *, atol: float = 1e-5, rtol: float = 1e-5
    ) -> tuple[bool, str | None]:
        if not bool(torch.isfinite(x).all()):
            return False, "V has NaN/Inf entries"
        zero = int((x.abs().amax(dim=-2) == 0).sum()) if x.shape[-2] else x.shape[-1]
        if zero:
            return False, f"V has {zero} zero column(s): a zero vector defines no reflection"
        return True, None

    def _check_vector_on_tangent(
        self, x: Tensor, u: Tensor, *, atol: float = 1e-5, rtol: float = 1e-5
    ) -> tuple[bool, str | None]:
        if not bool(torch.isfinite(u).all()):
            return False, "u has NaN/Inf entries"
        return True, None

    def retr(self, x: Tensor, u: Tensor) -> Tensor:
        """Return ``x + u``: the vectors are unconstrained, no retraction is needed."""
        return x + u

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        """Return ``x + u``, the exponential map of the flat metric on the vectors."""
        return x + u

    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        """Return ``y - x``, in parameter space (not a logarithm on the matrix manifold)."""
        return y - x

    def dist(self, x: Tensor, y: Tensor, *, keepdim: bool = False) -> Tensor:
        """Frobenius distance of the vectors, in parameter space (not between matrices)."""
        return torch.linalg.matrix_norm(x - y, keepdim=keepdim)

    def inner(
        self, x: Tensor, u: Tensor, v: Tensor | None = None, *, keepdim: bool = False
    ) -> Tensor:
        """Frobenius inner product of ``u`` and ``v`` (``v = u`` when omitted)."""
        v = u if v is None else v
        return (u * v).sum(dim=(-2, -1), keepdim=keepdim)

    def component_inner(self, x: Tensor, u: Tensor, v: Tensor | None = None) -> Tensor:
        """Elementwise ``u * v``, so ``RiemannianAdam`` equals ``torch.optim.Adam`` here."""
        v = u if v is None else v
        return (u * v).expand(torch.broadcast_shapes(x.shape, u.shape, v.shape))

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        """Return ``u``: every vector is tangent."""
        return u

    def egrad2rgrad(self, x: Tensor, u: Tensor) -> Tensor:
        """Return ``u``: the Riemannian gradient is the Euclidean gradient."""
        return u

    def projx(self, x: Tensor) -> Tensor:
        """Return ``x``: every point with non-zero columns is valid (and keeps its matrix)."""
        return x

    def transp(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """Return ``v``: transport is the identity in a flat space."""
        return v

    def _last_units(
        self, shape: tuple[int, ...], dtype: torch.dtype | None, device: torch.device | str | None
    ) -> ManifoldTensor:
        """Vectors all equal to :math:`e_N` (the ``origin`` of both manifolds)."""
        v = torch.zeros(shape, dtype=dtype, device=device)
        v[..., -1, :] = 1
        return self._point(v)


class CWY(_FlatVectors):
    r"""Orthogonal matrices as products of Householder reflections, in compact WY form.

    A point is a matrix :math:`V` of :math:`L \le N` reflection vectors, shape
    ``(*, N, L)``; it stands for the orthogonal matrix

    .. math::

        Q(V) = H(v_1) \cdots H(v_L) \, D^{s}, \qquad
        D = \operatorname{diag}(1, \dots, 1, -1),

    where :math:`s = 1` when :math:`(-1)^L` differs from ``det`` and :math:`s = 0`
    otherwise, so that :math:`\det Q = \det`. The product is formed by
    :func:`~cwy_manifolds.cwy` (see there for the compact WY formula and its cost).

    Parameters
    ----------
    det : {+1, -1}, default +1
        The connected component of :math:`O(N)`: +1 is :math:`SO(N)`, -1 the
        orthogonal matrices with determinant -1. A fixed number of reflections reaches
        one component only (Note [determinant parity] in ``householder.py``); the fixed
        sign flip :math:`D` selects the other.
    n_reflections : int, optional
        :math:`L`; default :math:`N`, taken from the shape. With :math:`L < N` the
        manifold stands for the strict subset of :math:`\{Q : \det Q = \det\}` whose
        elements are :math:`P D^s` with :math:`P` fixing (at least) an
        :math:`(N - L)`-dimensional subspace, at cost about :math:`2 N^2 L` flops
        instead of :math:`2 N^3`.

    Notes
    -----
    Geometry: flat, on the vectors (module ``cwy_manifolds.manifolds.cwy``): ``retr``
    is :math:`V + U`, gradients are Euclidean, transport is the identity,
    ``component_inner`` is elementwise. ``dist`` and ``logmap`` act in parameter space.
    Keep weight decay off for :math:`V` (Note [scale invariance]). ``random`` and
    ``origin`` take the shape of the matrix, ``(*, N, N)`` (Note [sizes are matrix
    shapes]); ``origin`` is a singular point of the parametrization (Note [singular at
    the identity]): start optimizations from ``random`` or ``from_matrix``.

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

    def __init__(self, *, det: int = 1, n_reflections: int | None = None) -> None:
        super().__init__()
        if det not in (1, -1):
            raise ValueError(f"det must be +1 or -1; got {det!r}")
        if n_reflections is not None and (
            isinstance(n_reflections, bool)
            or not isinstance(n_reflections, int)
            or n_reflections < 0
        ):
            raise ValueError(f"n_reflections must be a non-negative integer; got {n_reflections!r}")
        self.det = det
        self.n_reflections = n_reflections

    def extra_repr(self) -> str:
        """Describe the options in the repr."""
        return f"det={self.det:+d}, n_reflections={self.n_reflections}"

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

    def _flips(self, count: int) -> bool:
        return (-1) ** count != self.det

    def matrix(self, x: Tensor) -> Tensor:
        """Return the orthogonal matrix :math:`Q(V)`, shape ``(*, N, N)``, differentiably."""
        q = cwy(x)
        return flip_last_column(q) if self._flips(x.shape[-1]) else q

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
        p = flip_last_column(m) if self._flips(count) else m
        if count == n:
            v, wrong_det = reflection_vectors(p)
        else:
            atol = orthonormality_atol(n, m.dtype) if atol is None else atol
            v, resid = few_reflections(p, count, atol)
            wrong_det = torch.linalg.slogdet(m.to(v.dtype)).sign * self.det < 0
            if not bool(wrong_det.any()) and bool((resid > atol).any()):
                raise ValueError(
                    f"m must be reachable with n_reflections = {count}, that is fix a "
                    f"subspace of dimension N - L = {n - count} (after the sign flip, if "
                    f"any); got max |P - I| = {float(resid.max()):.2e} after {count} "
                    "reflections. Use more reflections (n_reflections=None)"
                )
        if bool(wrong_det.any()):
            count_text = f"{int(wrong_det.sum())} of {wrong_det.numel()} matrices have"
            raise ValueError(
                f"m must have determinant {self.det:+d} for CWY(det={self.det:+d}); "
                f"{count_text if wrong_det.ndim else 'the matrix has'} determinant "
                f"{-self.det:+d}. Use CWY(det={-self.det:+d}) for that component"
            )
        return self._point(v.to(m.dtype))

    def random(
        self,
        *size: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> ManifoldTensor:
        """Return a random point; ``size`` is the matrix shape ``(*, N, N)``.

        With ``L = N`` the matrix is Haar-distributed on the component ``det`` (the sign
        fixed Q factor of a Gaussian matrix, its last column flipped where needed); with
        ``L < N`` (no Haar measure on that subset) the vectors are Gaussian.
        """
        shape = matrix_shape(size, "CWY", square=True)
        count = self._count(shape[-1])
        if count < shape[-1]:
            v = torch.randn(*shape[:-1], count, dtype=dtype, device=device, generator=generator)
            return self._point(v)
        q = haar(shape, det=self.det, dtype=dtype, device=device, generator=generator)
        return self.from_matrix(q)

    def origin(
        self,
        *size: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        seed: int | None = 42,
    ) -> ManifoldTensor:
        """Return a point standing for the identity (``det = -1``: for :math:`D`).

        ``size`` is the matrix shape ``(*, N, N)``; ``seed`` is ignored. Every vector is
        :math:`e_N`: a singular point of the map (Note [singular at the identity]).
        """
        shape = matrix_shape(size, "CWY", square=True)
        return self._last_units((*shape[:-1], self._count(shape[-1])), dtype, device)


class TCWY(_FlatVectors):
    r"""Stiefel matrices from reflection vectors: the truncated CWY parametrization.

    A point is a matrix :math:`V` of :math:`M \le N` reflection vectors, shape
    ``(*, N, M)``; it stands for the matrix with orthonormal columns

    .. math::

        \Omega(V) = H(v_1) \cdots H(v_M) \begin{bmatrix} I_M \\ 0 \end{bmatrix}
        = \begin{bmatrix} I_M \\ 0 \end{bmatrix} - U S^{-1} U_1^\top,

    formed by :func:`~cwy_manifolds.tcwy` in about :math:`3 N M^2` flops, never forming
    an :math:`N \times N` matrix. For :math:`M < N` every point of
    :math:`\mathrm{St}(N, M)` is reached; for :math:`M = N` only the component with
    determinant :math:`(-1)^N` (use :class:`CWY` to choose the component).

    Notes
    -----
    Geometry: flat, on the vectors, as for :class:`CWY`; ``dist`` and ``logmap`` act in
    parameter space. Keep weight decay off for :math:`V` (Note [scale invariance]).
    ``origin`` is a singular point of the map (Note [singular at the identity]).

    Examples
    --------
    >>> import geoopt, torch
    >>> from cwy_manifolds import TCWY
    >>> manifold = TCWY()
    >>> x = geoopt.ManifoldParameter(manifold.random(6, 2))
    >>> w = manifold.matrix(x)
    >>> w.shape, torch.allclose(w.T @ w, torch.eye(2), atol=1e-5)
    (torch.Size([6, 2]), True)
    """

    name = "TCWY"

    def matrix(self, x: Tensor) -> Tensor:
        r"""Return the Stiefel matrix :math:`\Omega(V)`, shape ``(*, N, M)``, differentiably."""
        return tcwy(x)

    def from_matrix(self, m: Tensor, *, atol: float | None = None) -> ManifoldTensor:
        """Return unit vectors ``V`` with ``matrix(V) == m`` (:func:`~cwy_manifolds.tcwy_inverse`).

        Raises
        ------
        ValueError
            If ``m`` does not have orthonormal columns within ``atol``, or is square with
            determinant :math:`-(-1)^N`.
        """
        m = check_orthonormal(m, "m", atol)
        v, wrong_det = reflection_vectors(m)
        if bool(wrong_det.any()):
            n = m.shape[-1]
            raise ValueError(
                f"m must have determinant (-1)^N = {(-1) ** n:+d} for TCWY with M = N = {n}; "
                f"got {int(wrong_det.sum())} of {wrong_det.numel() or 1} with the other sign. "
                "Use CWY(det=...) to choose the component of a square matrix"
            )
        return self._point(v.to(m.dtype))

    def random(
        self,
        *size: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> ManifoldTensor:
        """Return a point whose matrix is Haar-distributed on St(N, M); ``size`` is ``(*, N, M)``.

        For ``M = N`` the matrix is Haar on the component with determinant
        :math:`(-1)^N`.
        """
        shape = matrix_shape(size, "TCWY")
        det = (-1) ** shape[-1]  # only used when square
        return self.from_matrix(
            haar(shape, det=det, dtype=dtype, device=device, generator=generator)
        )

    def origin(
        self,
        *size: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        seed: int | None = 42,
    ) -> ManifoldTensor:
        r"""Return a point standing for :math:`[I; 0]`; ``size`` is ``(*, N, M)``.

        For ``M = N`` odd it stands for :math:`D = \operatorname{diag}(1, \dots, 1, -1)`
        (the identity has the other determinant). ``seed`` is ignored. A singular point
        of the map (Note [singular at the identity]).
        """
        return self._last_units(matrix_shape(size, "TCWY"), dtype, device)
