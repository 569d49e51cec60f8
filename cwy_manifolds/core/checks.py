"""Input validation shared by the functional core.

Note [value checks]
~~~~~~~~~~~~~~~~~~~
Shape and dtype checks read only metadata and are always on. Value checks (NaN/Inf
entries, zero columns) must look at the data: they reduce each column to its largest
absolute entry, which the core needs anyway to normalise safely (see Note [scaled
normalisation] in ``householder.py``), and read one boolean back to the host. On the CPU
that costs nothing extra; on an accelerator it is one host-device synchronisation per
call. Value checks are on by default, because a zero column would otherwise give a
silent NaN. :func:`set_value_checks` turns them off (globally, or inside a ``with``
block) for hot loops whose inputs are known to be valid; with checks off, invalid input
gives NaN output instead of an error.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_value_checks = True


class set_value_checks:  # noqa: N801 (lower case, like torch.set_grad_enabled)
    """Turn the value checks of the functional core on or off.

    Works as a function call (the setting stays) and as a context manager (the previous
    setting comes back on exit), like :class:`torch.set_grad_enabled`. The setting is
    global to the process, not per thread.

    Shape and dtype checks always run. Value checks (NaN/Inf entries, zero columns) cost
    one host-device synchronisation per call on an accelerator; with them off, invalid
    input gives NaN output instead of an error. See Note [value checks] in
    ``cwy_manifolds/_checks.py``.

    Parameters
    ----------
    enabled : bool
        Whether :func:`~cwy_manifolds.cwy` and the other core functions check values.

    Examples
    --------
    >>> import torch, cwy_manifolds
    >>> v = torch.randn(8, 8)
    >>> with cwy_manifolds.set_value_checks(False):
    ...     q = cwy_manifolds.cwy(v)
    >>> cwy_manifolds.value_checks_enabled()
    True
    """

    def __init__(self, enabled: bool) -> None:
        global _value_checks
        self._previous = _value_checks
        _value_checks = bool(enabled)

    def __enter__(self) -> set_value_checks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _value_checks
        _value_checks = self._previous


def value_checks_enabled() -> bool:
    """Return whether the functional core checks values (see :class:`set_value_checks`)."""
    return _value_checks


def check_tensor(x: object, name: str, *, min_ndim: int = 2) -> Tensor:
    """Check type, dtype and rank of ``x``; return it unchanged."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(
            f"{name} must be a real floating-point tensor; got {x.dtype} (complex dtypes "
            "are not supported: the reflections here are real orthogonal matrices)"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor; got {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions (..., rows, columns); "
            f"got shape {tuple(x.shape)}"
        )
    return x


def check_same_kind(x: Tensor, name: str, ref: Tensor, ref_name: str) -> None:
    """Check that ``x`` has the dtype and device of ``ref``."""
    if x.dtype != ref.dtype:
        raise TypeError(f"{name} must have the dtype of {ref_name} ({ref.dtype}); got {x.dtype}")
    if x.device != ref.device:
        raise ValueError(
            f"{name} must be on the device of {ref_name} ({ref.device}); got {x.device}"
        )


#: Inputs with this many entries or more get no temporary of their size in column_scale.
_LARGE = 1 << 16


def column_scale(
    v: Tensor, name: str, extra: Tensor | None = None, extra_name: str = "x"
) -> Tensor:
    """Largest absolute entry of each column of ``v``, shape ``(..., 1, L)``, detached.

    When value checks are on, raise ValueError if ``v`` has a non-finite entry or a
    zero column, or if ``extra`` (another argument of the same call) has a non-finite
    entry. One host-device synchronisation covers all of it.
    """
    if v.shape[-2] == 0:  # vectors in R^0 are zero vectors
        scale = v.new_zeros(*v.shape[:-2], 1, v.shape[-1])
    else:
        v = v.detach()  # NaN propagates through amax, amin and maximum
        if v.numel() < _LARGE:
            scale = v.abs().amax(dim=-2, keepdim=True)
        else:  # two reductions, no |v| temporary (Note [memory layout] in _autograd.py)
            scale = torch.maximum(v.amax(dim=-2, keepdim=True), v.amin(dim=-2, keepdim=True).neg_())
    if not _value_checks:
        return scale
    ok = torch.isfinite(scale).all() & (scale > 0).all()
    if extra is not None:
        ok = ok & torch.isfinite(extra.detach()).all()
    if not bool(ok):
        _raise_value_error(v, name, scale, extra, extra_name)
    return scale


def _raise_value_error(
    v: Tensor, name: str, scale: Tensor, extra: Tensor | None, extra_name: str
) -> None:
    bad = ~torch.isfinite(v.detach())
    if bad.any():
        raise ValueError(
            f"{name} must have finite entries; got {int(bad.sum())} NaN/Inf entries "
            f"in shape {tuple(v.shape)}"
        )
    zero = (scale == 0).squeeze(-2)
    if zero.any():
        first = tuple(int(i) for i in zero.nonzero()[0])
        where = f"column {first[-1]}" + (f" of batch item {first[:-1]}" if first[:-1] else "")
        raise ValueError(
            f"{name} must have no zero columns (a zero vector defines no reflection); "
            f"got {int(zero.sum())} zero column(s) in shape {tuple(v.shape)}, first: {where}"
        )
    assert extra is not None
    raise ValueError(
        f"{extra_name} must have finite entries; got "
        f"{int((~torch.isfinite(extra.detach())).sum())} NaN/Inf entries "
        f"in shape {tuple(extra.shape)}"
    )


def orthonormality_atol(n: int, dtype: torch.dtype) -> float:
    """Default tolerance of the inverse maps on ``max |A^T A - I|`` for ``n`` rows."""
    eps = torch.finfo(dtype).eps
    return max(math.sqrt(eps), 10 * n * eps)


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision inputs, the input dtype otherwise (Note [precision])."""
    return torch.promote_types(dtype, torch.float32)


def product_dtype(t: Tensor) -> torch.dtype:
    """Return the dtype of the large products for input ``t`` (Note [precision] in householder.py).

    The input dtype, except float32 for half-precision input on the CPU, which has no
    fast half-precision matrix product.
    """
    return work_dtype(t.dtype) if t.device.type == "cpu" else t.dtype
