r"""The fast path of :func:`~cwy_manifolds.cwy` and :func:`~cwy_manifolds.tcwy`.

One :class:`torch.autograd.Function` forms both matrices,

.. math::

    \Omega = E - Y W, \qquad W = S^{-1} Y_K^\top, \qquad
    S = \operatorname{striu}(Y^\top Y) + \tfrac12 \operatorname{diag}(Y^\top Y),

with :math:`E = I_{N \times K}` and :math:`Y_K` the first :math:`K` rows of :math:`Y`
(:math:`K = N` for CWY, :math:`K = M = L` for T-CWY), and differentiates it by hand.

Note [unnormalised vectors]
~~~~~~~~~~~~~~~~~~~~~~~~~~~
:math:`Y = V D_c^{-1}` holds the columns divided by their largest absolute entries
:math:`c_i` (Note [scaled normalisation] in ``householder.py``), not by their norms.
With :math:`U = Y D^{-1}`, :math:`D = \operatorname{diag}(\|y_i\|)`, :math:`S` is
:math:`D S_U D` for the :math:`S_U = \tfrac12 I + \operatorname{striu}(U^\top U)` of
``householder.py``, so :math:`Y S^{-1} Y^\top = U S_U^{-1} U^\top`. The norms enter
through the diagonal of :math:`S`; no pass over :math:`V` divides by them, and
:math:`1 \le \|y_i\|^2 \le N` (no overflow or underflow).

Note [hand-derived backward]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Let :math:`G = \partial f / \partial \Omega` and :math:`\Phi(X) =
\operatorname{striu}(X) + \tfrac12 \operatorname{diag}(X)`, so that
:math:`S = \Phi(Y^\top Y)`. From :math:`S W = Y_K^\top`,
:math:`dW = S^{-1} (dY_K^\top - dS\, W)`, so

.. math::

    d\Omega = -dY\, W - Y S^{-1} dY_K^\top + Y S^{-1} dS\, W .

With :math:`A = S^{-\top} Y^\top G` (:math:`L \times K`, computed as :math:`A^\top =
G^\top Y S^{-1}`) the three terms give :math:`\bar Y = -G W^\top`, :math:`\bar Y_K
\mathrel{-}= A^\top` and :math:`\bar S = A W^\top`. :math:`\Phi` is self-adjoint, so
with :math:`P = \Phi(\bar S)`, :math:`\langle \bar S, \Phi(dY^\top Y + Y^\top dY)
\rangle` adds :math:`Y (P + P^\top)`:

.. math::

    \bar Y = Y (P + P^\top) - G W^\top - \begin{bmatrix} A^\top \\ 0 \end{bmatrix},
    \qquad \bar v_i = \bar y_i / c_i .

Cost for CWY with :math:`L = N`: four :math:`N \times N \times N` products (for
:math:`L > 256` one only on and above the diagonal, :func:`triu_product`) and one
triangular solve, reusing :math:`Y`, :math:`S` and :math:`W^\top` from the forward pass,
which forms the Gram matrix, solves with :math:`S` (never inverting it on the CPU) and
writes :math:`E - Y W` without materialising :math:`E`.

Note [memory layout]
~~~~~~~~~~~~~~~~~~~~
On the CPU, LAPACK's triangular solve runs fastest from the right with a row-major
matrix and copies a right-hand side it may not overwrite: the forward pass solves for
:math:`W^\top = Y_K S^{-\top}`, the backward pass for :math:`A^\top` in the buffer of
:math:`G^\top Y`, formed column-major as :math:`(Y^\top G)^\top` where that solves
faster (measured: float32 from :math:`32^2` entries or batched, up to 1.5 times; float64
only for :math:`L > 128`). For :math:`L \le 256` the Gram matrix is formed whole, its
diagonal halved, in one buffer: :math:`S` on and above the diagonal, :math:`S^\top`
below (:math:`Y^\top Y` is symmetric), which both solves read as it is (no ``triu``, no
transposed copy). For :math:`L > 256` the vectors are copied once so that each is
contiguous (the copy also divides by the scale; at :math:`N = L = 1024` in float32 the
solve then takes about 0.6 matrix products against 0.7 to 1.5, the Gram product 0.6
against 0.75), and :func:`triu_product` forms the upper triangle only, in column panels
written into one buffer (padded and joined where autograd, :func:`torch.compile` or
:mod:`torch.func` forbid writes into slices).

New buffers cost more than their flops suggest: glibc gives large blocks back to the
system and takes them again, page by page (up to 0.3 matrix products per forward pass).
So the backward pass accumulates into its buffers (``addmm_``, unbatched), and CWY's
forward pass without autograd (:func:`_form`) makes three :math:`N \times N` buffers,
not four: the solve overwrites the copy of :math:`Y^\top` with :math:`W`, and :math:`S`
is freed before the product, whose result can take its memory.

The gradient is written in the memory layout of :math:`V`, also where the solves
preferred :math:`G^\top Y` column-major: ``AccumulateGrad`` warns about, and copies, a
gradient whose strides differ from its parameter's.

Note [double backward]
~~~~~~~~~~~~~~~~~~~~~~
When autograd asks for a graph of the backward pass (``create_graph=True``: Hessian-vector
products, ``gradgradcheck``), the factors are recomputed from the saved input, and the
backward formula runs, with plain differentiable operations, so that autograd
differentiates through it; the saved factors serve the common case.
Forward-mode AD and every :mod:`torch.func` transform (``grad``, ``vmap``, ``jvp``,
``jacfwd``, ``hessian``, nested) run the forward formulas as plain differentiable
operations instead (:func:`_differentiable`). A custom ``jvp`` on :class:`_WY` would
cover forward mode too, but :func:`torch.compile` refuses to trace an
:class:`torch.autograd.Function` that has one (torch 2.13: "Unsupported custom jvp"), and
the saved factors would carry no tangents under nested transforms; functorch always
differentiates with ``create_graph=True``, so little speed is lost.

Note [triangular inverse on accelerators]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Off the CPU the solves with :math:`S` use its explicit inverse, computed by recursive
doubling of the diagonal blocks (:func:`upper_inverse`): :math:`\log_2 L` levels of
batched products instead of a triangular solve, which accelerators run slowly for small
or batched matrices; the backward pass reuses it. The Neumann product
:math:`S_U^{-1} = 2 \prod_k (I + (-X)^{2^k})`, :math:`S_U = (I + X)/2`, is unstable
(powers of :math:`X` grow like :math:`2^{2^k}` and cancel: for nearly parallel vectors
in float32, relative errors of 1e-2 at :math:`L = 16`, overflow at :math:`L = 64`). On
the CPU the LAPACK triangular solve is faster and as accurate.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import forward_ad
from torch.autograd.forward_ad import unpack_dual

from .checks import column_scale
from .precision import autocast_off, product_dtype, work_dtype

__all__ = ["triu_product", "upper_inverse", "wy_matrix"]

#: Up to this many entries, E - Y W is one addmm with a new identity (Note [fast path]).
_SMALL = 64 * 64
#: Width of the column panels of :func:`triu_product`; up to twice this, products are whole.
_BLOCK = 128


def _differentiated(v: Tensor) -> bool:
    """Whether ``v`` meets forward-mode AD or a :mod:`torch.func` transform (not compiling).

    Then :func:`wy_matrix` runs plain differentiable operations (Note [double backward]).
    """
    if torch.compiler.is_compiling():
        return False
    functorch = torch._C._functorch
    if functorch.is_functorch_wrapped_tensor(v) or torch._C._are_functorch_transforms_active():
        return True
    return forward_ad._current_level >= 0 and unpack_dual(v).tangent is not None


def triu_product(a: Tensor, b: Tensor, *, differentiable: bool = False) -> Tensor:
    r"""Upper triangle (diagonal included) of ``a @ b``, for ``a`` (*, L, K), ``b`` (*, K, L).

    For :math:`L > 2 \cdot` ``_BLOCK`` the product is formed in column panels of width
    ``_BLOCK``, each only down to the diagonal, which saves up to half the flops: into one
    buffer, or, when the result must be ``differentiable`` or traced by
    :func:`torch.compile` (which reject writes into slices), as padded panels joined.
    """
    n, functional = a.shape[-2], differentiable or torch.compiler.is_compiling()
    if n <= 2 * _BLOCK:  # whole; in place where possible (Note [memory layout])
        return torch.triu(a @ b) if functional else (a @ b).triu_()
    ends = [(j, min(j + _BLOCK, n)) for j in range(0, n, _BLOCK)]
    if functional:
        panels = [F.pad(a[..., :end, :] @ b[..., j:end], (0, 0, 0, n - end)) for j, end in ends]
        return torch.triu(torch.cat(panels, dim=-1))
    out = a.new_empty(*torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]), n, n)
    for j, end in ends:  # straight into one buffer
        torch.matmul(a[..., :end, :], b[..., j:end], out=out[..., :end, j:end])
    return out.triu_()


def _phi_product(a: Tensor, b: Tensor, differentiable: bool) -> Tensor:
    r""":math:`\Phi(a b) = \operatorname{striu}(a b) + \tfrac12 \operatorname{diag}(a b)`."""
    out = triu_product(a, b, differentiable=differentiable)
    if differentiable:
        return out - torch.diag_embed(out.diagonal(dim1=-2, dim2=-1)) / 2
    out.diagonal(dim1=-2, dim2=-1).mul_(0.5)
    return out


def _diagonal_blocks(t: Tensor, size: int) -> Tensor:
    """Return the diagonal ``size x size`` blocks of ``t`` (B, P, P) as a view."""
    count = t.shape[-1] // size
    blocks = t.view(t.shape[0], count, size, count, size).diagonal(dim1=1, dim2=3)
    return blocks.permute(0, 3, 1, 2)


def upper_inverse(s: Tensor) -> Tensor:
    r"""Inverse of an upper triangular matrix by recursive doubling, matrix products only.

    From the inverses of the :math:`1 \times 1` diagonal blocks, each level joins pairs
    of diagonal blocks, all at once as one batched product:

    .. math::

        \begin{bmatrix} S_{11} & S_{12} \\ 0 & S_{22} \end{bmatrix}^{-1}
        = \begin{bmatrix} T_{11} & -T_{11} S_{12} T_{22} \\ 0 & T_{22} \end{bmatrix},
        \qquad T_{ii} = S_{ii}^{-1}.

    :math:`\lceil \log_2 L \rceil` levels, about :math:`\tfrac23 L^3` flops, as accurate
    as a triangular solve here (Note [triangular inverse on accelerators]). ``s``: shape
    ``(*, L, L)``, non-zero diagonal, read on and above it; the result is not differentiable.
    """
    *batch, n, _ = s.shape
    size = 1 << max(n - 1, 0).bit_length()
    padded = F.pad(s.detach().reshape(-1, n, n), (0, size - n, 0, size - n))
    padded.diagonal(dim1=-2, dim2=-1)[:, n:] = 1
    t = torch.diag_embed(1 / padded.diagonal(dim1=-2, dim2=-1))
    half = 1
    while half < size:
        tb, sb = _diagonal_blocks(t, 2 * half), _diagonal_blocks(padded, 2 * half)
        t11, t22 = tb[..., :half, :half], tb[..., half:, half:]
        tb[..., :half, half:] = -(t11 @ sb[..., :half, half:]) @ t22
        half *= 2
    return t[:, :n, :n].reshape(*batch, n, n)


def _use_inverse(s: Tensor) -> bool:
    """Whether to solve with ``S`` by its inverse: off the CPU (Note [triangular inverse...])."""
    return not s.is_cpu


def _cast(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` in ``dtype``; no dispatch when it already is (small sizes, Note [fast path])."""
    return t if t.dtype == dtype else t.to(dtype)


def _transposed_copy(v: Tensor, dtype: torch.dtype) -> Tensor:
    """``V^T`` in ``dtype``, always a new tensor, each vector contiguous (Note [memory layout])."""
    return v.mT.to(dtype, copy=True, memory_format=torch.contiguous_format)


def _add_product(
    c: Tensor, a: Tensor, b: Tensor, *, beta: float = 1, alpha: float = 1, into_c: bool = False
) -> Tensor:
    """``beta c + alpha a b`` in one call; ``into_c``: into ``c`` if unbatched (Note [fast path]).

    (``baddbmm_`` is slow on the CPU for small matrices: batched products make a new buffer.)
    """
    if a.ndim == 2:
        return (c.addmm_ if into_c else c.addmm)(a, b, beta=beta, alpha=alpha)
    if a.ndim == 3:
        return torch.baddbmm(c, a, b, beta=beta, alpha=alpha)
    return torch.matmul(a, b).mul_(alpha).add_(c, alpha=beta)


def _factors(
    v: Tensor, scale: Tensor, k: int, differentiable: bool
) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    r"""``Y``, ``S``, the inverse of ``S`` (accelerators only), ``W^T = Y_K S^{-T}``; work dtype.

    Without autograd, for up to ``2 _BLOCK`` vectors, ``s`` holds :math:`S^\top` below the
    diagonal (Note [memory layout]).
    """
    dtype = work_dtype(v.dtype)
    n_refl = v.shape[-1]
    if n_refl > 2 * _BLOCK:  # store each vector contiguously (Note [memory layout])
        y = _transposed_copy(v, dtype).mT.div_(_cast(scale, dtype))
    else:
        y = _cast(v, dtype) / _cast(scale, dtype)
    if differentiable or n_refl > 2 * _BLOCK:
        s = _phi_product(y.mT, y, differentiable)
        lower = s.mT
    else:  # S above the diagonal, S^T below: one buffer for both solves
        lower = s = y.mT @ y
        s.diagonal(dim1=-2, dim2=-1).mul_(0.5)
    yk = y if k == y.shape[-2] else y[..., :k, :]  # no call when it is all of Y
    if _use_inverse(s) and not differentiable:
        inverse = upper_inverse(s)
        return y, s, inverse, yk @ inverse.mT
    return y, s, None, torch.linalg.solve_triangular(lower, yk, upper=False, left=False)


def _eye_minus(a: Tensor, b: Tensor, like: Tensor) -> Tensor:
    """``E - a @ b`` in the dtype of ``like``; ``E`` is never formed (Note [precision])."""
    dtype = product_dtype(like)
    a, b = _cast(a, dtype), _cast(b, dtype)
    if a.ndim <= 3 and a.shape[-2] * b.shape[-1] <= _SMALL:  # one call (Note [fast path])
        eye = torch.eye(a.shape[-2], b.shape[-1], dtype=dtype, device=a.device)
        return _cast(_add_product(eye, a, b, alpha=-1), like.dtype)
    out = torch.matmul(a, b).neg_()
    out.diagonal(dim1=-2, dim2=-1).add_(1)
    return _cast(out, like.dtype)


def _form(v: Tensor, k: int, name: str) -> Tensor:
    """``E - Y S^{-1} Y_K^T`` when nothing is differentiated (no factors are kept).

    For CWY with many vectors on the CPU, ``W`` overwrites the copy of ``Y^T`` (from which
    the scale is read) and ``Y W = V (D_c^{-1} W)``: three ``N x N`` buffers, not four, and
    one pass less over ``V`` (Note [memory layout]).
    """
    large = k == v.shape[-2] and v.shape[-1] > 2 * _BLOCK
    if not large or _use_inverse(v) or torch.compiler.is_compiling():
        y, _, _, wt = _factors(v, column_scale(v, name), k, differentiable=False)
        return _eye_minus(y, wt.mT, v)
    yt = _transposed_copy(v, work_dtype(v.dtype))
    scale_t = column_scale(yt.mT, name).mT  # checks the values of v in the copy
    s = _phi_product(yt.div_(scale_t), yt.mT, differentiable=False)
    # S W = Y^T as W^T S^T = Y: solved from the right, in place (Note [memory layout])
    torch.linalg.solve_triangular(s.mT, yt.mT, upper=False, left=False, out=yt.mT)
    del s  # the product may reuse its memory
    return _eye_minus(v, yt.div_(scale_t), v)


def _sym_phi(a: Tensor, b: Tensor, differentiable: bool) -> Tensor:
    r""":math:`P + P^\top = \operatorname{triu}(X) + \operatorname{striu}(X)^\top`, X = a b."""
    if a.ndim == 2 or differentiable:
        x = triu_product(a, b, differentiable=differentiable)
        if differentiable or x.numel() <= _SMALL:
            return x + torch.triu(x, 1).mT
        x.diagonal().mul_(0.5)  # a pass less than triu (Note [fast path])
        return x + x.mT
    n = a.shape[-2]  # batched: a mask beats torch.triu for small matrices (Note [fast path])
    mask = torch.ones(n, n, dtype=a.dtype, device=a.device).triu_()
    mask.diagonal().mul_(0.5)
    p = torch.matmul(a, b).mul_(mask)
    return p + p.mT


def _vjp(
    g: Tensor, y: Tensor, s: Tensor, inverse: Tensor | None, wt: Tensor, differentiable: bool
) -> Tensor:
    """Gradient with respect to ``Y`` (Note [hand-derived backward]), working dtype."""
    n, k = g.shape[-2:]
    g = _cast(g, y.dtype)
    n_refl = y.shape[-1]  # G^T Y, column-major where that solves faster (Note [memory layout])
    by_column = n_refl > 128 if y.dtype == torch.float64 else y.ndim > 2 or n_refl * k >= 1024
    gty = (y.mT @ g).mT if by_column else g.mT @ y
    if inverse is not None:
        at = gty @ inverse
    elif differentiable or torch.compiler.is_compiling():
        at = torch.linalg.solve_triangular(s, gty, upper=True, left=False)  # A^T, (*, K, L)
    else:  # in place: no copy of G^T Y inside the solve (Note [memory layout])
        at = torch.linalg.solve_triangular(s, gty, upper=True, left=False, out=gty)
    sym = _sym_phi(at.mT, wt, differentiable)  # P + P^T, P = Phi(A W^T), (*, L, L)
    into = not differentiable
    if k == n:  # Y (P + P^T) - (G W^T + A^T)
        c = _add_product(at, g, wt, into_c=into)
    else:  # a new buffer, also for autograd (matmul keeps no output)
        c = g @ wt
        c[..., :k, :] += at
    return _add_product(c, y, sym, beta=-1, into_c=into)


class _WY(torch.autograd.Function):
    """``(v, scale, K) -> E - Y S^{-1} Y_K^T`` with a hand-derived backward (module doc).

    The classic form (``forward`` takes ``ctx``), whose :meth:`apply` binds no arguments
    by signature (Note [fast path] in ``householder.py``). :mod:`torch.func` never
    reaches it (:func:`_differentiated`).
    """

    @staticmethod
    def forward(ctx: Any, v: Tensor, scale: Tensor, k: int) -> Tensor:  # type: ignore[override]
        y, s, inverse, wt = _factors(v, scale, k, differentiable=False)
        ctx.save_for_backward(v, scale, y, s, wt, *([] if inverse is None else [inverse]))
        return _eye_minus(y, wt.mT, v)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        v, scale, y, s, wt, *inverse = ctx.saved_tensors
        differentiable = torch.is_grad_enabled()  # create_graph=True: Note [double backward]
        with autocast_off(v.device):  # Note [autocast]
            if differentiable:
                y, s, _, wt = _factors(v, scale, grad.shape[-1], differentiable=True)
                gy = _vjp(grad, y, s, None, wt, differentiable=True)
                return _cast(gy / _cast(scale, gy.dtype), v.dtype), None, None
            gy = _vjp(grad, y, s, inverse[0] if inverse else None, wt, differentiable=False)
            scale = _cast(scale, gy.dtype)
            if torch.compiler.is_compiling():  # dynamo refuses a non-contiguous out=
                return _cast(gy.div_(scale), v.dtype), None, None
            out = torch.empty_like(v)  # the layout of v (Note [memory layout])
            return torch.div(gy, scale, out=out), None, None


def _differentiable(v: Tensor, scale: Tensor, k: int) -> Tensor:
    """``E - Y S^{-1} Y_K^T`` by plain differentiable operations (Note [double backward])."""
    y, _, _, wt = _factors(v, scale, k, differentiable=True)
    dtype = product_dtype(v)
    eye = torch.eye(v.shape[-2], k, dtype=dtype, device=v.device)
    return _cast(eye - _cast(y, dtype) @ _cast(wt.mT, dtype), v.dtype)


def wy_matrix(v: Tensor, k: int, name: str = "v") -> Tensor:
    r"""Return :math:`I_{N \times K} - Y S^{-1} Y_K^\top` for ``v`` (*, N, L) of checked type.

    Checks the values of ``v`` (:func:`~cwy_manifolds.core.checks.column_scale`, which also
    gives the scale of Note [scaled normalisation]); ``K = N`` gives
    :func:`~cwy_manifolds.cwy`, ``K = L <= N`` :func:`~cwy_manifolds.tcwy`. Reverse mode
    (first and second order) by a hand-derived rule (Note [hand-derived backward]), forward
    mode and :mod:`torch.func` by plain autograd (Note [double backward]); without
    autograd, no :class:`torch.autograd.Function` bookkeeping.
    """
    with autocast_off(v.device):  # Note [autocast]
        if _differentiated(v):
            return _differentiable(v, column_scale(v, name), k)
        if torch.is_grad_enabled() and v.requires_grad:
            return _WY.apply(v, column_scale(v, name), k)
        return _form(v, k, name)
