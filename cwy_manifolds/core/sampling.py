"""Random orthogonal matrices and the determinant sign flip, as pure tensor functions."""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import work_dtype

__all__ = ["flip_last_column", "haar"]


def haar(
    shape: tuple[int, ...],
    *,
    det: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Haar-distributed matrices with orthonormal columns, shape ``(*, N, M)``.

    The Q factor of a Gaussian matrix, with the signs of the columns fixed so that R has
    a positive diagonal (without that fix the distribution is not Haar). With ``det`` and
    a square shape, the last column is negated where the determinant has the other sign,
    which maps Haar measure on :math:`O(N)` to Haar measure on that component.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds.core import haar
    >>> q = haar((4, 4), det=-1, dtype=torch.float64)
    >>> round(float(torch.linalg.det(q)))
    -1
    """
    dtype = dtype or torch.get_default_dtype()
    g = torch.randn(shape, dtype=work_dtype(dtype), device=device, generator=generator)
    q, r = torch.linalg.qr(g)
    q = q * torch.where(torch.diagonal(r, dim1=-2, dim2=-1) < 0, -1.0, 1.0).unsqueeze(-2)
    if det is not None and shape[-1] == shape[-2] and q.numel():
        # slogdet: the LU pivots' running product overflows in float32 from N ~ 400
        wrong = (torch.linalg.slogdet(q).sign * det < 0)[..., None, None]
        q = torch.where(wrong, flip_last_column(q), q)
    return q.to(dtype)


def flip_last_column(q: Tensor) -> Tensor:
    r"""Return ``q D`` with :math:`D = \operatorname{diag}(1, \dots, 1, -1)`.

    See Note [determinant parity] in ``householder.py``.
    """
    signs = torch.ones(q.shape[-1], dtype=q.dtype, device=q.device)
    signs[-1] = -1
    return q * signs
