"""The methods timed by :mod:`cwy_manifolds.tools.bench`: one builder per method.

A builder gets the shape of a row group and returns a :class:`Case`. For a
parametrization it holds callables that form the matrix (``forward``), form it and
back-propagate a fixed cotangent (``forward_backward``), and apply a ``torch.optim.SGD``
update to the parameters (``update``); an optimizer step is forward, backward and update.
For a retraction-based Stiefel manifold, whose parameter is the matrix itself, there is
nothing to form, and ``step`` is one step of geoopt's ``RiemannianSGD`` (Riemannian
gradient and retraction) for a fixed Euclidean gradient.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import geoopt
import torch
from torch import Tensor

from ...core import cwy, haar, householder_product, tcwy
from ...registry import METHODS as REGISTRY
from ...registry import get_manifold

_LR = 1e-3


@dataclass(frozen=True)
class Shape:
    """A row group: ``(*lead, n, m)`` matrices from ``refl`` reflections (square/batch/thin)."""

    kind: str
    n: int
    m: int
    refl: int
    lead: tuple[int, ...] = ()


@dataclass
class Case:
    """What the harness times for one method on one shape (``None``: not applicable)."""

    matrix: Callable[[], Tensor]
    forward: Callable[[], object] | None = None
    forward_backward: Callable[[], object] | None = None
    update: Callable[[], object] | None = None
    step: Callable[[], object] | None = None


@dataclass(frozen=True)
class Method:
    """A timed method: ``family`` is ``"ours"`` or ``"peer"``; ``partial``: runs with L < N."""

    family: str
    build: Callable[[Shape, torch.dtype, torch.device], Case]
    kinds: tuple[str, ...] = ("square", "thin", "batch")
    partial: bool = False
    quick_max_n: int | None = None  # largest N timed in quick mode
    requires: str | None = None  # optional package
    saves_every_step: bool = False  # autograd keeps one matrix per reflection


def _randn(shape: Shape, cols: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.randn(*shape.lead, shape.n, cols, dtype=dtype, device=device)


def _parametrized(form: Callable[[], Tensor], param: Tensor) -> Case:
    """Case of a parametrization ``form()`` of the leaf ``param``, stepped by SGD."""
    with torch.no_grad():
        cotangent = torch.randn_like(form())
    (grad,) = torch.autograd.grad(form(), param, cotangent)  # a real gradient for updates
    opt = torch.optim.SGD([param], lr=_LR)

    def forward() -> Tensor:
        with torch.no_grad():
            return form()

    def forward_backward() -> None:
        form().backward(cotangent)
        param.grad = None

    def update() -> None:
        param.grad = grad
        opt.step()

    return Case(forward, forward, forward_backward, update)


def _vectors(fn: Callable[[Tensor], Tensor], cols: Callable[[Shape], int]) -> Callable:
    def build(shape: Shape, dtype: torch.dtype, device: torch.device) -> Case:
        v = _randn(shape, cols(shape), dtype, device).requires_grad_()
        return _parametrized(lambda: fn(v), v)

    return build


def _sequential(v: Tensor) -> Tensor:
    """``H(v_1) ... H(v_M) [I; 0]``, one reflection at a time (thin reference)."""
    n, m = v.shape[-2:]
    u = v / torch.linalg.vector_norm(v, dim=-2, keepdim=True)
    x = torch.eye(n, m, dtype=v.dtype, device=v.device).expand(v.shape)
    for i in reversed(range(m)):
        ui = u[..., i : i + 1]
        x = x - 2 * ui @ (ui.mT @ x)
    return x


def _build_sequential(shape: Shape, dtype: torch.dtype, device: torch.device) -> Case:
    v = _randn(shape, shape.refl, dtype, device).requires_grad_()
    fn = _sequential if shape.kind == "thin" else householder_product
    return _parametrized(lambda: fn(v), v)


def _build_lapack(shape: Shape, dtype: torch.dtype, device: torch.device) -> Case:
    """``torch.linalg.householder_product`` on reflectors from ``torch.geqrf``.

    The scalars are ``tau = 2 / (1 + ||a||^2)`` (so each factor is a reflection, as in
    torch's ``householder`` map); square shapes pad the reflectors to ``N x N``.
    """
    a, _ = torch.geqrf(_randn(shape, shape.refl, dtype, device))
    a = a.tril(-1).requires_grad_()
    pad = shape.m - shape.refl  # 0 for thin shapes

    def form() -> Tensor:
        low = a.tril(-1)
        tau = 2 / (1 + (low * low).sum(dim=-2))
        if pad:
            low = torch.cat([low, low.new_zeros(*low.shape[:-1], pad)], dim=-1)
        return torch.linalg.householder_product(low, tau)

    return _parametrized(form, a)


class _Holder(torch.nn.Module):
    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight)


def _torch_map(name: str) -> Callable:
    def build(shape: Shape, dtype: torch.dtype, device: torch.device) -> Case:
        module = _Holder(_randn(shape, shape.m, dtype, device))
        torch.nn.utils.parametrizations.orthogonal(module, "weight", orthogonal_map=name)
        return _parametrized(lambda: module.weight, module.parametrizations.weight.original)

    return build


def _build_geotorch(shape: Shape, dtype: torch.dtype, device: torch.device) -> Case:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import geotorch

    module = _Holder(_randn(shape, shape.m, dtype, device))
    geotorch.orthogonal(module, "weight")
    return _parametrized(lambda: module.weight, module.parametrizations.weight.original)


def _retraction(name: str) -> Callable:
    """Builder of one ``RiemannianSGD`` step on the registered manifold ``name``."""

    def build(shape: Shape, dtype: torch.dtype, device: torch.device) -> Case:
        q = haar((*shape.lead, shape.n, shape.m), dtype=dtype, device=device)
        x = geoopt.ManifoldParameter(q, manifold=get_manifold(name))
        opt = geoopt.optim.RiemannianSGD([x], lr=_LR)
        grad = torch.randn_like(q)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            x.backward(grad)
            opt.step()

        return Case(lambda: x.detach(), step=step)

    return build


#: The timed methods, in table order. Names are the values of ``--methods``: ``cwy`` and
#: ``tcwy`` as parametrizations, the peers, then every retraction-based method of the
#: registry (:data:`~cwy_manifolds.registry.METHODS`) under its registered name.
#: Sequential methods and those doing O(N^3) work for thin shapes are not timed above
#: ``quick_max_n`` in quick mode.
METHODS: dict[str, Method] = {
    "cwy": Method("ours", _vectors(cwy, lambda s: s.refl), ("square", "batch"), partial=True),
    "tcwy": Method("ours", _vectors(tcwy, lambda s: s.m), ("thin",)),
    "householder-product": Method(
        "peer", _build_sequential, partial=True, quick_max_n=512, saves_every_step=True
    ),
    "linalg-householder-product": Method("peer", _build_lapack, partial=True, quick_max_n=1024),
    "torch-householder": Method("peer", _torch_map("householder"), quick_max_n=1024),
    "torch-cayley": Method("peer", _torch_map("cayley"), quick_max_n=1024),
    "torch-matrix-exp": Method("peer", _torch_map("matrix_exp"), quick_max_n=1024),
    "geotorch": Method("peer", _build_geotorch, quick_max_n=1024, requires="geotorch"),
    **{
        name: Method(
            "ours" if method.source == "cwy_manifolds" else "peer",
            _retraction(name),
            quick_max_n=1024 if name == "geoopt-canonical" else None,  # an N x N solve
        )
        for name, method in REGISTRY.items()
        if not method.flat
    },
}


def unavailable(method: Method) -> str | None:
    """Why ``method`` cannot run here (a missing optional package), or ``None``."""
    if method.requires and importlib.util.find_spec(method.requires) is None:
        return f"unavailable: {method.requires} is not installed (pip install {method.requires})"
    return None
