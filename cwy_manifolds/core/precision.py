"""Precision rules of the functional core: working dtypes, tolerances, autocast off."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

#: Dtypes that are their own working and product dtypes (no dispatch for them).
_FULL = (torch.float32, torch.float64)

__all__ = [
    "autocast_off",
    "orthonormality_atol",
    "product_dtype",
    "without_autocast",
    "work_dtype",
]

#: Whether autocast is on for any device: one call (torch >= 2.1), or "maybe".
_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)
_NO_CONTEXT = contextlib.nullcontext()


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Return a context that turns autocast off on ``device`` where it is on.

    Parameters
    ----------
    device : torch.device
        The device of the computation.

    Returns
    -------
    torch.autocast
        ``torch.autocast(device.type, enabled=False)``, or a context that does nothing
        (``contextlib.nullcontext``) when autocast is off.

    Note [autocast]
    ~~~~~~~~~~~~~~~
    Under :class:`torch.autocast`, matrix products would run in the autocast dtype
    (bfloat16 on the CPU, float16 on CUDA), and no triangular solve exists in it. The
    core therefore computes in the dtype of its input, with autocast off inside, as the
    half-precision rules of Note [precision] already ask for: the result has the input's
    dtype, and the surrounding autocast region goes on as before.
    """
    if not torch.compiler.is_compiling() and not _any_autocast():
        return _NO_CONTEXT  # one call instead of two (small sizes, Note [fast path])
    if torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def without_autocast(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Wrap ``fn(a, ...)`` to run with autocast off on the device of ``a`` (Note [autocast])."""

    @functools.wraps(fn)
    def wrapper(a: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if not isinstance(a, Tensor):  # the function's own checks say what is wrong
            return fn(a, *args, **kwargs)
        with autocast_off(a.device):
            return fn(a, *args, **kwargs)

    return wrapper


#: Largest default tolerance on max |A^T A - I| (binds for bfloat16 and float16).
_ATOL_CAP = 0.05


def orthonormality_atol(n: int, dtype: torch.dtype) -> float:
    r"""Return the default tolerance of the inverse maps on ``max |A^T A - I|``.

    Parameters
    ----------
    n : int
        The number of rows of ``A``.
    dtype : torch.dtype
        The dtype of ``A``.

    Returns
    -------
    float
        The tolerance of Note [orthonormality tolerance] below.

    Note [orthonormality tolerance]
    ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    :math:`\min(\sqrt{\varepsilon}, 0.05) + 10 \sqrt{n}\, \varepsilon_w`, with
    :math:`\varepsilon` the machine epsilon of ``dtype`` and :math:`\varepsilon_w` that of
    the working dtype in which :math:`A^\top A` is formed (float32 for half precision).
    An orthogonal matrix rounded to ``dtype`` has :math:`\max |A^\top A - I|` below about
    :math:`\varepsilon / 2`, whatever :math:`n` (rounding errors of size
    :math:`\varepsilon / \sqrt{n}` per entry add up to :math:`\varepsilon / \sqrt{n}`
    per entry of :math:`A^\top A`); forming :math:`A^\top A` adds rounding that grows like
    :math:`\sqrt{n}\, \varepsilon_w`. Measured (Haar matrices, outputs of ``cwy`` and
    ``tcwy``, up to :math:`n = 2048`, float32 to 4096): at most :math:`\varepsilon / 2`
    in half precision, :math:`8 \varepsilon` in float32, :math:`26 \varepsilon` in
    float64.
    So the tolerance is :math:`\sqrt{\varepsilon}` (1.5e-8, 3.5e-4, 0.031 for float64,
    float32, float16; 30 to 7e7 times the measured residuals), capped at 0.05 for
    bfloat16 (where :math:`\sqrt{\varepsilon} = 0.088` would accept a Gaussian matrix
    scaled by :math:`1/\sqrt{n}`, residual about :math:`4 / \sqrt{n}`, from
    :math:`n \approx 2000`). It does not grow like :math:`n \varepsilon`, which in half
    precision exceeds 0.5 from :math:`n = 64` and accepted :math:`I / 2`.
    """
    eps = torch.finfo(dtype).eps
    work_eps = torch.finfo(work_dtype(dtype)).eps
    return min(math.sqrt(eps), _ATOL_CAP) + 10 * math.sqrt(max(n, 1)) * work_eps


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype the core computes in for inputs of ``dtype`` (Note [precision]).

    Parameters
    ----------
    dtype : torch.dtype
        The input dtype.

    Returns
    -------
    torch.dtype
        float32 for half-precision inputs, ``dtype`` otherwise.
    """
    return dtype if dtype in _FULL else torch.promote_types(dtype, torch.float32)


def product_dtype(t: Tensor) -> torch.dtype:
    """Return the dtype of the large products for input ``t`` (Note [precision] in householder.py).

    The input dtype, except float32 for half-precision input on the CPU, which has no
    fast half-precision matrix product.
    """
    return work_dtype(t.dtype) if t.dtype not in _FULL and t.is_cpu else t.dtype
