r"""CWY and T-CWY as geoopt manifolds: flat geometry on the reflection vectors.

A point is the matrix :math:`V` of reflection vectors; the orthogonal or Stiefel matrix
it stands for is ``matrix(V)``. The vectors are unconstrained, so the geometry is the
Euclidean one of :math:`\mathbb{R}^{N \times L}`: identity ``egrad2rgrad``, ``proju``
and transport, the Frobenius inner product, an elementwise ``component_inner``, and a
step :math:`V + U` that, by default, is scaled and keeps the column norms at one (Notes
[gauge] and [step scale]). No retraction, projection or re-orthogonalisation of the
matrix is needed: the matrix is recomputed from :math:`V` and cannot drift off the
manifold.

Note [scale invariance]
~~~~~~~~~~~~~~~~~~~~~~~
The matrix depends on each column of :math:`V` only through its direction, so the
Euclidean gradient is orthogonal to each column. A plain step :math:`V + U` along it
therefore never shrinks a column and grows it by Pythagoras, the effective step on a
direction is about :math:`\mathrm{lr} / \|v_i\|^2` (:math:`\mathrm{lr} / \|v_i\|` for
Adam, whose steps do not scale with the gradient), and weight decay on :math:`V` only
shrinks the norms (which raises the effective step): keep weight decay off for these
parameters. Points made by ``random``, ``origin`` and ``from_matrix`` have unit columns.

Note [gauge]
~~~~~~~~~~~~
Rescaling a column changes no matrix, so a step may set the norms freely: that choice
is the gauge.

``gauge="unit"``: ``retr(x, u)`` steps to :math:`V + U / c` and divides each column by
its norm. The matrix is exactly that of :math:`V + U / c` (still no retraction of the
matrix), and every step starts from unit columns, so the effective step is the same at
step 1 and at step :math:`10^5`; :math:`c` makes one learning rate move the matrix as
much as on the Stiefel manifolds (Note [step scale]). The optimizer state needs no
rescaling: every gradient is taken at unit columns, so momentum stays in the same units,
and transport is the identity (projecting the momentum onto the tangent spaces of the
columns' spheres measured slower).

``gauge="free"``: the plain step :math:`V + U`, the geometry of earlier releases, bit for
bit; the norms grow (Note [scale invariance]).

``gauge="auto"``, the default: ``"free"`` for the points of Adam-type optimizers,
``"unit"`` for all others. Adam's steps do not scale with the gradient, so there the
growing norms act as a learning-rate decay, which reached tight tolerances as fast or
faster on the benchmark suite (``scripts/steps_bench.py``, figures in the user guide);
for SGD, with or without momentum, they only shrink the step. A point counts as Adam's
once ``component_inner`` has been asked for it (geoopt's ``RiemannianAdam`` asks for
its second moment before its first step, SGD never does): the manifold remembers such
points by weak reference, so that the decision takes no optimizer hook and is right from
the first step. Every gauge has the same gradient, inner product and
``component_inner``, so geoopt's ``RiemannianAdam`` takes exactly the steps of
``torch.optim.Adam`` in the default gauge.

Note [step scale]
~~~~~~~~~~~~~~~~~
The map :math:`V \mapsto` matrix scales steps: a step :math:`U` orthogonal to unit
columns moves a CWY matrix by :math:`2\sqrt{2}\,\|U\|_F` on average, and SGD moves the
matrix by :math:`J J^\top` times the matrix gradient, :math:`J` the Jacobian. So that
one learning rate moves the matrix about as much as on the Stiefel manifolds (whose
retractions are first-order: gain 1), the unit gauge divides the step by :math:`c`, the
mean squared singular value of :math:`J` at Haar points with unit columns,
:math:`\|J\|_F^2 / \operatorname{rank} J`:

.. math::

    c_{\mathrm{CWY}} = \frac{16 (N - 1)}{2N - 1 - L}, \qquad
    c_{\mathrm{T\text{-}CWY}} = \frac{4 \bigl((N - 2)(N + M) + 2 N M\bigr)}{N (2N - M - 1)}.

That is 16 for square matrices, tending to 2 for thin T-CWY frames: a vector moves the
matrix by :math:`4 ((N - 2) a_i + M) / (N - 1)` per unit step, squared, with
:math:`a_i = \|Y_i^\top u_i\|^2` (:math:`Y_i` the first :math:`M` columns of the
reflections after it) equal to 1 for CWY and about :math:`(1 + M/N)/2` for T-CWY, over
a set of dimension :math:`\operatorname{rank} J`. (Equivalently: SGD with the metric
:math:`c \langle U, W \rangle`.) ``step_scale(x)`` returns :math:`c`; the free gauge
takes the step :math:`U` as it is.

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

import weakref
from functools import lru_cache

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
from ._base import MatrixManifold, check_det, matrix_shape, wrong_component

__all__ = ["CWY", "TCWY"]

#: Values of the ``gauge`` option (Note [gauge]).
GAUGES = ("auto", "unit", "free")


class _FlatVectors(MatrixManifold):
    """Flat geometry on reflection vectors ``V`` (Notes [gauge] and [step scale])."""

    def __init__(self, *, det: int, gauge: str) -> None:
        super().__init__()
        self.det = check_det(det, type(self).__name__, allow_none=False)
        if gauge not in GAUGES:
            raise ValueError(f"gauge must be one of {', '.join(map(repr, GAUGES))}; got {gauge!r}")
        self.gauge = gauge
        self.reversible = gauge == "free"  # normalising is not undone by -u
        # points seen by component_inner, by id: Adam's, which take free steps in "auto"
        self._adaptive: weakref.WeakValueDictionary[int, Tensor] = weakref.WeakValueDictionary()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_adaptive"] = None  # weak references neither pickle nor copy
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._adaptive = weakref.WeakValueDictionary()

    @staticmethod
    def _gain(n: int, count: int) -> float:
        """:math:`c` of Note [step scale] for ``count`` vectors of length ``n``."""
        raise NotImplementedError

    def step_scale(self, x: Tensor) -> float:
        """:math:`c` of Note [step scale] for points shaped like ``x`` (1 if ``N <= 1``)."""
        return self._gain(x.shape[-2], x.shape[-1])

    def _free(self, x: Tensor) -> bool:
        """Whether ``x`` takes free steps (Note [gauge])."""
        return self.gauge == "free" or (self.gauge == "auto" and self._adaptive.get(id(x)) is x)

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
        """Step to ``x + u`` (free gauge) or to ``x + u / c`` with unit columns (Note [gauge]).

        The matrix is that of the step in every gauge: no retraction of the matrix.
        """
        if self._free(x):
            return x + u
        y = x + u / self.step_scale(x)
        return y.div_(torch.linalg.vector_norm(y, dim=-2, keepdim=True))  # y is new: in place

    def retr_transp(self, x: Tensor, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(retr(x, u), v)``: transport is the identity (Note [gauge])."""
        return self.retr(x, u), v

    def transp_follow_retr(self, x: Tensor, u: Tensor, v: Tensor) -> Tensor:
        """Return ``v``: transport is the identity."""
        return v

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
        """Elementwise ``u * v``, so ``RiemannianAdam`` equals ``torch.optim.Adam`` here.

        In the ``"auto"`` gauge it also marks ``x`` as a point of an Adam-type optimizer,
        whose steps stay free (Note [gauge]).
        """
        if self.gauge == "auto":
            self._adaptive[id(x)] = x
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
        ``cwy_manifolds/manifolds/cwy.py``). ``"unit"`` keeps unit columns, so the
        effective step never shrinks, with the step divided by :math:`c` so that a
        learning rate moves the matrix about as much as on the Stiefel manifolds (Note
        [step scale]); ``"free"`` is the plain :math:`V + U` of earlier releases, whose
        growing norms shrink the step; ``"auto"`` is ``"free"`` for the points of
        Adam-type optimizers (measured faster there) and ``"unit"`` otherwise.

    Notes
    -----
    Geometry: flat, on the vectors (module ``cwy_manifolds.manifolds.cwy``): ``retr``
    moves to :math:`V + U` (to :math:`V + U / c`, :math:`c = 16` for :math:`L = N`, with
    unit columns, in the unit gauge), gradients are Euclidean, transport is the
    identity, ``component_inner`` is elementwise. ``dist`` and ``logmap`` act in
    parameter space. Keep weight decay off for :math:`V` (Note
    [scale invariance]). ``random`` and ``origin`` take the shape of the matrix,
    ``(*, N, N)`` (Note [sizes are matrix shapes]); ``origin`` is a singular point of the
    parametrization (Note [singular at the identity]): start optimizations from
    ``random`` or ``from_matrix``.

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
    ) -> None:
        super().__init__(det=det, gauge=gauge)
        if n_reflections is not None and (
            isinstance(n_reflections, bool)
            or not isinstance(n_reflections, int)
            or n_reflections < 0
        ):
            raise ValueError(f"n_reflections must be a non-negative integer; got {n_reflections!r}")
        self.n_reflections = n_reflections

    def extra_repr(self) -> str:
        """Describe the options in the repr."""
        return f"det={self.det:+d}, n_reflections={self.n_reflections}, gauge={self.gauge!r}"

    @staticmethod
    @lru_cache(maxsize=64)
    def _gain(n: int, count: int) -> float:
        # per vector 8 (n - 1), over a set of dimension L (n - 1) - L (L - 1) / 2
        return 16 * (n - 1) / (2 * n - 1 - count) if 2 * n - 1 - count > 0 else 1.0

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
            raise wrong_component("CWY", self.det, wrong_det)
        return self._point(v.to(m.dtype))

    def random(
        self,
        *size: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> ManifoldTensor:
        """Return a random point with unit columns; ``size`` is the matrix shape ``(*, N, N)``.

        With ``L = N`` the matrix is Haar-distributed on the component ``det`` (the sign
        fixed Q factor of a Gaussian matrix, its last column flipped where needed); with
        ``L < N`` (no Haar measure on that subset) the vectors are Gaussian directions.
        """
        shape = matrix_shape(size, "CWY", square=True)
        count = self._count(shape[-1])
        if count < shape[-1]:
            v = torch.randn(*shape[:-1], count, dtype=dtype, device=device, generator=generator)
            return self._point(v / torch.linalg.vector_norm(v, dim=-2, keepdim=True))
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
    :math:`\mathrm{St}(N, M)` is reached. For :math:`M = N` the rule of :class:`CWY`
    applies: the matrix is :math:`\Omega(V) D^s`, with the sign flip :math:`D` when
    :math:`(-1)^N` differs from ``det``.

    Parameters
    ----------
    det : {+1, -1}, default +1
        For square shapes only (ignored for :math:`M < N`): the component of
        :math:`O(N)`, as for :class:`CWY`.
    gauge : {"auto", "unit", "free"}, default ``"auto"``
        How a step sets the column norms, as for :class:`CWY` (Note [gauge]). The unit
        gauge divides the step by about 2 for thin frames, up to 16 for square ones
        (Note [step scale]).

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

    def __init__(self, *, det: int = 1, gauge: str = "auto") -> None:
        super().__init__(det=det, gauge=gauge)

    def extra_repr(self) -> str:
        """Describe the options in the repr."""
        return f"det={self.det:+d}, gauge={self.gauge!r}"

    @staticmethod
    @lru_cache(maxsize=64)
    def _gain(n: int, count: int) -> float:
        denominator = n * (2 * n - count - 1)
        return 4 * ((n - 2) * (n + count) + 2 * n * count) / denominator if denominator else 1.0

    def _flips(self, shape: tuple[int, ...]) -> bool:
        n, m = shape[-2:]
        return n == m and (-1) ** n != self.det

    def matrix(self, x: Tensor) -> Tensor:
        r"""Return the Stiefel matrix :math:`\Omega(V)`, shape ``(*, N, M)``, differentiably."""
        w = tcwy(x)
        return flip_last_column(w) if self._flips(x.shape) else w

    def from_matrix(self, m: Tensor, *, atol: float | None = None) -> ManifoldTensor:
        """Return unit vectors ``V`` with ``matrix(V) == m`` (:func:`~cwy_manifolds.tcwy_inverse`).

        Raises
        ------
        ValueError
            If ``m`` does not have orthonormal columns within ``atol``, or is square with
            determinant ``-det``.
        """
        m = check_orthonormal(m, "m", atol)
        v, wrong_det = reflection_vectors(flip_last_column(m) if self._flips(m.shape) else m)
        if bool(wrong_det.any()):
            raise wrong_component("TCWY", self.det, wrong_det)
        return self._point(v.to(m.dtype))

    def random(
        self,
        *size: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> ManifoldTensor:
        """Return a point whose matrix is Haar-distributed on St(N, M); ``size`` is ``(*, N, M)``.

        For ``M = N``, Haar on the component ``det``.
        """
        shape = matrix_shape(size, "TCWY")
        q = haar(shape, det=self.det, dtype=dtype, device=device, generator=generator)
        return self.from_matrix(q)

    def origin(
        self,
        *size: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        seed: int | None = 42,
    ) -> ManifoldTensor:
        r"""Return a point standing for :math:`[I; 0]`; ``size`` is ``(*, N, M)``.

        For ``M = N`` and ``det = -1`` it stands for
        :math:`D = \operatorname{diag}(1, \dots, 1, -1)`. ``seed`` is ignored. A singular
        point of the map (Note [singular at the identity]).
        """
        return self._last_units(matrix_shape(size, "TCWY"), dtype, device)
