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
With :math:`U = Y D^{-1}`, :math:`D = \operatorname{diag}(\|y_i\|)`, the matrix :math:`S`
above is :math:`D S_U D` for the :math:`S_U = \tfrac12 I + \operatorname{striu}(U^\top
U)` of the module doc of ``householder.py``, so :math:`Y S^{-1} Y^\top = U S_U^{-1}
U^\top` (the classic compact WY form of :math:`I - 2 y y^\top / y^\top y`). The norms
enter through the diagonal of :math:`S`, and no pass over :math:`V` divides by them.
Since :math:`\max_j |y_{ji}| = 1`, :math:`1 \le \|y_i\|^2 \le N`: no overflow or
underflow.

Note [hand-derived backward]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Let :math:`G = \partial f / \partial \Omega` and :math:`\Phi(X) =
\operatorname{striu}(X) + \tfrac12 \operatorname{diag}(X)`, so that
:math:`S = \Phi(Y^\top Y)`. From :math:`S W = Y_K^\top`,
:math:`dW = S^{-1} (dY_K^\top - dS\, W)`, so

.. math::

    d\Omega = -dY\, W - Y S^{-1} dY_K^\top + Y S^{-1} dS\, W .

With :math:`A = S^{-\top} Y^\top G` (:math:`L \times K`, computed as
:math:`A^\top = G^\top Y S^{-1}`, a solve from the right) the three terms give
:math:`\bar Y = -G W^\top`, :math:`\bar Y_K \mathrel{-}= A^\top` and
:math:`\bar S = A W^\top`. :math:`\Phi` is self-adjoint, so with
:math:`P = \Phi(\bar S)`, :math:`\langle \bar S, \Phi(dY^\top Y + Y^\top dY) \rangle`
adds :math:`Y (P + P^\top)`:

.. math::

    \bar Y = Y (P + P^\top) - G W^\top - \begin{bmatrix} A^\top \\ 0 \end{bmatrix},
    \qquad \bar v_i = \bar y_i / c_i .

Cost for CWY with :math:`L = N`: four :math:`N \times N \times N` products, one of them
only on and above the diagonal (:func:`triu_product`), and one triangular solve, reusing
:math:`Y`, :math:`S` and :math:`W` from the forward pass. The forward pass forms only the
upper triangle of the symmetric Gram matrix :math:`Y^\top Y` (for :math:`L > 256`),
solves with :math:`S` (never inverts it on the CPU) and writes :math:`E - Y W` without
materialising :math:`E`: about :math:`2 N L^2 + 2 N K L` flops (Gram, solve, product)
against :math:`3 N L^2 + 2 N K L` with the whole Gram matrix.

Note [memory layout]
~~~~~~~~~~~~~~~~~~~~
On the CPU, the Gram product and the triangular solves run fastest when each vector (a
column of :math:`Y`, a row of :math:`W`) is contiguous in memory, and LAPACK's solve is
fastest from the right. At :math:`N = L = 1024` in float32 the solve takes about 0.6
matrix products this way against 0.7 to 1.5 in the other layouts, and the Gram product
about 0.6 against 0.75. So for :math:`L > 256` the vectors are copied once with
that layout (the copy also divides by the scale); a solve :math:`S X = B` runs as
:math:`X^\top S^\top = B^\top`; and the backward pass forms :math:`G^\top Y` as
:math:`(Y^\top G)^\top`, which is already laid out for its solve. :func:`triu_product`
forms column panels of the upper triangle into one buffer. Where writing into slices is
not possible (autograd recording, :func:`torch.compile`, :mod:`torch.func`), it pads the
panels and joins them instead. For fewer vectors (e.g. T-CWY at 4096 x 64) the copy
would cost more than it saves, so :math:`V` keeps its layout.

New buffers cost more than their flops suggest: glibc gives large blocks back to the
system and takes them again, page by page, so that a forward pass spent up to 0.3 matrix
products in page faults. Without autograd, CWY's forward pass (:func:`_form`) therefore
creates three :math:`N \times N` buffers instead of four (:math:`Y`, :math:`S`,
:math:`W` and the result): the solve overwrites the copy of :math:`Y^\top` with
:math:`W`, and :math:`S` is freed before the product, whose result can take its memory.

Note [double backward]
~~~~~~~~~~~~~~~~~~~~~~
The backward formula is written with differentiable torch operations. When autograd
asks for a graph of the backward pass (``create_graph=True``, e.g. Hessian-vector
products or ``gradgradcheck``), the factors are recomputed from the saved input with
plain differentiable operations, so autograd differentiates through the formula; the
saved factors of the forward pass (computed without a graph) serve the common case.

Forward-mode AD (dual tensors) and every :mod:`torch.func` transform (``grad``,
``vmap``, ``jvp``, ``jacfwd``, ``hessian``, nested in any order) run the same formulas
as plain differentiable operations instead (:func:`_differentiable`), so that each
transform differentiates or batches ordinary torch operations. A custom ``jvp`` on
:class:`_WY` would cover forward mode too, but :func:`torch.compile` refuses to trace an
:class:`torch.autograd.Function` that has one (torch 2.13: "Unsupported custom jvp"),
and the saved factors, marked non-differentiable, would carry no tangents under nested
transforms. Under a transform the backward pass would recompute the factors anyway
(functorch always differentiates with ``create_graph=True``), so little speed is lost.

Note [triangular inverse on accelerators]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Off the CPU the solves with :math:`S` use its explicit inverse, computed with matrix
products only by recursive doubling of the diagonal blocks (:func:`upper_inverse`):
:math:`\log_2 L` levels of batched products instead of a triangular solve, which
accelerators run slowly for small or batched matrices. The inverse is reused by the
backward pass. The Neumann product :math:`S_U^{-1} = 2 \prod_k (I + (-X)^{2^k})`,
:math:`S_U = (I + X)/2`, also uses products only, but it is numerically unstable: powers
of :math:`X` grow like :math:`2^{2^k}` and cancel (for nearly parallel vectors in
float32, relative errors of 1e-2 at :math:`L = 16` and overflow at :math:`L = 64`), so it
is not used. On the CPU the LAPACK
triangular solve is faster and as accurate.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import forward_ad
from torch.autograd.forward_ad import unpack_dual

from .checks import column_scale, product_dtype, work_dtype

__all__ = ["autocast_off", "triu_product", "upper_inverse", "without_autocast", "wy_matrix"]

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
    n = a.shape[-2]
    if n <= 2 * _BLOCK:
        return torch.triu(a @ b)
    ends = [(j, min(j + _BLOCK, n)) for j in range(0, n, _BLOCK)]
    if differentiable or torch.compiler.is_compiling():
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

    Starting from the inverses of the :math:`1 \times 1` diagonal blocks, each level
    joins pairs of diagonal blocks, all at once as one batched product:

    .. math::

        \begin{bmatrix} S_{11} & S_{12} \\ 0 & S_{22} \end{bmatrix}^{-1}
        = \begin{bmatrix} T_{11} & -T_{11} S_{12} T_{22} \\ 0 & T_{22} \end{bmatrix},
        \qquad T_{ii} = S_{ii}^{-1}.

    :math:`\lceil \log_2 L \rceil` levels, about :math:`\tfrac23 L^3` flops; as accurate
    as a triangular solve for the matrices :math:`S` of CWY (Note [triangular inverse on
    accelerators]). ``s`` has shape ``(*, L, L)`` and a non-zero diagonal; the result
    is not differentiable.
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
    return s.device.type != "cpu"


def _solve(s: Tensor, inverse: Tensor | None, b: Tensor, *, left: bool = True) -> Tensor:
    """``S^{-1} b`` (or ``b S^{-1}``): a triangular solve, or a product with ``inverse``."""
    if inverse is not None:
        return inverse @ b if left else b @ inverse
    if left:  # as S^T X^T = B^T: LAPACK solves fastest from the right (Note [memory layout])
        return torch.linalg.solve_triangular(s.mT, b.mT, upper=False, left=False).mT
    return torch.linalg.solve_triangular(s, b, upper=True, left=False)


def _cast(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` in ``dtype``; no dispatch when it already is (small sizes, Note [fast path])."""
    return t if t.dtype == dtype else t.to(dtype)


def _transposed_copy(v: Tensor, dtype: torch.dtype) -> Tensor:
    """``V^T`` in ``dtype``, always a new tensor, each vector contiguous (Note [memory layout])."""
    return v.mT.to(dtype, copy=True, memory_format=torch.contiguous_format)


def _factors(
    v: Tensor, scale: Tensor, k: int, differentiable: bool
) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """``Y``, ``S``, the inverse of ``S`` (accelerators only) and ``W`` (Note [precision])."""
    dtype = work_dtype(v.dtype)
    if v.shape[-1] > 2 * _BLOCK:  # many vectors: store each contiguously
        y = _transposed_copy(v, dtype).mT.div_(_cast(scale, dtype))
    else:
        y = _cast(v, dtype) / _cast(scale, dtype)
    s = _phi_product(y.mT, y, differentiable)
    inverse = upper_inverse(s) if _use_inverse(s) and not differentiable else None
    return y, s, inverse, _solve(s, inverse, y[..., :k, :].mT)


def _eye_minus(y: Tensor, w: Tensor, like: Tensor) -> Tensor:
    """``E - y @ w`` in the dtype of ``like``; ``E`` is never formed (Note [precision])."""
    dtype = product_dtype(like)
    y, w = _cast(y, dtype), _cast(w, dtype)
    if y.ndim == 2 and y.shape[-2] <= 2 * _BLOCK:  # one call (small sizes, Note [fast path])
        eye = torch.eye(y.shape[-2], w.shape[-1], dtype=dtype, device=y.device)
        return _cast(torch.addmm(eye, y, w, alpha=-1), like.dtype)
    out = torch.matmul(y, w).neg_()
    out.diagonal(dim1=-2, dim2=-1).add_(1)
    return _cast(out, like.dtype)


def _form(v: Tensor, k: int, name: str) -> Tensor:
    """``E - Y S^{-1} Y_K^T`` when nothing is differentiated (no factors are kept).

    For CWY with many vectors on the CPU, the scale is read from the copy of ``Y^T``, ``W``
    overwrites that copy, and the product takes ``V`` instead of ``Y``:
    ``Y W = V (D_c^{-1} W)``. Three ``N x N`` buffers instead of four, one pass less over
    ``V`` and no copy inside the solve (Note [memory layout]).
    """
    large = k == v.shape[-2] and v.shape[-1] > 2 * _BLOCK
    if not large or _use_inverse(v) or torch.compiler.is_compiling():
        y, _, _, w = _factors(v, column_scale(v, name), k, differentiable=False)
        return _eye_minus(y, w, v)
    yt = _transposed_copy(v, work_dtype(v.dtype))
    scale_t = column_scale(yt.mT, name).mT  # checks the values of v in the copy
    s = _phi_product(yt.div_(scale_t), yt.mT, differentiable=False)
    # S W = Y^T as W^T S^T = Y: solved from the right, in place (Note [memory layout])
    torch.linalg.solve_triangular(s.mT, yt.mT, upper=False, left=False, out=yt.mT)
    del s  # the product may reuse its memory
    return _eye_minus(v, yt.div_(scale_t), v)


def _vjp(
    g: Tensor, y: Tensor, s: Tensor, inverse: Tensor | None, w: Tensor, differentiable: bool
) -> Tensor:
    """Gradient with respect to ``Y`` (Note [hand-derived backward]), working dtype."""
    k = g.shape[-1]
    g = _cast(g, y.dtype)
    at = _solve(s, inverse, (y.mT @ g).mT, left=False)  # A^T = G^T Y S^{-1}, (*, K, L)
    p = _phi_product(at.mT, w.mT, differentiable)  # Phi(A W^T), (*, L, L)
    gy = y @ (p + p.mT) - g @ w.mT
    if differentiable:
        return gy - F.pad(at, (0, 0, 0, gy.shape[-2] - k))
    gy[..., :k, :] -= at
    return gy


class _WY(torch.autograd.Function):
    """``(v, scale, K) -> E - Y S^{-1} Y_K^T`` with a hand-derived backward (module doc).

    The classic form (``forward`` takes ``ctx``): it saves the factors directly, and
    :meth:`apply` skips binding the arguments by signature, which costs as much as a
    small matrix product (Note [fast path] in ``householder.py``). :mod:`torch.func`
    never reaches it (:func:`_differentiated`).
    """

    @staticmethod
    def forward(ctx: Any, v: Tensor, scale: Tensor, k: int) -> Tensor:  # type: ignore[override]
        y, s, inverse, w = _factors(v, scale, k, differentiable=False)
        ctx.k = k
        ctx.save_for_backward(v, scale, y, s, w, *([] if inverse is None else [inverse]))
        return _eye_minus(y, w, v)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        v, scale, y, s, w, *inverse = ctx.saved_tensors
        differentiable = torch.is_grad_enabled()  # create_graph=True: Note [double backward]
        with autocast_off(v.device):  # Note [autocast]
            if differentiable:
                y, s, inverse, w = _factors(v, scale, ctx.k, differentiable=True)
            else:
                inverse = inverse[0] if inverse else None
            gy = _vjp(grad, y, s, inverse, w, differentiable)
            return _cast(gy / _cast(scale, gy.dtype), v.dtype), None, None


def _differentiable(v: Tensor, scale: Tensor, k: int) -> Tensor:
    """``E - Y S^{-1} Y_K^T`` by plain differentiable operations (Note [double backward])."""
    y, _, _, w = _factors(v, scale, k, differentiable=True)
    dtype = product_dtype(v)
    eye = torch.eye(v.shape[-2], k, dtype=dtype, device=v.device)
    return _cast(eye - _cast(y, dtype) @ _cast(w, dtype), v.dtype)


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Return a context that turns autocast off on ``device`` where it is on.

    Note [autocast]
    ~~~~~~~~~~~~~~~
    Under :class:`torch.autocast`, matrix products would run in the autocast dtype
    (bfloat16 on the CPU, float16 on CUDA), and no triangular solve exists in it. The
    core therefore computes in the dtype of its input, with autocast off inside, as the
    half-precision rules of Note [precision] already ask for: the result has the input's
    dtype, and the surrounding autocast region goes on as before.
    """
    if torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def without_autocast(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Wrap ``fn(a, ...)`` to run with autocast off on the device of ``a`` (Note [autocast])."""

    @functools.wraps(fn)
    def wrapper(a: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if not isinstance(a, Tensor):  # the function's own checks say what is wrong
            return fn(a, *args, **kwargs)
        with autocast_off(a.device):
            return fn(a, *args, **kwargs)

    return wrapper


def wy_matrix(v: Tensor, k: int, name: str = "v") -> Tensor:
    r"""Return :math:`I_{N \times K} - Y S^{-1} Y_K^\top` for ``v`` (*, N, L) of checked type.

    Checks the values of ``v`` (:func:`~cwy_manifolds.core.checks.column_scale`, which also
    gives the column scale of Note [scaled normalisation]); ``K = N`` gives
    :func:`~cwy_manifolds.cwy`, ``K = L <= N`` :func:`~cwy_manifolds.tcwy`.
    Differentiable: reverse mode (first and second order) by a hand-derived rule (Note
    [hand-derived backward]); forward mode and :mod:`torch.func` transforms by plain
    autograd (Note [double backward]); without any autograd, the forward pass runs
    without the bookkeeping of :class:`torch.autograd.Function`.
    """
    with autocast_off(v.device):  # Note [autocast]
        if _differentiated(v):
            return _differentiable(v, column_scale(v, name), k)
        if torch.is_grad_enabled() and v.requires_grad:
            return _WY.apply(v, column_scale(v, name), k)
        return _form(v, k, name)
