r"""Retraction-based Stiefel manifolds: points are the matrices themselves.

:math:`\mathrm{St}(N, M) = \{X \in \mathbb{R}^{N \times M} : X^\top X = I\}`, with the
Euclidean (embedded) metric :math:`\langle U, W \rangle = \operatorname{tr}(U^\top W)`.
The tangent space at :math:`X` is :math:`\{U : X^\top U + U^\top X = 0\}`, the
projection onto it :math:`U - X \operatorname{sym}(X^\top U)` (also the Riemannian
gradient), and ``transp`` projects onto the tangent space at the new point. The three
classes differ in their retraction only:

========================  ==========================================  ===================
class                     retraction                                  cost (flops)
========================  ==========================================  ===================
:class:`CayleyStiefel`    Cayley transform, low-rank form             ~ 22 N M^2 + 2M solve
:class:`ExpStiefel`       exponential map (geodesic)                  ~ 18 N M^2 + expm(2M)
:class:`QRStiefel`        Q factor of :math:`X + U`                   ~ 4 N M^2
========================  ==========================================  ===================

``expmap`` is the true exponential map (the geodesic) for all three, never an alias of
the retraction. ``component_inner`` is geoopt's default, one scalar per matrix, so
``RiemannianAdam`` adapts one step size per matrix (unlike :class:`~cwy_manifolds.CWY`,
whose ``component_inner`` is elementwise). Half-precision points are computed in
float32 and returned in their dtype.

For square shapes, ``det`` selects a component of :math:`O(N)` (Note [components] in
``_base.py``): the default ``None`` is all of :math:`O(N)`, where ``random`` lands in
either component; with ``det=+1`` it lands in :math:`SO(N)`, ``origin`` is :math:`I`, and
``from_matrix`` refuses determinant -1. Every retraction here is continuous in the step,
so an optimizer stays in the component it starts in. ``retr``, ``expmap`` and the
transports broadcast ``x`` against ``u`` (and ``v``) like elementwise operations, and the
Cayley and exponential retractions keep their results on the manifold for any step
size and any number of steps (Note [drift] in ``stiefel_math.py``).
"""

from __future__ import annotations

import torch
from geoopt import ManifoldTensor
from torch import Tensor

from ..core import check_orthonormal, flip_last_column, haar, work_dtype
from ._base import (
    Device,
    Generator,
    MatrixManifold,
    Shape,
    any_true,
    check_det,
    check_finite,
    polar,
    wrong_component,
)
from .stiefel_math import broadcast_steps, exp_geodesic, settle, sym

__all__ = ["CayleyStiefel", "ExpStiefel", "QRStiefel"]


class _Stiefel(MatrixManifold):
    """Shared geometry of the retraction-based Stiefel manifolds (see module doc)."""

    reversible = False

    def __init__(self, *, det: int | None = None) -> None:
        super().__init__()
        self.det = check_det(det, type(self).__name__, allow_none=True)

    def extra_repr(self) -> str:
        """Describe the options in the repr."""
        return f"det={'None' if self.det is None else f'{self.det:+d}'}"

    def _restricts(self, shape: tuple[int, ...]) -> bool:
        return self.det is not None and shape[-1] == shape[-2]

    def _check_point_on_manifold(
        self, x: Tensor, *, atol: float = 1e-5, rtol: float = 1e-5
    ) -> tuple[bool, str | None]:
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        resid = (x.mT @ x - eye).abs().amax() if x.numel() else x.new_zeros(())
        if not resid <= atol:
            return False, f"X^T X != I: max |X^T X - I| = {float(resid):.2e} > atol = {atol:.1e}"
        return True, None

    def _check_vector_on_tangent(
        self, x: Tensor, u: Tensor, *, atol: float = 1e-5, rtol: float = 1e-5
    ) -> tuple[bool, str | None]:
        xtu = x.mT @ u
        resid = (xtu + xtu.mT).abs().amax() if xtu.numel() else xtu.new_zeros(())
        if not resid <= atol:
            return False, f"X^T U + U^T X != 0: max = {float(resid):.2e} > atol = {atol:.1e}"
        return True, None

    def inner(
        self, x: Tensor, u: Tensor, v: Tensor | None = None, *, keepdim: bool = False
    ) -> Tensor:
        r"""Euclidean inner product :math:`\operatorname{tr}(U^\top V)` (``v = u`` if omitted)."""
        v = u if v is None else v
        return (u * v).sum(dim=(-2, -1), keepdim=keepdim)

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        r"""Project onto the tangent space: :math:`U - X \operatorname{sym}(X^\top U)`."""
        return u - x @ sym(x.mT @ u)

    def egrad2rgrad(self, x: Tensor, u: Tensor) -> Tensor:
        """Riemannian gradient of the embedded metric: the tangent projection."""
        return self.proju(x, u)

    def projx(self, x: Tensor) -> Tensor:
        r"""Return the nearest point in Frobenius norm, the polar factor :math:`P Q^\top` (SVD).

        Raises ValueError for NaN/Inf entries, which have no nearest point.
        """
        check_finite(x, "x", "to be projected onto the manifold")
        return polar(x).to(x.dtype)

    def transp(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """Transport by projection onto the tangent space at ``y``."""
        return self.proju(y, v)

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        """Exponential map of the embedded metric (the geodesic), :math:`O(N M^2)`.

        ``u`` is first projected onto the tangent space: the geodesic formula leaves the
        manifold for non-tangent vectors, and geoopt's ``RiemannianSGD`` passes one on
        its first momentum step (its buffer starts from the Euclidean gradient). Any
        step size: the result is kept on the manifold (Note [drift]).
        """
        dtype = x.dtype
        x, u = broadcast_steps(x.to(work_dtype(dtype)), u.to(work_dtype(dtype)))
        return settle(exp_geodesic(x, self.proju(x, u))).to(dtype)

    def matrix(self, x: Tensor) -> Tensor:
        """Return ``x``: points are the Stiefel matrices themselves."""
        return x

    def from_matrix(self, m: Tensor, *, atol: float | None = None) -> ManifoldTensor:
        """Return a copy of ``m`` as a point, after checking its columns are orthonormal.

        Raises
        ------
        ValueError
            If ``m`` does not have orthonormal columns within ``atol``, or is square with
            determinant ``-det`` (when ``det`` is set).
        """
        m = check_orthonormal(m, "m", atol)
        if self._restricts(m.shape) and m.shape[-1]:
            wrong = torch.linalg.slogdet(m.detach().to(work_dtype(m.dtype))).sign * self.det < 0
            if any_true(wrong):
                hint = " (det=None: both)"
                raise wrong_component(type(self).__name__, self.det, wrong, hint)
        return self._point(m.detach().clone(memory_format=torch.contiguous_format))

    def _random(self, shape: Shape, dtype: torch.dtype, device: Device, gen: Generator) -> Tensor:
        return haar(shape, det=self.det, dtype=dtype, device=device, generator=gen)

    def _origin(self, shape: Shape, dtype: torch.dtype, device: Device) -> Tensor:
        eye = torch.eye(shape[-2], shape[-1], dtype=dtype, device=device).expand(shape)
        return flip_last_column(eye) if self._restricts(shape) and self.det == -1 else eye


class CayleyStiefel(_Stiefel):
    r"""Stiefel manifold with the Cayley retraction in low-rank form.

    .. math::

        R_X(U) = \Bigl(I - \tfrac12 A\Bigr)^{-1} \Bigl(I + \tfrac12 A\Bigr) X, \qquad
        A = P U X^\top - X U^\top P, \quad P = I - \tfrac12 X X^\top.

    :math:`A` is skew-symmetric, so the Cayley transform
    :math:`C = (I - A/2)^{-1}(I + A/2)` is orthogonal and :math:`R_X(U)` has orthonormal
    columns for any :math:`U`. For tangent :math:`U`, :math:`A X = U`, so the retraction
    is first-order correct: :math:`\frac{d}{dt} R_X(tU)|_{t=0} = U`. (geoopt's
    ``CanonicalStiefel`` uses :math:`A = U X^\top - X U^\top`, whose derivative at 0 is
    :math:`U + X X^\top U`, twice the step on square matrices.)

    :math:`A = L R^\top` with :math:`L = [PU, X]` and :math:`R = [X, -PU]`
    (:math:`N \times 2M`), and by the Woodbury identity
    :math:`C Y = Y + L (I - \tfrac12 R^\top L)^{-1} R^\top Y`: one :math:`2M \times 2M`
    solve and :math:`O(N M^2)` flops, never an :math:`N \times N` matrix. When
    :math:`2M \ge N` (square matrices, for instance) the :math:`N \times N` system
    :math:`(I - A/2) Z = (I + A/2) Y` is the smaller one and is solved instead.

    Momentum is transported by the same rotation, :math:`V \mapsto C V`
    (``retr_transp``, ``transp_follow_retr``), an isometry onto the tangent space at the
    new point; with it the retraction is reversible:
    :math:`R_{R_X(U)}(-C U) = X`. ``transp(x, y, v)``, which does not know :math:`U`,
    projects.

    Parameters
    ----------
    det : {+1, -1, None}, default ``None``
        For square shapes: the component of :math:`O(N)` that ``random``, ``origin`` and
        ``from_matrix`` use, +1 for :math:`SO(N)`; None for both (Note [components]).

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds import CayleyStiefel
    >>> st = CayleyStiefel()
    >>> x = st.random(100, 4, dtype=torch.float64)
    >>> y = st.retr(x, st.proju(x, torch.randn(100, 4, dtype=torch.float64)))
    >>> st.check_point_on_manifold(y)
    True
    """

    name = "CayleyStiefel"
    reversible = True

    @staticmethod
    def _cayley(x: Tensor, u: Tensor, y: Tensor) -> Tensor:
        """Apply :math:`C` (see class doc) to ``y``, in the working dtype."""
        dtype = work_dtype(x.dtype)
        x, u, y = x.to(dtype), u.to(dtype), y.to(dtype)
        pu = u - x @ (x.mT @ u) / 2
        left, right = torch.cat([pu, x], dim=-1), torch.cat([x, -pu], dim=-1)
        n, rank = left.shape[-2:]
        if rank >= n:  # 2M >= N: the N x N system is the smaller one
            a = left @ right.mT
            eye = torch.eye(n, dtype=dtype, device=x.device)
            return torch.linalg.solve(eye - a / 2, y + a @ y / 2)
        eye = torch.eye(rank, dtype=dtype, device=x.device)
        return y + left @ torch.linalg.solve(eye - right.mT @ left / 2, right.mT @ y)

    def retr(self, x: Tensor, u: Tensor) -> Tensor:
        """Cayley retraction in low-rank form (class doc), kept on the manifold (Note [drift])."""
        x, u = broadcast_steps(x, u)
        return settle(self._cayley(x, u, x)).to(x.dtype)

    def retr_transp(self, x: Tensor, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Retract ``x`` along ``u`` and transport ``v`` by the same rotation, at once."""
        x, u, v = broadcast_steps(x, u, v)
        m = x.shape[-1]
        out = self._cayley(x, u, torch.cat([x, v], dim=-1))
        return settle(out[..., :m]).to(x.dtype), out[..., m:].to(v.dtype)

    def transp_follow_retr(self, x: Tensor, u: Tensor, v: Tensor) -> Tensor:
        """Transport ``v`` by the rotation of the Cayley retraction along ``u``."""
        x, u, v = broadcast_steps(x, u, v)
        return self._cayley(x, u, v).to(v.dtype)


class ExpStiefel(_Stiefel):
    r"""Stiefel manifold whose retraction is the exponential map (geodesics).

    .. math::

        R_X(U) = [X, Q] \exp\begin{bmatrix} 2A & -R^\top \\ R & 0 \end{bmatrix}
        \begin{bmatrix} I \\ 0 \end{bmatrix} \exp(-A), \qquad A = X^\top U, \
        Q R = U - X A,

    the geodesic of the embedded metric (Edelman, Arias, Smith, SIAM J. Matrix Anal.
    Appl. 1998), in the balanced form of Zimmermann and Hüper (2022), whose
    exponentials are of skew-symmetric matrices: two matrix exponentials of size
    :math:`2M` and :math:`M`, one thin QR, :math:`O(N M^2)` flops. Exact in exact
    arithmetic; in floating point one step is off the manifold by about
    :math:`\varepsilon \|U\|_F`; where the result is off by more than a size-aware
    tolerance (after a huge step, or after many steps) it is replaced by its polar
    factor (Note [drift]): the iterates stay on the manifold for any step size and any
    number of steps. Transport projects.

    Parameters
    ----------
    det : {+1, -1, None}, default ``None``
        For square shapes: the component of :math:`O(N)` that ``random``, ``origin`` and
        ``from_matrix`` use, +1 for :math:`SO(N)`; None for both (Note [components]).

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds import ExpStiefel
    >>> st = ExpStiefel()
    >>> x = st.random(10, 3, dtype=torch.float64)
    >>> st.check_point_on_manifold(st.retr(x, st.proju(x, torch.randn(10, 3, dtype=torch.float64))))
    True
    """

    name = "ExpStiefel"

    def retr(self, x: Tensor, u: Tensor) -> Tensor:
        """Retract by the exponential map."""
        return self.expmap(x, u)


class QRStiefel(_Stiefel):
    r"""Stiefel manifold with the QR retraction.

    .. math::

        R_X(U) = \operatorname{qf}(X + U),

    the Q factor of a thin QR decomposition with the signs fixed so that the R factor
    has a positive diagonal (which makes the map smooth and first-order correct).
    About :math:`4 N M^2` flops (Householder QR, LAPACK). Transport projects.

    Parameters
    ----------
    det : {+1, -1, None}, default ``None``
        For square shapes: the component of :math:`O(N)` that ``random``, ``origin`` and
        ``from_matrix`` use, +1 for :math:`SO(N)`; None for both (Note [components]).

    Examples
    --------
    >>> import torch
    >>> from cwy_manifolds import QRStiefel
    >>> st = QRStiefel()
    >>> x = st.random(10, 3, dtype=torch.float64)
    >>> st.check_point_on_manifold(st.retr(x, st.proju(x, torch.randn(10, 3, dtype=torch.float64))))
    True
    """

    name = "QRStiefel"

    def retr(self, x: Tensor, u: Tensor) -> Tensor:
        """Q factor of ``x + u`` with a positive diagonal of R."""
        q, r = torch.linalg.qr((x + u).to(work_dtype(x.dtype)))
        signs = torch.where(torch.diagonal(r, dim1=-2, dim2=-1) < 0, -1.0, 1.0)
        return (q * signs.unsqueeze(-2).to(q.dtype)).to(x.dtype)
