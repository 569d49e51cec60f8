r"""A linear layer whose weight is orthogonal, trained by torch.optim or by geoopt."""

from __future__ import annotations

import math

import geoopt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._map import FLAT_METHODS, PACKAGE_METHODS, Orthogonal

__all__ = ["OrthogonalLinear"]


def make_point(
    parametrization: Orthogonal,
    *,
    manifold_parameter: bool,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> nn.Parameter:
    """Return an uninitialised free parameter, a geoopt ``ManifoldParameter`` if asked for."""
    point = torch.empty(parametrization.point_shape, device=device, dtype=dtype)
    if manifold_parameter:
        return geoopt.ManifoldParameter(point, manifold=parametrization.manifold)
    return nn.Parameter(point)


def allowed_methods(manifold_parameter: bool) -> tuple[str, ...]:
    """Return the methods a layer accepts: all manifolds with a geoopt parameter."""
    return PACKAGE_METHODS if manifold_parameter else FLAT_METHODS


class OrthogonalLinear(nn.Module):
    r"""Linear layer :math:`y = x W^\top + b` with an orthogonal weight :math:`W`.

    :math:`W` (shape ``(out_features, in_features)``) has orthonormal columns when
    ``out_features >= in_features`` and orthonormal rows otherwise; it is recomputed from
    the free tensor ``weight_original`` on every forward pass, as in
    :func:`~cwy_manifolds.nn.orthogonal`, which describes the maps and their options. A
    drop-in replacement for :class:`torch.nn.Linear` whose ``weight`` is a property.

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
        For ``"cwy"``, as in :func:`~cwy_manifolds.nn.orthogonal`.
    manifold_parameter : bool, default False
        Store the free tensor as a :class:`geoopt.ManifoldParameter` on the manifold of
        ``method``, so that geoopt's Riemannian optimizers train this layer together with
        parameters on other manifolds in one model (for CWY/T-CWY the geometry is flat:
        ``RiemannianAdam`` takes the steps of ``torch.optim.Adam``). Without it, the free
        tensor is a plain :class:`torch.nn.Parameter` for :mod:`torch.optim`.
    device, dtype : optional
        Factory arguments of the parameters.

    Attributes
    ----------
    weight_original : torch.nn.Parameter, shape ``(N, L)``
        The free tensor: reflection vectors for ``"cwy"``/``"tcwy"`` (``N x N`` or ``N x L``
        for ``"cwy"``, the shape of the tall matrix :math:`W` or :math:`W^\top` for
        ``"tcwy"``), the tall matrix itself for the Stiefel manifolds. Initialised so that
        :math:`W` is Haar-distributed (Gaussian vectors for :math:`L < N`). Do not use
        weight decay on reflection vectors (see :func:`~cwy_manifolds.nn.orthogonal`).
    bias : torch.nn.Parameter or None, shape ``(out_features,)``

    Notes
    -----
    Cost per forward pass: forming :math:`W` (about :math:`2 N^2 L` flops for ``"cwy"``,
    :math:`3 N M^2` for ``"tcwy"``) plus the usual product. Unlike a module parametrized
    with :func:`~cwy_manifolds.nn.orthogonal`, the layer pickles as a whole.

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
        self.weight_map = Orthogonal.for_shape(
            (out_features, in_features),
            "weight",
            method=method,
            n_reflections=n_reflections,
            det=det,
            allowed=allowed_methods(manifold_parameter),
        )
        self.weight_original = make_point(
            self.weight_map, manifold_parameter=manifold_parameter, device=device, dtype=dtype
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw a new Haar-random weight and a bias as :class:`torch.nn.Linear` does."""
        with torch.no_grad():
            point = self.weight_original
            point.copy_(self.weight_map.random_point(device=point.device, dtype=point.dtype))
            if self.bias is not None:
                bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
                self.bias.uniform_(-bound, bound)

    @property
    def weight(self) -> Tensor:
        """The orthogonal weight, shape ``(out_features, in_features)``.

        Computed from ``weight_original`` on every access. Assigning ``layer.weight = Q``
        sets ``weight_original`` through the inverse maps (strict: ``Q`` must be of the
        kind the layer reaches).
        """
        return self.weight_map(self.weight_original)

    @weight.setter
    def weight(self, value: Tensor) -> None:
        with torch.no_grad():
            self.weight_original.copy_(self.weight_map.right_inverse(value))

    def forward(self, input: Tensor) -> Tensor:
        r"""Return :math:`x W^\top + b` for ``input`` of shape ``(*, in_features)``."""
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        """Describe the sizes in the repr."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
