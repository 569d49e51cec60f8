r"""What every manifold of the package shares.

Note [sizes are matrix shapes]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
``random(*size)`` and ``origin(*size)`` take the shape ``(*, N, M)`` of the *matrix* a
point stands for, for every manifold of the package, so that swapping the manifold of a
parameter is a one-line change. For the Stiefel manifolds the point is that matrix; for
:class:`~cwy_manifolds.CWY` it is the ``(*, N, L)`` matrix of reflection vectors, whose
last dimension can differ from the size asked for.

Note [components]
~~~~~~~~~~~~~~~~~
Every manifold of the package takes ``det`` with one meaning, for square shapes: +1 is
:math:`SO(N)`, -1 the orthogonal matrices with determinant -1, ``None`` both (only for
the retraction-based Stiefel manifolds, whose default it is: a fixed number of
reflections reaches one component, so CWY and T-CWY default to +1). ``random`` draws
from Haar measure on that set, ``origin`` stands for :math:`I` or
:math:`D = \operatorname{diag}(1, \dots, 1, -1)`, and ``from_matrix`` raises the same
ValueError (:func:`wrong_component`) for a matrix of the other component. Retractions
and steps are continuous, so no optimizer leaves the component it starts in. For thin
shapes (:math:`M < N`) ``det`` has no effect: :math:`\mathrm{St}(N, M)` is connected.
"""

from __future__ import annotations

import abc
import numbers

from geoopt import ManifoldTensor
from geoopt.manifolds.base import Manifold
from geoopt.utils import size2shape
from torch import Tensor


def matrix_shape(size: tuple, name: str, *, square: bool = False) -> tuple[int, ...]:
    """Parse ``*size`` as geoopt does and check it is a matrix shape ``(*, N, M)``."""
    shape = size2shape(*size)
    if len(shape) < 2 or any(not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(
            f"size must be a matrix shape (*, N, M) of non-negative integers for {name}; "
            f"got {shape}"
        )
    if shape[-1] > shape[-2]:
        raise ValueError(f"size must have M <= N for {name}; got {shape}")
    if square and shape[-1] != shape[-2]:
        raise ValueError(f"size must be a square shape (*, N, N) for {name}; got {shape}")
    return shape


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


class MatrixManifold(Manifold, abc.ABC):
    """Base of the package's manifolds: each point stands for a matrix ``(*, N, M)``.

    Subclasses answer :meth:`matrix` (the orthogonal or Stiefel matrix of a point) and
    :meth:`from_matrix` (a point standing for a given matrix), and their ``random`` and
    ``origin`` take the matrix shape (Note [sizes are matrix shapes]). ``det`` is the
    component of :math:`O(N)` for square shapes (Note [components]).
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

    def _point(self, x: Tensor) -> ManifoldTensor:
        return ManifoldTensor(x, manifold=self)
