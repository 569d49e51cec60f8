r"""The matrix gradient of CWY: steps on the vectors that follow the matrix's gradient.

Note [matrix gradient]
~~~~~~~~~~~~~~~~~~~~~~
A Euclidean step on the vectors moves the matrix by :math:`J J^\top` times its gradient
(:math:`J` the Jacobian of :math:`V \mapsto Q`). The step scale (Note [step scale] in
``flat.py``) divides by the mean of :math:`J J^\top`, but at a generic point of
:math:`O(N)` its eigenvalues spread over two orders of magnitude, so a learning rate
that is stable for the largest is slow for the smallest. ``CWY(gradient="matrix")``
takes instead the Gauss-Newton (natural-gradient) step

.. math::

    \Delta V = (J^\top J)^+ \nabla_V f = J^\top (J J^\top)^{+2} J \, \nabla_V f,

the shortest step on the vectors whose image :math:`J \Delta V` is the Riemannian
gradient of the matrix, the one a retraction would take (equivalently: the gradient for
the metric :math:`\langle J U, J W \rangle` that the vectors inherit from the
matrix). The map stays retraction-free: only the direction of the step on :math:`V`
changes.

:math:`J J^\top` has a closed form. With unit columns :math:`y_i`, write
:math:`Q = H(y_1) \cdots H(y_L) = I - Y T Y^\top` (:math:`T = S^{-1}` upper
triangular) and :math:`R_i = H(y_{i+1}) \cdots H(y_L)`. A step :math:`b \perp y_i` of
column :math:`i` moves the matrix by
:math:`Q^\top \mathrm dQ = 2 (a_i c^\top - c\, a_i^\top)`, :math:`a_i = R_i^\top y_i`,
:math:`c = R_i^\top b`, and the :math:`a_i` are the columns of
:math:`A = \tfrac12 Y T^\top` (the same product, written :math:`I - 2 Y A^\top`). So
:math:`J_i J_i^\top \Omega = 8 (a_i a_i^\top \Omega + \Omega a_i a_i^\top)` on skew
:math:`\Omega`, and summed over the columns

.. math::

    J J^\top \Omega = 8 (M \Omega + \Omega M), \qquad M = A A^\top,

a Lyapunov operator: in the eigenbasis :math:`M = W \operatorname{diag}(\mu) W^\top`
it divides entry :math:`(k, l)` of :math:`W^\top \Omega W` by
:math:`8 (\mu_k + \mu_l)`. One symmetric eigendecomposition of :math:`M` per step
therefore inverts :math:`J J^\top` exactly. Entries with :math:`\mu_k + \mu_l` at
most :math:`10 N \epsilon` times the largest are dropped (the pseudo-inverse): with
:math:`L < N` reflections, or at a singular point such as ``origin``, the matrix cannot
move in those directions. At a Haar point the smallest sum is about
:math:`3 \cdot 10^{-4}` of the largest for :math:`N = 256` (:math:`10^{-4}` for
:math:`N = 512`), below what float32 resolves next to that cut, so the step is computed
in float64 whatever the dtype of the vectors, and returned in theirs. Columns of other
lengths :math:`r_i` scale column :math:`i` of :math:`J` by :math:`1 / r_i`, which the
step undoes: it is :math:`r_i` times the step at unit columns.

The computation never forms :math:`Q` or :math:`R_i`. The columnwise rotation
:math:`b_i \mapsto c_i = R_i^\top b_i` is an isometry of the step space, and with
:math:`R_i^\top = Q^\top P_{i-1} H(y_i)`, :math:`P_{i-1} = H(y_1) \cdots H(y_{i-1})
= I - Y_{<i} T_{<i} Y_{<i}^\top` (the leading block of :math:`T`), it is, for all
columns at once (``striu`` the strictly upper triangle),

.. math::

    C = Q^\top \bigl(B - Y\, T \operatorname{striu}(Y^\top B)\bigr), \qquad
    B = E - Y \operatorname{striu}(T^\top Y^\top E), \quad E = Q C.

In these coordinates :math:`J C = 2 (A C^\top - C A^\top)` and
:math:`J^\top \Omega = -4\, \Omega A`, so the step is
:math:`\Delta C = -4\, \Omega_1 A` with :math:`\Omega_1 = (J J^\top)^{+2} J C`:
about twenty matrix products (of sizes :math:`N` and :math:`L`) and one
eigendecomposition, against three products for a Euclidean CWY step. It pays where
:math:`J` is ill-conditioned (square CWY: on Procrustes over :math:`O(32)` it takes
QR's steps instead of 3.2 times as many, user guide). The flip :math:`D` of ``det`` is
an isometry and changes nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core import column_norms

__all__ = ["matrix_gradient", "matrix_inner"]


def _tangent(y: Tensor, u: Tensor) -> Tensor:
    """Return the part of ``u`` orthogonal to each (unit) column of ``y``."""
    return u - y * (y * u).sum(dim=-2, keepdim=True)


def _degenerate(v: Tensor) -> bool:
    """No reflections, or vectors of length 0 or 1: the matrix cannot move."""
    return v.shape[-1] == 0 or v.shape[-2] <= 1 or not v.numel()


def _wy(v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Return unit columns ``y``, their norms ``r`` and :math:`T = S^{-1}` of the WY form."""
    v = v.detach().to(torch.float64)  # Note [matrix gradient]: float64 whatever the input
    r = column_norms(v)
    y = v / r
    eye = torch.eye(y.shape[-1], dtype=y.dtype, device=y.device)
    s = torch.triu(y.mT @ y, diagonal=1) + eye / 2
    return y, r, torch.linalg.solve_triangular(s, eye.expand_as(s), upper=True)


def _rotate(y: Tensor, t: Tensor, b: Tensor) -> Tensor:
    r""":math:`c_i = R_i^\top b_i` for every column (Note [matrix gradient])."""
    g = b - y @ (t @ torch.triu(y.mT @ b, diagonal=1))
    return g - y @ (t.mT @ (y.mT @ g))


def _rotate_back(y: Tensor, t: Tensor, c: Tensor) -> Tensor:
    r""":math:`b_i = R_i c_i` for every column (Note [matrix gradient])."""
    e = c - y @ (t @ (y.mT @ c))
    return e - y @ torch.triu(t.mT @ (y.mT @ e), diagonal=1)


def _moves(y: Tensor, t: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    r""":math:`A` and the rotated step :math:`C` of the step ``u`` at unit columns."""
    return y @ t.mT / 2, _rotate(y, t, _tangent(y, u))


def matrix_gradient(v: Tensor, u: Tensor) -> Tensor:
    r"""Return the step :math:`(J^\top J)^+ u` at the vectors ``v`` (Note [matrix gradient]).

    What ``CWY(gradient="matrix").egrad2rgrad`` returns.

    Parameters
    ----------
    v : torch.Tensor, shape ``(*, N, L)``
        Reflection vectors, non-zero columns of any length.
    u : torch.Tensor, shape ``(*, N, L)``
        The Euclidean gradient on ``v``.

    Returns
    -------
    torch.Tensor
        The step, shape and dtype of ``u``, computed in float64; its image under the
        Jacobian is the Riemannian gradient of the (unflipped) product of reflections.
    """
    if _degenerate(v):
        return torch.zeros_like(u) if v.shape[-2] <= 1 else u
    y, r, t = _wy(v)
    a, c = _moves(y, t, u.to(y.dtype) * r)
    mu, w = torch.linalg.eigh(a @ a.mT)
    pair = 8 * (mu[..., :, None] + mu[..., None, :])  # eigenvalues of J J^T
    finfo = torch.finfo(y.dtype)
    cut = pair.amax(dim=(-2, -1), keepdim=True) * (10 * y.shape[-2] * finfo.eps)
    scale = torch.where(pair > cut, 1 / (pair * pair).clamp_min(finfo.tiny), 0)
    a, c = w.mT @ a, w.mT @ c  # in the eigenbasis of M
    omega = a @ c.mT
    omega = 2 * (omega - omega.mT) * scale  # (J J^T)^{+2} J C
    step = _rotate_back(y, t, -4 * (w @ (omega @ a)))
    return (_tangent(y, step) * r).to(u.dtype)


def matrix_inner(v: Tensor, u: Tensor, w: Tensor) -> Tensor:
    r"""Return :math:`\langle J u, J w \rangle` per matrix, the metric of the matrix gradient.

    What ``CWY(gradient="matrix").inner`` returns.

    Parameters
    ----------
    v : torch.Tensor, shape ``(*, N, L)``
        Reflection vectors, non-zero columns of any length.
    u, w : torch.Tensor, shape ``(*, N, L)``
        Steps on ``v``.

    Returns
    -------
    torch.Tensor
        Shape ``(*)``, the dtype of ``u``: the Frobenius inner product of the moves of the
        matrix.
    """
    if _degenerate(v):
        return (u * w).sum(dim=(-2, -1)).zero_()
    y, r, t = _wy(v)
    a, cu = _moves(y, t, u.to(y.dtype) / r)
    cw = _rotate(y, t, _tangent(y, w.to(y.dtype) / r))
    ju, jw = a @ cu.mT, a @ cw.mT
    return 4 * ((ju - ju.mT) * (jw - jw.mT)).sum(dim=(-2, -1)).to(u.dtype)
