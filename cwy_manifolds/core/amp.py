"""Autocast off inside the functional core (Note [autocast])."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["autocast_off", "without_autocast"]

#: Whether autocast is on for any device: one call (torch >= 2.1), or "maybe".
_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)
_NO_CONTEXT = contextlib.nullcontext()


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Return a context that turns autocast off on ``device`` where it is on.

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
