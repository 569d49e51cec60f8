r"""The computations behind the retraction-based Stiefel manifolds (``stiefel.py``).

Note [drift]
~~~~~~~~~~~~
The Cayley and exponential retractions multiply :math:`X` by an orthogonal matrix that is
orthogonal only to rounding, so the columns of the iterates drift off orthonormality,
by a few :math:`\varepsilon` per step, and further for large steps: the matrix
exponential's error grows with :math:`\|U\|`. (The QR retraction returns the Q factor of
a Householder QR, orthonormal to rounding whatever its input: it does not drift.) So
their ``retr`` and ``retr_transp`` measure :math:`r = \max |Y^\top Y - I|` of the result
(:math:`2 N M^2` flops and one host read, a synchronisation on a GPU) and, where
:math:`r` exceeds ``drift_atol``, :math:`\max(32, 8 \sqrt{N})\, \varepsilon_w`
(:math:`\varepsilon_w` the machine epsilon of the working dtype, float32 for half
precision), replace :math:`Y` by its polar factor, the nearest matrix with orthonormal
columns (one SVD). That bound is 2 to 8 times the residual of a freshly
orthonormalised matrix (measured up to :math:`N = 1024`). In float32 runs of the drift
benchmark (``scripts/long_run.py --drift``, 3000 steps) the fix ran from never (Cayley,
:math:`64 \times 8`) to once every 10 steps (exponential map, :math:`32 \times 32`,
RiemannianAdam), and at once after any step that went far off; the iterates stay
within the bound for any number of steps (figures in the user guide). geoopt's
``stabilize=k`` option (a ``projx`` every :math:`k` steps) is no longer needed for these
two, and does no harm.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core import all_true, has_values, work_dtype
from ._base import polar

__all__ = ["broadcast_steps", "drift_atol", "exp_geodesic", "matrix_exp", "settle", "sym"]


def drift_atol(n: int, dtype: torch.dtype) -> float:
    r"""Largest :math:`\max |Y^\top Y - I|` a retraction result keeps (Note [drift]).

    :math:`\max(32, 8 \sqrt{N})\, \varepsilon_w`, ``n`` the number of rows.
    """
    return max(32.0, 8.0 * math.sqrt(max(n, 1))) * torch.finfo(work_dtype(dtype)).eps


def settle(y: Tensor) -> Tensor:
    """Return ``y`` with the polar factor where it drifted past :func:`drift_atol` (Note)."""
    if not has_values(y) or y.numel() == 0:
        return y
    eye = torch.eye(y.shape[-1], dtype=y.dtype, device=y.device)
    drift = (y.mT @ y - eye).abs().amax(dim=(-2, -1))
    bad = drift > drift_atol(y.shape[-2], y.dtype)  # NaN stays NaN: no nearest point
    if all_true(~bad):
        return y
    return torch.where(bad[..., None, None], polar(y).to(y.dtype), y)


def broadcast_steps(x: Tensor, *vectors: Tensor) -> tuple[Tensor, ...]:
    """``x`` and the tangent vectors broadcast to one shape; ValueError where they cannot."""
    try:
        return torch.broadcast_tensors(x, *vectors)
    except RuntimeError:
        shapes = ", ".join(str(tuple(t.shape)) for t in vectors)
        raise ValueError(
            f"u must have a shape that broadcasts with x ({tuple(x.shape)}): a batch of "
            f"steps for a batch of points; got {shapes}"
        ) from None


def sym(a: Tensor) -> Tensor:
    """Return the symmetric part of ``a``."""
    return (a + a.mT) / 2


def matrix_exp(a: Tensor) -> Tensor:
    """:func:`torch.linalg.matrix_exp`, avoiding its single-matrix path.

    For one matrix, torch (2.13, 2.14) takes a degree-8 Taylor step with a wrong
    coefficient (pytorch/pytorch#196592): errors up to 1e-11 in float64 and 30 eps in
    float32 for 1-norms around 0.01 to 0.5, typical of optimizer steps. The batched path
    is accurate, so a single matrix goes through it as a batch of two.
    """
    if a.shape[:-2].numel() == 1:
        return torch.linalg.matrix_exp(a.expand(2, *a.shape[-2:]))[0].reshape(a.shape)
    return torch.linalg.matrix_exp(a)


def exp_geodesic(x: Tensor, u: Tensor) -> Tensor:
    r"""Geodesic of the embedded metric, for tangent ``u``, in a balanced form.

    With :math:`A = X^\top U` (skew-symmetric) and a QR decomposition
    :math:`Q R = U - X A` of the normal part (Zimmermann and Hüper, SIAM J. Matrix Anal.
    Appl. 2022, the metric parameter :math:`\alpha = 0`):

    .. math::

        \operatorname{Exp}_X(U) = [X, Q] \exp\begin{bmatrix} 2A & -R^\top \\ R & 0
        \end{bmatrix} \begin{bmatrix} I \\ 0 \end{bmatrix} \exp(-A).

    The same curve as Edelman, Arias and Smith's
    :math:`[X, U] \exp\begin{bmatrix} A & -U^\top U \\ I & A \end{bmatrix}
    [\exp(-A); 0]` (SIAM J. Matrix Anal. Appl. 1998, eq. 2.45), but both exponentials
    are of skew-symmetric matrices, which are orthogonal and computed with an error that
    grows like :math:`\varepsilon \|U\|`, not :math:`\varepsilon \|U\|^2`, and never
    overflow (the unbalanced block reached NaN for :math:`\|U\| \approx 10^3` in float32).
    """
    a = x.mT @ u
    q, r = torch.linalg.qr(u - x @ a)
    zero = torch.zeros_like(a)
    block = torch.cat([torch.cat([2 * a, -r.mT], dim=-1), torch.cat([r, zero], dim=-1)], dim=-2)
    first = matrix_exp(block)[..., :, : a.shape[-1]]
    return torch.cat([x, q], dim=-1) @ (first @ matrix_exp(-a))
