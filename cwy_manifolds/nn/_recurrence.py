r"""The recurrence of the orthogonal RNN: a fused time loop with a hand-derived backward.

For pre-activations :math:`x_t` (the input projection, bias included except for
modReLU) and the row states :math:`h_t` (shape ``(B, N)``):

.. math::

    z_t = x_t + h_{t-1} M, \qquad h_t = \sigma(z_t), \qquad M = W_{hh}^\top,

with :math:`M` either dense, or, for :math:`W_{hh} = Q D^s` with :math:`Q` a product of
:math:`L < N` reflections, applied matrix-free from the factors of
:math:`Q^\top = I - U K` (:func:`transpose_factors`):
:math:`h M = h D^s - (h U_s) K` with :math:`U_s = D^s U`.

Note [fused recurrence]
~~~~~~~~~~~~~~~~~~~~~~~
Recorded by autograd, a time step is half a dozen small operations and as many graph
nodes; for hidden sizes in the hundreds their overhead is comparable to the arithmetic.
:class:`_Recurrence` runs the forward loop without recording into preallocated buffers,
saves the states, and back-propagates through time by hand, using that every
nonlinearity's derivative is a function of its output: :math:`1 - h^2` (tanh),
:math:`[h > 0]` (ReLU), and for modReLU :math:`\sigma_b(z) = \operatorname{sign}(z)
\max(|z| + b, 0)`: :math:`\partial h / \partial z = [h \ne 0]` and
:math:`\partial h / \partial b = \operatorname{sign}(h)`. Per step the backward pass is
one product with :math:`M^\top` (two skinny ones matrix-free); the gradients of
:math:`M` (or :math:`U_s, K`) are one large product over all steps at the end. Second
derivatives (``create_graph=True``) differentiate a recomputation with plain autograd
(:func:`loop`), and so does :func:`torch.compile`, which traces :func:`loop` into one
graph and derives its backward pass itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core import column_norms, column_scale, work_dtype

__all__ = ["RecurrentMap", "loop", "run"]


@dataclass
class RecurrentMap:
    r"""The prepared map :math:`h \mapsto h M` of a forward pass.

    ``dense`` ``(N, N)``, or ``u`` ``(N, L)``, ``k`` ``(L, N)`` and ``signs`` ``(N,)``
    (``None`` without the sign flip) for :math:`h D^s - (h U_s) K`.
    """

    dense: Tensor | None = None
    u: Tensor | None = None
    k: Tensor | None = None
    signs: Tensor | None = None


def transpose_factors(v: Tensor, name: str) -> tuple[Tensor, Tensor]:
    r"""Factors of :math:`Q^\top = I - U K` for :math:`Q` = ``cwy(v)``: ``(U, K)``.

    :math:`U` ``(*, N, L)`` holds the unit columns and :math:`K = S^{-\top} U^\top`
    ``(*, L, N)``, with :math:`S = \tfrac12 I + \operatorname{striu}(U^\top U)`, so that
    :math:`X Q = X - (X U) K` costs :math:`4 N L B` flops for ``B`` rows. Differentiable;
    checks the values of ``v`` (named ``name`` in the messages) with the core's
    ``column_scale``, whose maxima also scale the columns; computed in the working dtype,
    with autocast off, and cast back (Notes [scaled normalisation], [precision] and
    [autocast] in ``core``).
    """
    wd = work_dtype(v.dtype)
    scale = column_scale(v, name).to(wd)
    w = v.to(wd) / scale
    u = w / column_norms(w)
    eye = torch.eye(u.shape[-1], dtype=wd, device=u.device)
    s = torch.triu(u.mT @ u, diagonal=1) + eye / 2
    k = torch.linalg.solve_triangular(s.mT, u.mT, upper=False)
    return u.to(v.dtype), k.to(v.dtype)


def activation(z: Tensor, bias: Tensor | None, nonlinearity: str) -> Tensor:
    r"""Return :math:`\sigma(z)` with plain differentiable operations (modReLU: with the bias)."""
    if nonlinearity == "modrelu":
        return torch.sign(z) * torch.relu(z.abs() + bias)
    return torch.tanh(z) if nonlinearity == "tanh" else torch.relu(z)


def _apply(h: Tensor, dense: Tensor | None, u: Tensor, k: Tensor, signs: Tensor | None) -> Tensor:
    if dense is not None:
        return h @ dense
    a = h if signs is None else h * signs
    return a - (h @ u) @ k


def loop(
    xp: Tensor,
    h0: Tensor,
    bias: Tensor | None,
    dense: Tensor | None,
    u: Tensor | None,
    k: Tensor | None,
    signs: Tensor | None,
    nonlinearity: str,
) -> Tensor:
    """Return the states ``(T, B, N)`` for ``xp`` ``(T, B, N)``, with plain autograd."""
    h, states = h0, []
    for t in range(xp.shape[0]):
        h = activation(xp[t] + _apply(h, dense, u, k, signs), bias, nonlinearity)
        states.append(h)
    return torch.stack(states)


def _activate_(z: Tensor, bias: Tensor | None, nonlinearity: str, out: Tensor, tmp: Tensor) -> None:
    """``out = sigma(z)``; overwrites ``z`` and ``tmp``."""
    if nonlinearity == "tanh":
        torch.tanh(z, out=out)
    elif nonlinearity == "relu":
        torch.clamp_min(z, 0, out=out)
    else:
        torch.abs(z, out=tmp).add_(bias).clamp_min_(0)
        torch.mul(z.sign_(), tmp, out=out)


def _derivative(states: Tensor, nonlinearity: str) -> Tensor:
    r"""Return :math:`\partial h / \partial z` from the outputs (Note [fused recurrence]).

    :math:`[h > 0]` (ReLU, :math:`h \ge 0`) and :math:`[h \ne 0]` (modReLU) are read off
    :math:`\operatorname{sign}(h)`, which is several times faster than a comparison
    followed by a conversion.
    """
    if nonlinearity == "tanh":
        return 1 - states * states
    if nonlinearity == "relu":
        return states.sign()
    return states.sign().abs_()


class _Recurrence(torch.autograd.Function):
    """Forward loop without recording; back-propagation through time by hand."""

    @staticmethod
    def forward(xp, h0, bias, dense, u, k, signs, nonlinearity):
        steps, batch, n = xp.shape
        hs = xp.new_empty(steps + 1, batch, n)
        hs[0] = h0
        z, tmp = xp.new_empty(batch, n), xp.new_empty(batch, n)
        for t in range(steps):
            if dense is not None:
                torch.addmm(xp[t], hs[t], dense, out=z)
            else:
                p = hs[t] @ u
                if signs is None:
                    torch.add(xp[t], hs[t], out=z)
                else:
                    torch.addcmul(xp[t], hs[t], signs, out=z)
                z.addmm_(p, k, alpha=-1)
            _activate_(z, bias, nonlinearity, hs[t + 1], tmp)
        return hs[1:], hs

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        xp, h0, bias, dense, u, k, signs, nonlinearity = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(xp, h0, bias, dense, u, k, signs, output[1])
        ctx.nonlinearity = nonlinearity

    @staticmethod
    def backward(ctx: Any, grad: Tensor, _: Tensor | None):
        xp, h0, bias, dense, u, k, signs, hs = ctx.saved_tensors
        inputs = (xp, h0, bias, dense, u, k, signs)
        nonlinearity = ctx.nonlinearity
        if torch.is_grad_enabled():  # create_graph (or torch.func): differentiate a recomputation
            # aliases: u and k are both functions of the vectors; differentiating with
            # respect to the aliases counts only the paths through this function
            with torch.enable_grad():
                inputs = tuple(None if x is None else x.view_as(x) for x in inputs)
                wanted = [x for x, need in zip(inputs, ctx.needs_input_grad, strict=False) if need]
                states = loop(*inputs, nonlinearity)
            grads = iter(torch.autograd.grad(states, wanted, grad, create_graph=True))
            return (*(next(grads) if need else None for need in ctx.needs_input_grad[:7]), None)
        steps, batch, n = grad.shape
        states, previous = hs[1:], hs[:-1].reshape(-1, n)
        deriv = _derivative(states, nonlinearity)
        gz = torch.empty_like(states)
        qs = None if dense is not None else grad.new_empty(steps, batch, u.shape[-1])
        g = grad[-1]
        for t in range(steps - 1, -1, -1):  # g: the gradient of h_t, gz[t]: of z_t
            torch.mul(g, deriv[t], out=gz[t])
            base = grad[t - 1] if t > 0 else None
            if dense is not None:
                g = gz[t] @ dense.mT if base is None else torch.addmm(base, gz[t], dense.mT)
            else:
                torch.matmul(gz[t], k.mT, out=qs[t])
                a = gz[t] if signs is None else gz[t] * signs
                g = torch.addmm(a if base is None else a + base, qs[t], u.mT, alpha=-1)
        carry = g  # the gradient of h_0
        flat = gz.reshape(-1, n)
        need = ctx.needs_input_grad
        d_bias = (gz * states.sign()).sum((0, 1)) if bias is not None and need[2] else None
        d_dense = previous.mT @ flat if dense is not None and need[3] else None
        d_u = d_k = None
        if dense is None:
            d_u = -(previous.mT @ qs.reshape(-1, qs.shape[-1])) if need[4] else None
            d_k = -((previous @ u).mT @ flat) if need[5] else None
        return gz, carry, d_bias, d_dense, d_u, d_k, None, None


def run(
    xp: Tensor, h0: Tensor, recurrent: RecurrentMap, nonlinearity: str, bias: Tensor | None
) -> Tensor:
    """Return the states ``(T, B, N)``; ``bias`` only for modReLU (Note [fused recurrence])."""
    if xp.shape[0] == 0:
        return xp.new_empty(xp.shape)

    def cast(t: Tensor | None) -> Tensor | None:  # one dtype (autocast may lower xp's)
        return None if t is None else t.to(xp.dtype)

    args = (
        xp.contiguous(),
        cast(h0),
        cast(bias) if nonlinearity == "modrelu" else None,
        cast(recurrent.dense),
        cast(recurrent.u),
        cast(recurrent.k),
        cast(recurrent.signs),
    )
    if torch.compiler.is_compiling():
        return loop(*args, nonlinearity)
    return _Recurrence.apply(*args, nonlinearity)[0]
