"""Manifolds of orthogonal and Stiefel matrices behind one interface, and its registry.

Every manifold here answers ``matrix(x)`` and ``from_matrix(m)``; the module-level
:func:`matrix` and :func:`from_matrix` also accept geoopt's own Stiefel manifolds, so
user code written against them works whichever manifold a parameter lives on.
"""

from __future__ import annotations

import geoopt
from geoopt.manifolds.base import Manifold
from torch import Tensor

from ..core import check_orthonormal
from ._base import MatrixManifold
from .cwy import CWY
from .stiefel import CayleyStiefel, ExpStiefel, QRStiefel
from .tcwy import TCWY
from .vectors import check_weight_decay, renormalize_

MatrixManifold.__module__ = __name__  # documented here, where users import it from


def moved_name(name: str, owner: str = __name__, stacklevel: int = 3) -> object:
    """Return ``MANIFOLDS`` or ``get_manifold``, which moved to the registry, with a warning.

    ``owner`` is the module the caller asked (the package root also offers ``MANIFOLDS``);
    ``stacklevel`` points the warning at the caller's line.
    """
    import warnings

    from .. import registry

    new = "METHODS" if name == "MANIFOLDS" else name
    warnings.warn(
        f"{owner}.{name} is deprecated; use cwy_manifolds.registry.{new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    if name == "get_manifold":
        return registry.get_manifold
    return {k: m.factory for k, m in registry.METHODS.items() if m.source == "cwy_manifolds"}


def __getattr__(name: str) -> object:
    """Names that moved to :mod:`cwy_manifolds.registry` (deprecated here)."""
    if name in ("MANIFOLDS", "get_manifold"):
        return moved_name(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CWY",
    "TCWY",
    "CayleyStiefel",
    "ExpStiefel",
    "MatrixManifold",
    "QRStiefel",
    "check_weight_decay",
    "from_matrix",
    "matrix",
    "renormalize_",
]


def _unscaled(manifold: object) -> object:
    while isinstance(manifold, geoopt.Scaled):
        manifold = manifold.base
    return manifold


def _resolve(manifold: object, what: str) -> Manifold:
    base = _unscaled(manifold)
    if not isinstance(base, (MatrixManifold, geoopt.Stiefel)):
        raise TypeError(
            f"{what} must be on a manifold of cwy_manifolds or a geoopt Stiefel manifold; "
            f"got {type(base).__name__}"
        )
    return base


def matrix(p: Tensor) -> Tensor:
    """Return the orthogonal or Stiefel matrix that a geoopt parameter stands for.

    Works for every manifold of the package (``CWY``, ``TCWY``, ``CayleyStiefel``, ...),
    for geoopt's Stiefel manifolds (where it returns ``p`` itself) and through
    ``geoopt.Scaled``, so code that uses ``W = matrix(p)`` does not change when the
    manifold of ``p`` does. Differentiable in ``p``.

    Parameters
    ----------
    p : geoopt.ManifoldParameter or geoopt.ManifoldTensor
        A point; its ``manifold`` attribute says how to read it.

    Raises
    ------
    TypeError
        If ``p`` has no manifold (a plain tensor: call ``manifold.matrix(p)``) or lives
        on a manifold that does not stand for matrices.

    Examples
    --------
    >>> import geoopt
    >>> import cwy_manifolds as cm
    >>> for manifold in (cm.CWY(), cm.CayleyStiefel(), geoopt.Stiefel()):
    ...     p = geoopt.ManifoldParameter(manifold.random(4, 4))
    ...     print(tuple(cm.matrix(p).shape))
    (4, 4)
    (4, 4)
    (4, 4)
    """
    manifold = getattr(p, "manifold", None)
    if manifold is None:
        raise TypeError(
            "p must be a geoopt ManifoldParameter or ManifoldTensor; got "
            f"{type(p).__name__} (for a plain tensor call manifold.matrix(p))"
        )
    base = _resolve(manifold, "p")
    return p if isinstance(base, geoopt.Stiefel) else base.matrix(p)


def from_matrix(manifold: Manifold, m: Tensor, *, atol: float | None = None) -> Tensor:
    """Return a point of ``manifold`` that stands for the matrix ``m``.

    The counterpart of :func:`matrix`: ``manifold.from_matrix(m)`` for the manifolds of
    the package, a checked copy of ``m`` for geoopt's Stiefel manifolds. Used to start
    different manifolds from the same matrix.

    Examples
    --------
    >>> import geoopt, torch
    >>> import cwy_manifolds as cm
    >>> m = cm.QRStiefel().random(5, 2, dtype=torch.float64)
    >>> x = cm.from_matrix(cm.TCWY(), m)
    >>> torch.allclose(cm.matrix(x), m)
    True
    """
    base = _resolve(manifold, "manifold")
    if isinstance(base, geoopt.Stiefel):
        m = check_orthonormal(m, "m", atol)
        return geoopt.ManifoldTensor(m.detach().clone(), manifold=manifold)
    point = base.from_matrix(m, atol=atol)
    point.manifold = manifold  # keep a geoopt.Scaled wrapper
    return point
