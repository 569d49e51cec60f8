r"""T-CWY as a geoopt manifold: Stiefel matrices from reflection vectors.

The geometry is flat, on the reflection vectors, as for CWY (``flat.py``).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from geoopt import ManifoldTensor
from torch import Tensor

from ..core import check_orthonormal, flip_last_column, haar_vectors, reflection_vectors, tcwy
from ._base import Device, Generator, Shape, any_true, wrong_component
from .flat import _FlatVectors

__all__ = ["TCWY"]


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
    ``random`` draws the vectors of a Haar-distributed matrix directly (Note [Haar
    vectors], :math:`O(N M)`). ``origin`` is a singular point of the map (Note
    [singular at the identity]).

    Examples
    --------
    A thin frame, and a square matrix of determinant -1 through the sign flip:

    >>> import torch
    >>> from cwy_manifolds import TCWY
    >>> w = TCWY().matrix(TCWY().random(6, 2))
    >>> w.shape, torch.allclose(w.T @ w, torch.eye(2), atol=1e-5)
    (torch.Size([6, 2]), True)
    >>> round(float(torch.linalg.det(TCWY(det=-1).matrix(TCWY(det=-1).random(4, 4)))))
    -1
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
        if any_true(wrong_det):
            raise wrong_component("TCWY", self.det, wrong_det)
        return self._point(v.to(m.dtype))

    def _random(self, shape: Shape, dtype: torch.dtype, device: Device, gen: Generator) -> Tensor:
        return haar_vectors(shape, dtype=dtype, device=device, generator=gen)
