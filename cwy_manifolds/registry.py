r"""The one registry of methods and optimizers, shared by every layer of the package.

A *method* is a way to keep a matrix orthogonal while optimizing it: a geoopt manifold
whose points stand for :math:`N \times M` matrices with orthonormal columns. The
registry records what each can do, so that the manifolds, :mod:`cwy_manifolds.nn`, the
comparison harness, the benchmark, the command line and the tests all derive their
choices from one table instead of keeping lists of names:

- ``flat``: the points are free reflection vectors (:class:`~cwy_manifolds.CWY`,
  :class:`~cwy_manifolds.TCWY`), so any :mod:`torch.optim` optimizer trains them; the
  other methods need a geoopt optimizer, which retracts;
- ``square_only``: the method stands for square matrices only;
- ``source``: ``"cwy_manifolds"`` or ``"geoopt"`` (geoopt's stock Stiefel manifolds,
  the peers the package is measured against);
- ``takes_det``: the factory takes ``det``, the component of :math:`O(N)` for square
  shapes (every manifold of the package; Note [components]);
- ``default``: whether :func:`~cwy_manifolds.compare` runs it when no methods are named.

An *optimizer* is a factory ``(params, lr) -> torch.optim.Optimizer``; ``riemannian``
says whether it knows manifolds (geoopt's) or only flat parameters (torch's), and
``learning_rate`` whether it takes a learning rate (geoopt's ``RiemannianLineSearch``
chooses its own steps: its factory ignores ``lr``, and the harness passes ``None``).

Every optimizer is stepped with a closure, ``optimizer.step(closure)``, that zeroes the
gradients, evaluates the loss, calls ``backward`` and returns the loss *detached*, e.g.
``loss.item()``: ``RiemannianLineSearch`` evaluates the closure at trial points and hands
the values to SciPy's Armijo search, which fails on a tensor that requires grad (and warns
on a 0-d tensor under NumPy 2).

Adding a method is one entry in :data:`METHODS`; the contract tests run every entry.

Examples
--------
>>> from cwy_manifolds.registry import METHODS, OPTIMIZERS, get_manifold
>>> [name for name, method in METHODS.items() if method.flat]
['cwy', 'tcwy']
>>> METHODS["qr"].accepts(OPTIMIZERS["adam"])  # torch's Adam would leave the manifold
False
>>> get_manifold("cwy", det=-1)
CWY(det=-1, n_reflections=None, gauge='auto', gradient='euclidean') manifold
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import geoopt
import torch

from .manifolds import CWY, TCWY, CayleyStiefel, ExpStiefel, QRStiefel

__all__ = [
    "DTYPES",
    "METHODS",
    "OPTIMIZERS",
    "Method",
    "Optimizer",
    "get_manifold",
    "get_method",
    "get_optimizer",
]


@dataclass(frozen=True)
class Method:
    """A registered method: a manifold factory and what the method can do.

    Attributes
    ----------
    name : str
        The one spelling of the method everywhere (CLI, CSV, plots, docs).
    factory : callable
        ``factory(**options) -> geoopt.manifolds.Manifold``.
    flat : bool
        Points are free vectors: every optimizer applies, geoopt's or torch's.
    square_only : bool
        Stands for square matrices only.
    source : str
        ``"cwy_manifolds"`` or ``"geoopt"``.
    takes_det : bool
        The factory takes ``det=+1`` or ``-1``, the component of :math:`O(N)` of square
        matrices (Note [components]); geoopt's manifolds do not.
    default : bool
        Run by :func:`~cwy_manifolds.compare` when no methods are named.
    summary : str
        One line for help texts and tables.
    """

    name: str
    factory: Callable[..., geoopt.manifolds.Manifold]
    flat: bool
    square_only: bool = False
    source: str = "cwy_manifolds"
    takes_det: bool = True
    default: bool = True
    summary: str = ""

    def manifold(self, **options: object) -> geoopt.manifolds.Manifold:
        """Return a new manifold of this method, with ``options`` for its constructor."""
        return self.factory(**options)

    def accepts(self, optimizer: Optimizer) -> bool:
        """Whether ``optimizer`` keeps this method's points valid."""
        return optimizer.riemannian or self.flat

    def why_not(self, n: int, p: int) -> str | None:
        """Why the method cannot stand for ``n x p`` matrices, or ``None`` if it can."""
        if self.square_only and n != p:
            return f"{self.name} stands for square matrices (p == n); got n={n}, p={p}"
        return None


@dataclass(frozen=True)
class Optimizer:
    """A registered optimizer: ``factory(params, lr)``; ``riemannian``: knows manifolds.

    ``learning_rate``: whether ``lr`` means anything to it (False for optimizers that
    choose their own step sizes, such as a line search; they are run once, not over a
    grid of rates, and called with ``lr=None``).
    """

    name: str
    factory: Callable[[list, float | None], torch.optim.Optimizer]
    riemannian: bool
    summary: str = ""
    learning_rate: bool = True


def _methods(*methods: Method) -> dict[str, Method]:
    return {method.name: method for method in methods}


#: Every method, by name, in table order.
METHODS: dict[str, Method] = _methods(
    Method("cwy", CWY, flat=True, square_only=True, summary="products of reflections, O(N)"),
    Method("tcwy", TCWY, flat=True, summary="truncated CWY, St(N, M)"),
    Method("cayley", CayleyStiefel, flat=False, summary="Cayley retraction, low rank"),
    Method("exp", ExpStiefel, flat=False, summary="exponential map (geodesics)"),
    Method("qr", QRStiefel, flat=False, summary="QR retraction"),
    Method(
        "geoopt-canonical",
        geoopt.CanonicalStiefel,
        flat=False,
        source="geoopt",
        takes_det=False,
        summary="geoopt's stock Stiefel(): Cayley map of the canonical metric",
    ),
    Method(
        "geoopt-euclidean",
        geoopt.EuclideanStiefel,
        flat=False,
        source="geoopt",
        takes_det=False,
        default=False,
        summary="geoopt's EuclideanStiefel: QR retraction",
    ),
    Method(
        "geoopt-exact",
        geoopt.EuclideanStiefelExact,
        flat=False,
        source="geoopt",
        takes_det=False,
        default=False,
        summary="geoopt's EuclideanStiefelExact: exponential map",
    ),
)

#: Every optimizer, by name. ``rsgd`` and ``sgd`` use momentum 0.9.
OPTIMIZERS: dict[str, Optimizer] = {
    optimizer.name: optimizer
    for optimizer in (
        Optimizer(
            "rsgd",
            lambda params, lr: geoopt.optim.RiemannianSGD(params, lr=lr, momentum=0.9),
            riemannian=True,
            summary="geoopt's RiemannianSGD, momentum 0.9",
        ),
        Optimizer(
            "radam",
            lambda params, lr: geoopt.optim.RiemannianAdam(params, lr=lr),
            riemannian=True,
            summary="geoopt's RiemannianAdam",
        ),
        Optimizer(
            "line-search",
            lambda params, lr: geoopt.optim.RiemannianLineSearch(params),
            riemannian=True,
            summary="geoopt's RiemannianLineSearch: steepest descent, Armijo backtracking "
            "(no learning rate; the closure must return a detached loss)",
            learning_rate=False,
        ),
        Optimizer(
            "sgd",
            lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
            riemannian=False,
            summary="torch.optim.SGD, momentum 0.9 (flat methods only)",
        ),
        Optimizer(
            "adam",
            lambda params, lr: torch.optim.Adam(params, lr=lr),
            riemannian=False,
            summary="torch.optim.Adam (flat methods only)",
        ),
    )
}


#: The dtypes the tools (compare, bench, the command line) accept, by name.
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


def _lookup(table: dict, name: object, what: str) -> object:
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"{what} must be one of {', '.join(table)}; got {name!r}")
    return table[name]


def get_method(name: str) -> Method:
    """Return the registered method ``name``; ValueError listing the valid names otherwise."""
    return _lookup(METHODS, name, "method")


def get_optimizer(name: str) -> Optimizer:
    """Return the registered optimizer ``name``; ValueError listing the valid names otherwise."""
    return _lookup(OPTIMIZERS, name, "optimizer")


def get_manifold(name: str, **options: object) -> geoopt.manifolds.Manifold:
    """Return a new manifold of the method ``name`` (a key of :data:`METHODS`).

    Examples
    --------
    >>> from cwy_manifolds import get_manifold
    >>> get_manifold("tcwy")
    TCWY(det=+1, gauge='auto') manifold
    """
    return get_method(name).manifold(**options)
