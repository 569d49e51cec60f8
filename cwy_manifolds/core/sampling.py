r"""Random orthogonal matrices and the determinant sign flip, as pure tensor functions.

Note [Haar vectors]
~~~~~~~~~~~~~~~~~~~
The inverse maps (``inverse.py``) send a matrix :math:`A` to the vectors of a Householder
QR in which step :math:`i` maps the active column :math:`x_i` (rows :math:`i..N`) to
:math:`+\|x_i\| e_i`, with :math:`v_i = x_i - \|x_i\| e_i`. For a Haar-distributed
:math:`A` the first column is uniform on the sphere, and what remains after the first
reflection is again Haar-distributed, one size smaller, independently (Stewart, SIAM J.
Numer. Anal. 17, 1980). So the vectors of a Haar matrix can be drawn directly: for
:math:`i = 1, \dots, M` take :math:`x_i \sim N(0, I_{N - i + 1})` in rows :math:`i..N`,
independently, and :math:`v_i = x_i - \|x_i\| e_i` (the first entry computed as
:math:`-\|x_{\mathrm{rest}}\|^2 / (x_1 + \|x_i\|)` when :math:`x_1 > 0`, Note [exact
edge cases] in ``inverse.py``); for a square shape the last vector is :math:`e_N`, the
one that sends the last entry :math:`-1` to :math:`+1` (``cwy_inverse`` returns
:math:`-e_N`, the same reflection). Then
:math:`H(v_1) \cdots H(v_M) [I; 0]` is Haar-distributed on :math:`\mathrm{St}(N, M)`,
and for :math:`M = N` the product :math:`H(v_1) \cdots H(v_N)` is Haar-distributed on
the component :math:`\det = (-1)^N` of :math:`O(N)` (the other component is that times
the sign flip :math:`D`, which maps Haar measure to Haar measure). One Gaussian draw of
:math:`N M` numbers and a few column reductions: :math:`O(N M)` work, no QR and no loop,
where drawing the matrix and inverting it costs :math:`O(N M^2)` and a loop of :math:`M`
steps. (:math:`v_i = 0` has probability zero; it is replaced by :math:`e_N`.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from .precision import work_dtype

__all__ = ["flip_last_column", "haar", "haar_vectors"]


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
    which maps Haar measure on :math:`O(N)` to Haar measure on that component. The
    result is contiguous.

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
    return q.to(dtype).contiguous()


def haar_vectors(
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Draw the unit reflection vectors ``(*, N, M)`` of a Haar matrix (Note [Haar vectors]).

    ``tcwy(v)`` is Haar-distributed on :math:`\mathrm{St}(N, M)`; for :math:`M = N`,
    ``cwy(v)`` is Haar-distributed on the component :math:`\det = (-1)^N` of
    :math:`O(N)` (multiply by :math:`D`, :func:`flip_last_column`, for the other). The
    vectors are those that :func:`~cwy_manifolds.cwy_inverse` and
    :func:`~cwy_manifolds.tcwy_inverse` would return for that matrix: column :math:`i`
    is zero above row :math:`i`. :math:`O(N M)` work, one Gaussian draw. Contiguous.

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds.core import haar_vectors, tcwy
    >>> w = tcwy(haar_vectors((6, 2), dtype=torch.float64))
    >>> torch.allclose(w.T @ w, torch.eye(2, dtype=torch.float64))
    True
    """
    dtype = dtype or torch.get_default_dtype()
    n, m = shape[-2:]
    x = torch.randn(shape, dtype=work_dtype(dtype), device=device, generator=generator)
    head = torch.diagonal(x, dim1=-2, dim2=-1)  # (*, M): x_i is rows i..N of column i
    v = torch.tril(x, diagonal=-1)
    rest_sq = v.square().sum(dim=-2)
    norm = torch.sqrt(head.square() + rest_sq)
    # Note [exact edge cases] in inverse.py: no cancellation in head - norm when head > 0
    v.diagonal(dim1=-2, dim2=-1).copy_(torch.where(head > 0, -rest_sq / (head + norm), head - norm))
    length = torch.linalg.vector_norm(v, dim=-2, keepdim=True)
    e_last = torch.zeros(n, 1, dtype=v.dtype, device=v.device)
    e_last[-1:] = 1
    v = torch.where(length > 0, v / length, e_last)
    if m == n and n:  # the last vector sends the entry -1 to +1 (Note [Haar vectors])
        v[..., :, -1] = -e_last[:, 0]
    return v.to(dtype).contiguous()


def flip_last_column(q: Tensor) -> Tensor:
    r"""Return ``q D`` with :math:`D = \operatorname{diag}(1, \dots, 1, -1)`.

    See Note [determinant parity] in ``householder.py``. A matrix without columns is
    returned as it is.
    """
    if q.shape[-1] == 0:
        return q
    signs = torch.ones(q.shape[-1], dtype=q.dtype, device=q.device)
    signs[-1] = -1
    return q * signs
