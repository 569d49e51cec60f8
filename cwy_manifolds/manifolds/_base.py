"""What every manifold of the package shares.

Note [sizes are matrix shapes]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
``random(*size)`` and ``origin(*size)`` take the shape ``(*, N, M)`` of the *matrix* a
point stands for, for every manifold of the package, so that swapping the manifold of a
parameter is a one-line change. For the Stiefel manifolds the point is that matrix; for
:class:`~cwy_manifolds.CWY` it is the ``(*, N, L)`` matrix of reflection vectors, whose
last dimension can differ from the size asked for.
"""

from __future__ import annotations

import abc

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


class MatrixManifold(Manifold, abc.ABC):
    """Base of the package's manifolds: each point stands for a matrix ``(*, N, M)``.

    Subclasses answer :meth:`matrix` (the orthogonal or Stiefel matrix of a point) and
    :meth:`from_matrix` (a point standing for a given matrix), and their ``random`` and
    ``origin`` take the matrix shape (Note [sizes are matrix shapes]).
    """

    ndim = 2

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
