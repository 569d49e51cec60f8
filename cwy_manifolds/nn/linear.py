r"""A linear layer whose weight is orthogonal, trained by torch.optim or by geoopt."""

from __future__ import annotations

import math

import geoopt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._map import FLAT_METHODS, PACKAGE_METHODS, Orthogonal
from ._protocol import PicklableParametrized, adopt, upgrade_old_keys

__all__ = ["OrthogonalLinear"]


def make_free(
    parametrization: Orthogonal,
    *,
    manifold_parameter: bool,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> nn.Parameter:
    """Return an uninitialised free tensor, a geoopt ``ManifoldParameter`` if asked for."""
    free = torch.empty(parametrization.original_shape, device=device, dtype=dtype)
    if manifold_parameter:
        return geoopt.ManifoldParameter(free, manifold=parametrization.manifold)
    return nn.Parameter(free)


def register_orthogonal(
    module: nn.Module,
    name: str,
    shape: tuple[int, ...],
    *,
    method: str | None,
    n_reflections: int | None,
    det: int | None,
    manifold_parameter: bool,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> None:
    """Give a layer the parametrized tensor ``name`` (uninitialised; see reset_parameters)."""
    parametrization = Orthogonal.for_shape(
        shape,
        name,
        method=method,
        n_reflections=n_reflections,
        det=det,
        allowed=PACKAGE_METHODS if manifold_parameter else FLAT_METHODS,
        layout="point" if manifold_parameter else "weight",
    )
    free = make_free(
        parametrization, manifold_parameter=manifold_parameter, device=device, dtype=dtype
    )
    adopt(module, name, free, parametrization)
    upgrade_old_keys(module, f"{name}_original", name)


@torch.no_grad()
def reset_orthogonal(module: nn.Module, name: str) -> None:
    """Draw a new free tensor for ``module.<name>`` (nothing on the meta device).

    A free tensor in the manifold's layout is a ``ManifoldParameter``; ``to_empty`` from
    the meta device makes it a plain ``Parameter``, so it is wrapped again here.
    """
    plist = module.parametrizations[name]
    parametrization, free = plist[0], plist.original
    if free.is_meta:  # Note [meta tensors] in _protocol.py
        return
    if parametrization.layout == "point" and not isinstance(free, geoopt.ManifoldParameter):
        free = geoopt.ManifoldParameter(
            free, manifold=parametrization.manifold, requires_grad=free.requires_grad
        )
        plist.original = free
    free.copy_(parametrization.random_original(device=free.device, dtype=free.dtype))


class OrthogonalLinear(PicklableParametrized, nn.Module):
    r"""Linear layer :math:`y = x W^\top + b` with an orthogonal weight :math:`W`.

    :math:`W` (shape ``(out_features, in_features)``) has orthonormal columns when
    ``out_features >= in_features`` and orthonormal rows otherwise. It is a
    ``torch.nn.utils.parametrize`` parametrization of ``weight``, as registered by
    :func:`~cwy_manifolds.nn.orthogonal` (which describes the maps and their options), so
    ``parametrize.cached()``, ``remove_parametrizations`` and assignment work as there. A
    drop-in replacement for :class:`torch.nn.Linear`.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of each input and output sample.
    bias : bool, default True
        Learn an additive bias, initialised as in :class:`torch.nn.Linear`.
    method : str, optional
        ``"cwy"`` (default for square weights) or ``"tcwy"`` (default otherwise). With
        ``manifold_parameter=True`` also any other method of the package in
        :data:`~cwy_manifolds.registry.METHODS` (``"cayley"``, ``"exp"``, ``"qr"``), whose
        free tensor is the Stiefel matrix itself, kept on the manifold by a geoopt optimizer.
    n_reflections, det : optional
        As in :func:`~cwy_manifolds.nn.orthogonal`: ``n_reflections`` for ``"cwy"``,
        ``det`` for a square weight (for the retraction methods, default None: both
        components of :math:`O(N)`).
    manifold_parameter : bool, default False
        Store the free tensor as a :class:`geoopt.ManifoldParameter` on the manifold of
        ``method``, so that geoopt's Riemannian optimizers train this layer together with
        parameters on other manifolds in one model (for CWY/T-CWY the geometry is flat:
        ``RiemannianAdam`` takes the steps of ``torch.optim.Adam``). Without it, the free
        tensor is a plain :class:`torch.nn.Parameter` for :mod:`torch.optim`.
    device, dtype : optional
        Factory arguments of the parameters; ``device="meta"`` allocates nothing (call
        ``to_empty`` and :meth:`reset_parameters` later).

    Attributes
    ----------
    parametrizations.weight.original : torch.nn.Parameter
        The free tensor: for a plain parameter, the reflection vectors in a tensor of the
        weight's shape (Note [free tensor layout] in ``cwy_manifolds/nn/_map.py``); for a
        ``ManifoldParameter``, the manifold's point ``(N, L)``. Initialised so that
        :math:`W` is Haar-distributed (Gaussian vectors for :math:`L < N`). Do not use
        weight decay on reflection vectors (see :func:`~cwy_manifolds.nn.orthogonal`).
    bias : torch.nn.Parameter or None, shape ``(out_features,)``

    Notes
    -----
    Cost per forward pass: forming :math:`W` (about :math:`2 N^2 L` flops for ``"cwy"``,
    :math:`3 N M^2` for ``"tcwy"``) plus the usual product; once per
    ``parametrize.cached()`` block. Unlike a module parametrized with
    :func:`~cwy_manifolds.nn.orthogonal`, the layer pickles as a whole. State dicts of
    versions before 0.1 (key ``weight_original``) still load.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds.nn import OrthogonalLinear
    >>> layer = OrthogonalLinear(8, 3)  # T-CWY: W has orthonormal rows
    >>> layer(torch.randn(5, 8)).shape
    torch.Size([5, 3])
    >>> torch.allclose(layer.weight @ layer.weight.T, torch.eye(3), atol=1e-5)
    True
    >>> opt = torch.optim.Adam(layer.parameters(), lr=1e-2)  # any torch.optim optimizer
    """

    in_features: int
    out_features: int

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        method: str | None = None,
        n_reflections: int | None = None,
        det: int | None = None,
        manifold_parameter: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        register_orthogonal(
            self,
            "weight",
            (out_features, in_features),
            method=method,
            n_reflections=n_reflections,
            det=det,
            manifold_parameter=manifold_parameter,
            device=device,
            dtype=dtype,
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw a new Haar-random weight and a bias as :class:`torch.nn.Linear` does."""
        reset_orthogonal(self, "weight")
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            with torch.no_grad():
                self.bias.uniform_(-bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        r"""Return :math:`x W^\top + b` for ``input`` of shape ``(*, in_features)``."""
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        """Describe the sizes in the repr."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
