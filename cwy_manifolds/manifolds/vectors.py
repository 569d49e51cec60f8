"""Care of reflection-vector parameters: renormalising them, and weight decay.

The matrix depends on each column of the vectors only through its direction (Note [scale
invariance] in ``cwy.py``): plain gradient steps only grow the columns, which shrinks the
effective step on their directions like ``lr / ||v||^2``, and weight decay only shrinks
them. geoopt's optimizers on :class:`~cwy_manifolds.CWY`/:class:`~cwy_manifolds.TCWY`
keep unit columns by default (Note [gauge] in ``cwy.py``); for ``torch.optim``
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


@torch.no_grad()
def renormalize_(
    params: Tensor | Iterable[Tensor], optimizer: torch.optim.Optimizer | None = None
) -> None:
    r"""Scale every column of reflection vectors to unit norm, in place.

    The matrix a point stands for does not change. With ``optimizer``, its state for these
    parameters is rescaled to match: for a column scaled by :math:`1/c`, future gradients
    are :math:`c` times larger, so momentum and first moments (``momentum_buffer``,
    ``exp_avg``) are multiplied by :math:`c` and second moments (``exp_avg_sq``,
    ``max_exp_avg_sq``) by :math:`c^2`, as if the run had been at the new scale. Plain SGD
    grows the norms (Note [scale invariance]), shrinking the effective step
    :math:`\mathrm{lr} / \|v_i\|^2`; renormalising every few hundred steps keeps it at
    ``lr`` (see ``scripts/long_run.py`` and the user guide for measurements). geoopt's
    ``RiemannianSGD`` needs none of this: with the default gauge its steps keep unit
    columns (Note [gauge] in ``cwy.py``).

    Parameters
    ----------
    params : torch.Tensor or iterable of torch.Tensor
        Points of :class:`~cwy_manifolds.CWY` or :class:`~cwy_manifolds.TCWY` (geoopt
        parameters), or plain tensors of reflection vectors ``(*, N, L)``.
    optimizer : torch.optim.Optimizer, optional
        Whose state for ``params`` to rescale (torch's and geoopt's SGD and Adam
        families are known).

    Raises
    ------
    TypeError
        For a geoopt parameter on another manifold: rescaling a Stiefel matrix would
        change it.
    ValueError
        For a zero column, or optimizer state this function does not know how to
        rescale (it would silently become inconsistent).

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
    if optimizer is not None:
        check_weight_decay(optimizer)
    for p in params:
        if getattr(p, "manifold", None) is not None and not _vector_manifold(p):
            raise TypeError(
                f"params must be reflection vectors (CWY/TCWY points or plain tensors); got a "
                f"point of {type(p.manifold).__name__}, whose entries are the matrix itself"
            )
        norms = torch.linalg.vector_norm(p, dim=-2, keepdim=True)
        if not bool((norms > 0).all()):
            raise ValueError("params must have no zero columns; got a zero column")
        state = {} if optimizer is None else optimizer.state.get(p, {})
        unknown = [
            k
            for k, v in state.items()
            if isinstance(v, Tensor)
            and v.shape == p.shape
            and k not in _LINEAR_STATE + _SQUARED_STATE
        ]
        if unknown:
            raise ValueError(
                f"optimizer must have state renormalize_ can rescale; got {unknown} in "
                f"{type(optimizer).__name__}"
            )
        for key in _LINEAR_STATE:
            if isinstance(state.get(key), Tensor):
                state[key].mul_(norms)
        for key in _SQUARED_STATE:
            if isinstance(state.get(key), Tensor):
                state[key].mul_(norms.square())
        p.div_(norms)


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
