"""Care of reflection-vector parameters: renormalising them, and weight decay.

The matrix depends on each column of the vectors only through its direction (Note [scale
invariance] in ``flat.py``): plain gradient steps only grow the columns, which shrinks the
effective step on their directions like ``lr / ||v||^2``, and weight decay only shrinks
them. geoopt's optimizers on :class:`~cwy_manifolds.CWY`/:class:`~cwy_manifolds.TCWY`
keep unit columns by default (Note [gauge] in ``flat.py``); for ``torch.optim``
optimizers, which know no manifold, :func:`renormalize_` resets the norms without
changing the matrix, and :func:`check_weight_decay` warns when an optimizer applies
weight decay to them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import geoopt
import torch
from torch import Tensor

from ..core import all_true, check_tensor, column_norms, has_values, work_dtype
from .cwy import CWY
from .tcwy import TCWY

__all__ = ["check_weight_decay", "renormalize_"]

# Optimizer state in gradient units scales with the column norm, squared state with its
# square (for a scale-invariant loss, the gradient at v / c is c times the one at v).
_LINEAR_STATE = ("momentum_buffer", "exp_avg")
_SQUARED_STATE = ("exp_avg_sq", "max_exp_avg_sq")


def _vector_manifold(p: Tensor) -> bool:
    manifold = getattr(p, "manifold", None)
    while isinstance(manifold, geoopt.Scaled):
        manifold = manifold.base
    return isinstance(manifold, (CWY, TCWY))


def _bad_vectors(p: Tensor, scale: Tensor, dim: int) -> ValueError | None:
    """Return the error for NaN/Inf entries or zero vectors of ``p`` (None if valid)."""
    if all_true((scale > 0) & torch.isfinite(scale)):  # one host read (NaN fails both)
        return None
    kind = "column" if dim == -2 else "row"
    bad = ~torch.isfinite(p)
    if bool(bad.any()):
        return ValueError(
            f"params must have finite entries; got {int(bad.sum())} NaN/Inf entries in shape "
            f"{tuple(p.shape)}"
        )
    return ValueError(
        f"params must have no zero {kind}s (a zero vector defines no reflection); got "
        f"{int((scale == 0).sum())} zero {kind}(s) in shape {tuple(p.shape)}"
    )


def _state(p: Tensor, optimizer: torch.optim.Optimizer | None) -> dict:
    """Return the optimizer's state for ``p``; ValueError for state it cannot rescale."""
    state = {} if optimizer is None else optimizer.state.get(p, {})
    unknown = [
        k
        for k, v in state.items()
        if isinstance(v, Tensor) and v.shape == p.shape and k not in _LINEAR_STATE + _SQUARED_STATE
    ]
    if unknown:
        raise ValueError(
            f"optimizer must have state renormalize_ can rescale; got {unknown} in "
            f"{type(optimizer).__name__}"
        )
    return state


@torch.no_grad()
def renormalize_(
    params: Tensor | Iterable[Tensor],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    dim: int = -2,
) -> None:
    r"""Scale every reflection vector to unit norm, in place.

    The matrix a point stands for does not change. With ``optimizer``, its state for these
    parameters is rescaled to match: for a vector scaled by :math:`1/c`, future gradients
    are :math:`c` times larger, so momentum and first moments (``momentum_buffer``,
    ``exp_avg``) are multiplied by :math:`c` and second moments (``exp_avg_sq``,
    ``max_exp_avg_sq``) by :math:`c^2`, as if the run had been at the new scale. Plain SGD
    grows the norms (Note [scale invariance]), shrinking the effective step
    :math:`\mathrm{lr} / \|v_i\|^2`; renormalising every few hundred steps keeps it at
    ``lr`` (see ``scripts/long_run.py`` and the user guide for measurements). geoopt's
    ``RiemannianSGD`` needs none of this: with the default gauge its steps keep unit
    columns (Note [gauge] in ``flat.py``).

    Norms are computed as the core computes them (Note [scaled normalisation] in
    ``householder.py``): each vector is divided by its largest absolute entry first, in
    the working dtype (float32 for half precision), so that huge and tiny vectors (float16
    entries of size 9000, float32 entries of size :math:`10^{20}` or :math:`10^{-25}`) are
    normalised without overflow or underflow; the optimizer state is rescaled in the
    working dtype too and stored back in its own dtype.

    Parameters
    ----------
    params : torch.Tensor or iterable of torch.Tensor
        Points of :class:`~cwy_manifolds.CWY` or :class:`~cwy_manifolds.TCWY` (geoopt
        parameters), or plain tensors of reflection vectors ``(*, N, L)``.
    optimizer : torch.optim.Optimizer, optional
        Whose state for ``params`` to rescale (torch's and geoopt's SGD and Adam
        families are known).
    dim : {-2, -1}, default -2
        The dimension along which each vector runs: -2 for vectors stored as columns
        (the points of the manifolds, and the free tensor of a tall weight in
        :mod:`cwy_manifolds.nn`), -1 for vectors stored as rows (the free tensor of a
        wide weight in :mod:`cwy_manifolds.nn`, whose vectors are its rows).

    Raises
    ------
    TypeError
        For a geoopt parameter on another manifold (rescaling a Stiefel matrix would
        change it), or a tensor that is not real floating-point.
    ValueError
        For NaN/Inf entries, a zero vector, a ``dim`` other than -2 or -1 (-1 for a
        geoopt parameter, whose vectors are columns), or optimizer state this function
        does not know how to rescale (it would silently become inconsistent).

    Examples
    --------
    >>> import geoopt, torch
    >>> import cwy_manifolds as cm
    >>> x = geoopt.ManifoldParameter(cm.TCWY().random(6, 2))
    >>> with torch.no_grad():
    ...     _ = x.mul_(3)  # columns of norm 3, same matrix
    >>> q = cm.matrix(x).detach()
    >>> cm.renormalize_(x)  # now unit columns, same matrix
    >>> torch.allclose(cm.matrix(x), q, atol=1e-6)
    True
    >>> torch.allclose(torch.linalg.vector_norm(x, dim=0), torch.ones(2))
    True
    """
    params = [params] if isinstance(params, Tensor) else list(params)
    if dim not in (-2, -1):
        raise ValueError(f"dim must be -2 (vectors as columns) or -1 (as rows); got {dim!r}")
    if optimizer is not None:
        check_weight_decay(optimizer)
    for p in params:
        if getattr(p, "manifold", None) is not None and not _vector_manifold(p):
            raise TypeError(
                f"params must be reflection vectors (CWY/TCWY points or plain tensors); got a "
                f"point of {type(p.manifold).__name__}, whose entries are the matrix itself"
            )
        check_tensor(p, "params")
        if dim == -1 and _vector_manifold(p):
            raise ValueError("dim must be -2 for CWY/TCWY points: their vectors are columns")
        if not has_values(p) or p.numel() == 0:
            continue
        state = _state(p, optimizer)
        wd = work_dtype(p.dtype)
        scale = p.abs().amax(dim=dim, keepdim=True).to(wd)  # NaN propagates
        error = _bad_vectors(p, scale, dim)
        if error is not None:
            raise error
        w = p.to(wd) / scale
        norm = column_norms(w, dim)  # in [1, sqrt(N)]
        for key in _LINEAR_STATE + _SQUARED_STATE:  # state * c (squared: c^2), c = scale norm
            t = state.get(key)
            if isinstance(t, Tensor):
                new = t.to(wd, copy=True)
                for _ in range(1 if key in _LINEAR_STATE else 2):  # no c^2: it may overflow
                    new.mul_(scale).mul_(norm)
                t.copy_(new)
        p.copy_(w.div_(norm))


def check_weight_decay(optimizer: torch.optim.Optimizer) -> bool:
    """Warn if ``optimizer`` applies weight decay to reflection vectors; return whether it does.

    Opt-in: importing the package installs no optimizer hooks. Call it once after
    building an optimizer, or have it run on the first step of one optimizer with
    ``optimizer.register_step_pre_hook(lambda opt, *_: check_weight_decay(opt))``.
    :func:`renormalize_` calls it for the optimizer it is given. Only geoopt parameters
    on :class:`~cwy_manifolds.CWY`/:class:`~cwy_manifolds.TCWY` are recognised; plain
    tensors of vectors (for instance inside a parametrization) are not.

    Examples
    --------
    >>> import geoopt, torch, warnings
    >>> import cwy_manifolds as cm
    >>> x = geoopt.ManifoldParameter(cm.CWY().random(3, 3))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     cm.check_weight_decay(torch.optim.AdamW([x], weight_decay=0.01))
    True
    >>> "weight_decay=0" in str(caught[0].message)
    True
    """
    for group in optimizer.param_groups:
        if group.get("weight_decay", 0) and any(_vector_manifold(p) for p in group["params"]):
            warnings.warn(
                f"{type(optimizer).__name__} applies weight_decay={group['weight_decay']} to "
                "CWY/TCWY reflection vectors: the matrix ignores their norms, so weight decay "
                "only shrinks them and raises the effective step size. Put these parameters "
                "in a parameter group with weight_decay=0.",
                UserWarning,
                stacklevel=2,
            )
            return True
    return False
