r"""What every manifold of the package shares.

Note [sizes are matrix shapes]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
``random(*size)`` and ``origin(*size)`` take the shape ``(*, N, M)`` of the *matrix* a
point stands for, for every manifold of the package, so that swapping the manifold of a
parameter is a one-line change. For the Stiefel manifolds and :class:`~cwy_manifolds.TCWY`
the point has that shape too; for :class:`~cwy_manifolds.CWY` the point is the
``(*, N, L)`` matrix of reflection vectors, whose last dimension differs from the size
asked for when :math:`L < N`. :meth:`MatrixManifold.point_shape` converts a matrix shape
into the shape of a point.

Code that knows only the shape of the points, such as geoopt's ``ProductManifold``
(which calls ``random(point_shape)`` and ``origin(point_shape)``), works too: a CWY
manifold with ``n_reflections = L < N`` also accepts the point shape ``(*, N, L)``, which
cannot be mistaken for a matrix shape (that one is square). So
``geoopt.ProductManifold((CWY(n_reflections=3), (10, 3)), (geoopt.Sphere(), 4))`` can be
sampled; with :math:`L = N` (the default) the two shapes are the same.

Note [components]
~~~~~~~~~~~~~~~~~
Every manifold of the package takes ``det`` with one meaning, for square shapes: +1 is
:math:`SO(N)`, -1 the orthogonal matrices with determinant -1, ``None`` both (only for
the retraction-based Stiefel manifolds, whose default it is: a fixed number of
reflections reaches one component, so CWY and T-CWY default to +1). ``random`` draws
from Haar measure on that set, ``origin`` stands for :math:`I` or
:math:`D = \operatorname{diag}(1, \dots, 1, -1)`, ``from_matrix`` raises the same
ValueError (:func:`wrong_component`) for a matrix of the other component, and
:meth:`MatrixManifold.nearest` fixes the determinant of its answer. Retractions and
steps are continuous, so no optimizer leaves the component it starts in. For thin shapes
(:math:`M < N`) ``det`` has no effect: :math:`\mathrm{St}(N, M)` is connected.
:meth:`MatrixManifold.det_of` states the rule for a shape.
"""

from __future__ import annotations

import abc
import numbers

import torch
from geoopt import ManifoldTensor
from geoopt.manifolds.base import Manifold
from geoopt.utils import size2shape
from torch import Tensor

from ..core import (
    all_true,
    check_tensor,
    flip_last_column,
    has_values,
    under_transforms,
    work_dtype,
)

#: Types of the arguments of ``random`` and ``origin`` as the subclasses receive them.
Shape = tuple[int, ...]
Device = torch.device | str | None
Generator = torch.Generator | None


def matrix_shape(size: tuple, name: str, *, what: str = "size") -> tuple[int, ...]:
    """Parse ``*size`` as geoopt does and check it is a matrix shape ``(*, N, M)``."""
    shape = size2shape(*size)
    if len(shape) < 2 or any(not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(
            f"{what} must be a matrix shape (*, N, M) of non-negative integers for {name}; "
            f"got {shape}"
        )
    if shape[-1] > shape[-2]:
        raise ValueError(f"{what} must have M <= N for {name}; got {shape}")
    return shape


def check_dtype(dtype: object) -> torch.dtype:
    """Return ``dtype`` (the default dtype for None) if it is a real floating dtype."""
    if dtype is None:
        return torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"dtype must be a real floating-point torch.dtype (the points are real "
            f"matrices); got {dtype}"
        )
    return dtype


def any_true(flag: Tensor) -> bool:
    """Whether a boolean tensor of checks has a true entry (False without values)."""
    return has_values(flag) and flag.numel() > 0 and not all_true(~flag)


def check_det(det: object, name: str, *, allow_none: bool) -> int | None:
    """Validate the ``det`` option (Note [components]): an integer +1 or -1, or None."""
    if det is None and allow_none:
        return None
    if isinstance(det, numbers.Integral) and not isinstance(det, bool) and int(det) in (1, -1):
        return int(det)
    kind = f" (an int is required, not {type(det).__name__})" if det in (1, -1) else ""
    if allow_none:
        raise ValueError(f"det must be +1 or -1, or None for both components; got {det!r}{kind}")
    if det is None:
        kind = (
            ": a fixed number of reflections reaches one component of O(N) only (Note "
            f"[determinant parity]), so {name} needs +1 or -1"
        )
    raise ValueError(f"det must be +1 or -1; got {det!r}{kind}")


def wrong_component(name: str, det: int, wrong: Tensor, hint: str = "") -> ValueError:
    """Return the error of ``from_matrix`` for the other component (Note [components]).

    ``wrong`` flags the offending matrices of the batch (a 0-d tensor for one matrix).
    """
    what = (
        "the matrix has"
        if wrong.ndim == 0
        else f"{int(wrong.sum())} of {wrong.numel()} matrices have"
    )
    return ValueError(
        f"m must have determinant {det:+d} for {name}(det={det:+d}); {what} determinant "
        f"{-det:+d}. Use {name}(det={-det:+d}) for that component{hint}"
    )


def check_finite(a: Tensor, name: str, purpose: str) -> None:
    """Raise ValueError naming ``name`` if ``a`` has NaN/Inf entries (one host read)."""
    if has_values(a) and a.numel() and not all_true(torch.isfinite(a)):
        count = int((~torch.isfinite(a)).sum())
        raise ValueError(
            f"{name} must have finite entries {purpose}; got {count} NaN/Inf entries in "
            f"shape {tuple(a.shape)}"
        )


def polar(a: Tensor) -> Tensor:
    r"""Return the polar factor :math:`P R^\top` of :math:`A = P \Sigma R^\top`, in the work dtype.

    The matrix with orthonormal columns nearest to ``a`` in Frobenius norm (one SVD).
    """
    p, _, rh = torch.linalg.svd(a.to(work_dtype(a.dtype)), full_matrices=False)
    return p @ rh


class MatrixManifold(Manifold, abc.ABC):
    """Base of the package's manifolds: each point stands for a matrix ``(*, N, M)``.

    Subclasses answer :meth:`matrix` (the orthogonal or Stiefel matrix of a point) and
    :meth:`from_matrix` (a point standing for a given matrix), and their ``random`` and
    ``origin`` take the matrix shape (Note [sizes are matrix shapes];
    :meth:`point_shape` gives the shape of the points). ``det`` is the component of
    :math:`O(N)` for square shapes (Note [components]); :meth:`det_of` states it for a
    shape and :meth:`nearest` projects any matrix onto what the manifold reaches.
    """

    ndim = 2
    det: int | None

    def _check_shape(self, shape: tuple[int, ...], name: str) -> tuple[bool, str | None]:
        ok, reason = super()._check_shape(shape, name)
        if ok and shape[-1] > shape[-2]:
            ok, reason = False, f"`{name}` must have shape (*, N, M) with M <= N; got {shape}"
        return ok, reason

    @abc.abstractmethod
    def matrix(self, x: Tensor) -> Tensor:
        """Return the matrix that the point ``x`` stands for, differentiably in ``x``."""

    @abc.abstractmethod
    def from_matrix(self, m: Tensor, *, atol: float | None = None) -> ManifoldTensor:
        """Return a point of this manifold that stands for the matrix ``m``."""

    def _matrix_to_point(self, shape: tuple[int, ...], what: str) -> tuple[int, ...]:
        """Return the point shape for the matrix shape ``shape``, checked; errors name ``what``."""
        return matrix_shape((shape,), self.name, what=what)

    def _point_shape(self, shape: tuple[int, ...], what: str) -> tuple[int, ...]:
        """As :meth:`_matrix_to_point`; CWY also accepts point shapes (Note)."""
        return self._matrix_to_point(shape, what)

    def point_shape(self, *size: int) -> tuple[int, ...]:
        """Return the shape of a point standing for matrices of shape ``size`` ``(*, N, M)``.

        The same shape for the Stiefel manifolds and :class:`~cwy_manifolds.TCWY`;
        ``(*, N, L)`` for :class:`~cwy_manifolds.CWY` with :math:`L` reflections (Note
        [sizes are matrix shapes]). Raises ValueError for shapes the manifold cannot
        stand for, as ``random`` does.

        Examples
        --------
        >>> from cwy_manifolds import CWY, TCWY
        >>> CWY(n_reflections=3).point_shape(2, 10, 10), TCWY().point_shape(10, 3)
        ((2, 10, 3), (10, 3))
        """
        return self._point_shape(size2shape(*size), "size")

    def det_of(self, n: int, m: int) -> int | None:
        """Return the determinant of the ``n x m`` matrices this manifold reaches.

        ``det`` for square non-empty shapes, None (no condition: either sign, or no
        determinant at all) otherwise (Note [components]).
        """
        return self.det if n == m and n > 0 else None

    def _within_reach(self, q: Tensor) -> Tensor:
        """Map an orthonormal ``q`` of the right component to a matrix the manifold reaches."""
        return q

    def nearest(self, m: Tensor, *, name: str = "m") -> Tensor:
        r"""Return the matrix this manifold reaches that is closest to ``m`` ``(*, N, M)``.

        With the SVD :math:`m = P \Sigma R^\top`: the polar factor :math:`P R^\top`, the
        nearest matrix with orthonormal columns in Frobenius norm; for a square shape and
        ``det`` set, :math:`P D R^\top` where :math:`\det(P R^\top)` has the other sign
        (the last singular direction, of the smallest singular value, reversed), the
        nearest matrix of that component. For :class:`~cwy_manifolds.CWY` with
        :math:`L < N` reflections, the greedy Cartan-Dieudonne construction of
        :func:`~cwy_manifolds.core.few_reflections` (Note [fewer reflections]) applied to
        that: a close matrix of the subset, not always the nearest one. Detached, in the
        dtype of ``m`` (computed in float32 or wider), contiguous; ``from_matrix`` of the
        result succeeds. Cost: one SVD, :math:`O(N M^2)`.

        Parameters
        ----------
        m : Tensor, shape ``(*, N, M)``
            Any real matrices, :math:`M \le N` (square for ``CWY``).
        name : str, default ``"m"``
            The name of the argument in error messages.

        Raises
        ------
        TypeError
            If ``m`` is not a real floating-point tensor.
        ValueError
            If ``m`` has NaN/Inf entries or a shape the manifold cannot stand for.

        Examples
        --------
        >>> import torch
        >>> from cwy_manifolds import CWY, QRStiefel
        >>> q = CWY(det=-1).nearest(torch.randn(4, 4))
        >>> round(float(torch.linalg.det(q)))
        -1
        >>> w = QRStiefel().nearest(torch.randn(6, 2, dtype=torch.float64))
        >>> torch.allclose(w.T @ w, torch.eye(2, dtype=torch.float64))
        True
        """
        m = check_tensor(m, name).detach()
        self._matrix_to_point(tuple(m.shape), name)
        if not has_values(m) or m.numel() == 0:
            return torch.empty_like(m, memory_format=torch.contiguous_format)
        check_finite(m, name, "to be made orthogonal")
        n, k = m.shape[-2:]
        p, _, rh = torch.linalg.svd(m.to(work_dtype(m.dtype)), full_matrices=False)
        det = self.det_of(n, k)
        if det is not None:
            # singular values descend: reverse the last direction; slogdet, as det overflows
            wrong = (torch.linalg.slogdet(p @ rh).sign * det < 0)[..., None, None]
            p = torch.where(wrong, flip_last_column(p), p)
        return self._within_reach(p @ rh).to(m.dtype).contiguous()

    @abc.abstractmethod
    def _random(self, shape: Shape, dtype: torch.dtype, device: Device, gen: Generator) -> Tensor:
        """Draw the entries of a random point of shape ``shape`` (checked)."""

    @abc.abstractmethod
    def _origin(self, shape: Shape, dtype: torch.dtype, device: Device) -> Tensor:
        """Return the entries of the origin point of shape ``shape`` (checked)."""

    def random(
        self,
        *size: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> ManifoldTensor:
        r"""Return a random point; ``size`` is the matrix shape ``(*, N, M)``, :math:`M \le N`.

        The matrix is Haar-distributed on :math:`\mathrm{St}(N, M)`, for square shapes on
        the component ``det`` (on all of :math:`O(N)` for ``det=None``); for
        :class:`~cwy_manifolds.CWY` with :math:`L < N` reflections, which has no Haar
        measure, the vectors are Gaussian directions. Contiguous; the flat manifolds'
        points have unit columns. See Note [sizes are matrix shapes] for ``size``.

        Raises
        ------
        TypeError
            If ``dtype`` is not a real floating-point dtype.
        ValueError
            If ``size`` is not a shape the manifold stands for.
        """
        shape = self._point_shape(size2shape(*size), "size")
        return self._point(self._random(shape, check_dtype(dtype), device, generator))

    def origin(
        self,
        *size: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        seed: int | None = 42,
    ) -> ManifoldTensor:
        r"""Return a point standing for :math:`[I; 0]`; ``size`` as for :meth:`random`.

        For square shapes and ``det = -1``, for :math:`D = \operatorname{diag}(1, \dots, 1,
        -1)`. ``seed`` is ignored (geoopt passes it). For CWY and T-CWY a singular point
        of the map (Note [singular at the identity]): start optimizations elsewhere.
        """
        shape = self._point_shape(size2shape(*size), "size")
        return self._point(self._origin(shape, check_dtype(dtype), device))

    def _point(self, x: Tensor) -> ManifoldTensor:
        """``x`` as a contiguous point; a plain tensor under :mod:`torch.func` transforms.

        (geoopt's ``ManifoldTensor`` reads ``.data``, which transforms forbid.)
        """
        x = x.contiguous()
        return x if under_transforms(x) else ManifoldTensor(x, manifold=self)
