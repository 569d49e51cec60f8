r"""What ``cwy_manifolds.nn`` asks the manifolds and the core, in one place.

nn does not repeat the rules of the manifolds (which matrices a manifold reaches, with
which tolerance, the determinant rule, the bound on the number of reflections): it asks
the manifold (``from_matrix``, ``random``, ``origin``, geoopt's
``check_point_on_manifold``). What the manifolds do not answer publicly yet is written
here, once, as small functions of a manifold, so that a follow-up can move each into
``manifolds/`` or ``core/`` and nn changes only this module:

=========================  =============================================================
here                       to become
=========================  =============================================================
:func:`nearest`            ``MatrixManifold.nearest(m)``: the matrix the manifold
                           reaches closest to ``m``
:func:`flips`              ``CWY.flips(n_reflections)``, public (today ``CWY._flips``)
:func:`required_det`       ``MatrixManifold.det_of(n, m)`` (``None``: either sign)
:func:`point_shape`        ``MatrixManifold.point_shape(*size)`` (the shape of a point
                           standing for a ``size`` matrix; today read off ``origin``
                           on the meta device)
:func:`check_point`        unchanged: geoopt's ``check_point_on_manifold``
:func:`transpose_factors`  ``core.cwy_factors(v)``, the prepared factors of
                           :func:`~cwy_manifolds.cwy_apply` (today rebuilt per call)
=========================  =============================================================
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core import few_reflections, flip_last_column, orthonormality_atol, work_dtype
from ..manifolds import CWY, TCWY, MatrixManifold

__all__ = [
    "check_point",
    "flips",
    "from_matrix",
    "nearest",
    "point_shape",
    "required_det",
    "transpose_factors",
]


def point_shape(manifold: MatrixManifold, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of a point of ``manifold`` standing for a matrix of ``shape`` ``(*, N, M)``.

    Asks the manifold for its ``origin`` on the meta device (no memory, no values), so
    its own checks apply (e.g. ``n_reflections`` at most :math:`N` for CWY).
    """
    return tuple(manifold.origin(*shape, device="meta").shape)


def required_det(manifold: MatrixManifold, n: int, m: int) -> int | None:
    """Return the determinant of the square matrices ``manifold`` reaches (None: any)."""
    if n != m:
        return None
    if isinstance(manifold, CWY):
        return manifold.det
    if isinstance(manifold, TCWY):
        return (-1) ** n  # Note [determinant parity] in core/householder.py
    return None


def flips(manifold: CWY, count: int) -> bool:
    """Whether CWY applies the sign flip :math:`D` after ``count`` reflections."""
    return (-1) ** count != manifold.det


def nearest(manifold: MatrixManifold, a: Tensor, name: str) -> Tensor:
    r"""Return the matrix ``manifold`` reaches closest to the tall ``a`` ``(*, N, M)``.

    With the SVD :math:`A = P \Sigma R^\top`: the polar factor :math:`P R^\top`, with the
    last singular direction reversed where the determinant must change. For CWY with
    :math:`L < N` reflections, the greedy Cartan-Dieudonne construction of
    :func:`~cwy_manifolds.core.few_reflections` (Note [fewer reflections]): close, not
    nearest. Detached; the dtype of ``a``.

    Raises
    ------
    ValueError
        If ``a`` has NaN/Inf entries (``name`` in the message).
    """
    a = a.detach()
    bad = ~torch.isfinite(a)
    if bool(bad.any()):
        raise ValueError(
            f"{name} must have finite entries to be made orthogonal; got {int(bad.sum())} "
            f"NaN/Inf entries in shape {tuple(a.shape)}"
        )
    n, m = a.shape[-2:]
    p, _, rh = torch.linalg.svd(a.to(work_dtype(a.dtype)), full_matrices=False)
    det = required_det(manifold, n, m)
    if det is not None and n > 0:
        # singular values descend: reverse the last direction; slogdet, as det overflows
        wrong = (torch.linalg.slogdet(p @ rh).sign * det < 0)[..., None, None]
        p = torch.where(wrong, flip_last_column(p), p)
    q = p @ rh
    count = point_shape(manifold, a.shape)[-1]
    if isinstance(manifold, CWY) and count < n:
        target = flip_last_column(q) if flips(manifold, count) else q
        v, _ = few_reflections(target, count, orthonormality_atol(n, a.dtype))
        q = manifold.matrix(v)
    return q.to(a.dtype)


def from_matrix(manifold: MatrixManifold, a: Tensor, name: str, *, transposed: bool) -> Tensor:
    """Return ``manifold.from_matrix(a)`` as a plain tensor; errors name the weight.

    ``a`` is the tall matrix of the weight ``name`` (its transpose when ``transposed``).
    """
    try:
        return manifold.from_matrix(a).as_subclass(Tensor)
    except ValueError as err:
        lines = "rows" if transposed else "columns"
        m = f"{name}.mT" if transposed else name
        raise ValueError(
            f"{name} cannot be assigned: it must have orthonormal {lines} and be of the kind "
            f"{manifold!r} reaches; from_matrix(m = {m}) refused it: {err}. Assign "
            f"cwy_manifolds.nn.orthogonalize({name}, ...) instead, or register with "
            "assign='project' to take the nearest such matrix"
        ) from err


def check_point(manifold: MatrixManifold, v: Tensor, name: str) -> None:
    """Raise ValueError, naming ``name``, if ``v`` is not a valid point of ``manifold``."""
    ok, reason = manifold.check_point_on_manifold(v.detach(), explain=True)
    if not ok:
        raise ValueError(
            f"{name}'s reflection vectors (parametrizations.{name}.original) must be a "
            f"point of {manifold!r}; got: {reason}"
        )


def transpose_factors(v: Tensor) -> tuple[Tensor, Tensor]:
    r"""Factors of :math:`Q^\top = I - U K` for :math:`Q` = ``cwy(v)``: ``(U, K)``.

    :math:`U` ``(*, N, L)`` holds the unit columns and :math:`K = S^{-\top} U^\top`
    ``(*, L, N)``, with :math:`S = \tfrac12 I + \operatorname{striu}(U^\top U)`, so that
    :math:`X Q = X - (X U) K` costs :math:`4 N L B` flops for ``B`` rows. Differentiable,
    unchecked (check ``v`` first), computed in the working dtype and cast back (Notes
    [scaled normalisation] and [precision] in ``core/householder.py``).
    """
    wd = work_dtype(v.dtype)
    scale = v.detach().abs().amax(dim=-2, keepdim=True).to(wd)
    w = v.to(wd) / scale
    u = w / torch.linalg.vector_norm(w, dim=-2, keepdim=True)
    eye = torch.eye(u.shape[-1], dtype=wd, device=u.device)
    s = torch.triu(u.mT @ u, diagonal=1) + eye / 2
    k = torch.linalg.solve_triangular(s.mT, u.mT, upper=False)
    return u.to(v.dtype), k.to(v.dtype)
