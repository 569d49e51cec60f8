"""Input validation shared by the functional core.

Note [value checks]
~~~~~~~~~~~~~~~~~~~
Shape and dtype checks read only metadata and are always on. Value checks (NaN/Inf
entries, zero columns) must look at the data: they reduce each column to its largest
absolute entry, which the core needs anyway to normalise safely (see Note [scaled
normalisation] in ``householder.py``), and read the smallest and the largest of these
back to the host (with the largest absolute entry of ``x`` for the apply forms): valid
exactly when the smallest is positive and the largest finite (NaN fails both). On the
CPU that costs two scalar reads; on an accelerator one host-device synchronisation per
call. Value checks are on by default, because a zero column would otherwise give a
silent NaN. :func:`set_value_checks` turns them off (for the current thread, or inside a
``with`` block) for hot loops whose inputs are known to be valid; with checks off,
invalid input gives NaN output instead of an error. (The inverse maps check
orthonormality whatever the setting; ``inverse.py``.)

Where the checks run, when they are on:

- Plain tensors: always; one host read per call.
- Under :mod:`torch.func` transforms (``vmap``, ``grad``, ``jvp``, ``jacfwd``,
  ``hessian``, nested): the reductions run under the transforms and are read from the
  plain tensors beneath their wrappers (:func:`host_view`), so under ``vmap`` one host
  read covers every batch item, and messages count the ``vmap`` dimensions as leading
  batch dimensions ("batch item (2,)").
- Tensors without values (``meta`` device, ``FakeTensor``): skipped; the result has the
  right shape, dtype and device.
- Inside :func:`torch.compile`, on the CPU: the check of :func:`column_scale` (the one
  every map runs) is traced into the graph as an assertion (``torch._assert_async``), so
  a compiled model stays one graph; invalid input raises a ``RuntimeError`` with the
  same text as the eager ``ValueError`` (without the counts and the column, which would
  need the host read). The other checks (the inverse maps', the manifolds'
  ``check_point_on_manifold``) remain host reads: a graph break, after which the check
  runs eagerly, with the eager error.
- Inside :func:`torch.compile`, on accelerators: a host read and a graph break, as
  above; an assertion there would be a device-side assert, which leaves a CUDA context
  unusable. With checks off the functions trace as one graph on every device.

The setting is local to the thread that sets it (an attribute of a
:class:`threading.local`); new threads start with checks on. Compiled code follows it:
dynamo guards on that attribute, read in the calling thread, so turning checks on or off
recompiles (once per setting) and one thread's setting never reaches another thread's
compiled code. (A :class:`contextvars.ContextVar`, local also to asyncio tasks, would be
the other choice, but dynamo cannot trace ``ContextVar.get``.)
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake

from .precision import work_dtype


class _Setting(threading.local):
    def __init__(self) -> None:  # runs once per thread
        self.enabled = True  # an instance attribute: what dynamo guards on, per thread


_setting = _Setting()


class set_value_checks:  # noqa: N801 (lower case, like torch.set_grad_enabled)
    """Turn the value checks of the functional core on or off.

    Works as a function call (the setting stays) and as a context manager, like
    :class:`torch.set_grad_enabled`: on exit, the setting from before the call comes
    back (and, when the same object is entered again, the setting from before that
    ``with`` statement). The setting is local to the current thread: other threads keep
    their own, and new threads start with checks on. One object should not be entered by
    two threads at once; create one per ``with`` statement, as usual.

    Shape and dtype checks always run. Value checks (NaN/Inf entries, zero columns) cost
    one host-device synchronisation per call on an accelerator; with them off, invalid
    input gives NaN output instead of an error. See Note [value checks] in
    ``cwy_manifolds/core/checks.py``, also for :mod:`torch.func` and :func:`torch.compile`.

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
        self.enabled = bool(enabled)
        self._saved = [value_checks_enabled()]  # restored by the first __exit__
        self._fresh = True  # entered right after the call: keep the setting saved above
        _setting.enabled = self.enabled

    def __enter__(self) -> set_value_checks:
        if self._fresh:
            self._fresh = False
        else:
            self._saved.append(value_checks_enabled())
        _setting.enabled = self.enabled
        return self

    def __exit__(self, *exc_info: object) -> None:
        _setting.enabled = self._saved.pop()


def value_checks_enabled() -> bool:
    """Return whether the functional core checks values (see :class:`set_value_checks`)."""
    return _setting.enabled


def _beneath_transforms(t: Tensor) -> Tensor:
    """``t`` without :mod:`torch.func` wrappers; ``vmap`` dimensions moved to the front."""
    functorch = torch._C._functorch
    while functorch.is_batchedtensor(t) or functorch.is_gradtrackingtensor(t):
        dim = functorch.maybe_get_bdim(t)
        t = functorch.get_unwrapped(t)
        if dim >= 0:
            t = t.movedim(dim, 0)
    return t


def under_transforms(t: Tensor) -> bool:
    """Return whether ``t`` is wrapped by a :mod:`torch.func` transform (``vmap``, ``grad``).

    Parameters
    ----------
    t : torch.Tensor
        Any tensor.

    Returns
    -------
    bool
        True inside ``vmap``, ``grad`` and the other transforms, for their wrapped inputs.
    """
    functorch = torch._C._functorch
    return bool(functorch.is_batchedtensor(t) or functorch.is_gradtrackingtensor(t))


def host_view(t: Tensor) -> Tensor:
    """``t`` as a plain tensor for a host read (Note [value checks]); as is under compile."""
    return t if torch.compiler.is_compiling() else _beneath_transforms(t.detach())


def has_values(t: Tensor) -> bool:
    """Return whether the entries of ``t`` exist (value checks need them).

    Parameters
    ----------
    t : torch.Tensor
        Any tensor.

    Returns
    -------
    bool
        False on the ``meta`` device and for a ``FakeTensor``; True under compile.
    """
    if t.device.type == "meta":
        return False
    return torch.compiler.is_compiling() or not is_fake(t)


def checks_apply(t: Tensor) -> bool:
    """Whether value checks run for ``t``: they are enabled and ``t`` has values."""
    return value_checks_enabled() and has_values(t)


def all_true(flag: Tensor) -> bool:
    """Read a boolean tensor of the checks on the host: whether all of it is true.

    Parameters
    ----------
    flag : torch.Tensor
        Boolean flags; one host read, also under :mod:`torch.func` transforms.

    Returns
    -------
    bool
        Whether every entry is true (Note [value checks]).
    """
    return bool(host_view(flag).all())


def check_tensor(x: object, name: str, *, min_ndim: int = 2) -> Tensor:
    """Check type, dtype and rank of ``x``; return it unchanged.

    Parameters
    ----------
    x : object
        The argument to check.
    name : str
        Its name in the messages.
    min_ndim : int, default 2
        The smallest number of dimensions accepted.

    Returns
    -------
    torch.Tensor
        ``x``, a real floating-point tensor of at least ``min_ndim`` dimensions.

    Raises
    ------
    TypeError
        If ``x`` is not a tensor, or complex, or not floating-point.
    ValueError
        If ``x`` has fewer than ``min_ndim`` dimensions.
    """
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


def check_vectors(v: object, name: str = "v", *, thin: bool = False) -> Tensor:
    """Check reflection vectors ``v`` (..., N, L); ``thin``: also ``L <= N``. Return ``v``."""
    v = check_tensor(v, name)
    if thin and v.shape[-1] > v.shape[-2]:
        raise ValueError(
            f"{name} must have at most as many columns as rows (M <= N) for a Stiefel "
            f"matrix; got shape {tuple(v.shape)}"
        )
    return v


def check_rhs(
    x: object, name: str, v: Tensor, rows: int, rows_text: str, transpose: object
) -> Tensor:
    """Check ``x``, multiplied by the matrix of ``v``, and the flag ``transpose``."""
    if not isinstance(transpose, bool):
        raise TypeError(f"transpose must be a bool; got {type(transpose).__name__}")
    x = check_tensor(x, name)
    check_same_kind(x, name, v, "v")
    if x.shape[-2] != rows:
        raise ValueError(
            f"{name} must have {rows_text} = {rows} rows to match v of shape "
            f"{tuple(v.shape)}; got shape {tuple(x.shape)}"
        )
    try:
        torch.broadcast_shapes(v.shape[:-2], x.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"{name} must have batch dimensions that broadcast with those of v (shape "
            f"{tuple(v.shape)}); got shape {tuple(x.shape)}"
        ) from None
    return x


#: Inputs with this many entries or more get no temporary of their size in column_scale.
_LARGE = 1 << 16


def column_scale(
    v: Tensor, name: str, extra: Tensor | None = None, extra_name: str = "x"
) -> Tensor:
    """Return the largest absolute entry of each column of ``v``, and check the values.

    Parameters
    ----------
    v : Tensor, shape ``(*, N, L)``
        Reflection vectors as columns.
    name : str
        The name of ``v`` in the messages.
    extra : torch.Tensor, optional
        Another argument of the same call, checked for non-finite entries.
    extra_name : str, default "x"
        The name of ``extra`` in the messages.

    Returns
    -------
    Tensor, shape ``(*, 1, L)``
        The scales, detached.

    Raises
    ------
    ValueError
        When value checks are on, if ``v`` has a non-finite entry or a zero column, or
        ``extra`` a non-finite entry: one host-device synchronisation covers all of it.
        Under :func:`torch.compile` on the CPU the check is an assertion in the graph
        instead, which raises ``RuntimeError`` (Note [value checks]).
    """
    if v.shape[-2] == 0:  # vectors in R^0 are zero vectors
        scale = v.new_zeros(*v.shape[:-2], 1, v.shape[-1])
    else:
        v = v.detach()  # NaN propagates through amax, amin and maximum
        if v.numel() < _LARGE:
            scale = v.abs().amax(dim=-2, keepdim=True)
        else:  # two reductions, no |v| temporary (Note [memory layout] in wy.py)
            scale = torch.maximum(v.amax(dim=-2, keepdim=True), v.amin(dim=-2, keepdim=True).neg_())
    if not checks_apply(v):
        return scale
    # NaN in lo and hi if any entry is NaN; no columns: nothing to reject
    lo, hi = torch.aminmax(scale) if scale.numel() else (scale.new_ones(()),) * 2
    if extra is not None and extra.numel():
        hi = torch.maximum(hi, extra.detach().abs().amax())
    if torch.compiler.is_compiling() and lo.device.type == "cpu":  # Note [value checks]
        text = f"{name} must have finite entries and no zero columns"
        text += f", and {extra_name} finite entries" if extra is not None else ""
        torch._assert_async((lo > 0) & (hi < math.inf), text)
        return scale
    lo, hi = _read_range(lo, hi)
    if not (lo > 0 and hi < math.inf):  # also false for NaN
        _raise_value_error(v, name, scale, extra, extra_name)
    return scale


def column_norms(t: Tensor, dim: int = -2) -> Tensor:
    """Return the Euclidean norms of the columns of ``t`` (of its vectors along ``dim``).

    The square root of the sum of squares, without rescaling, as
    ``torch.linalg.vector_norm`` (divide by :func:`column_scale` first where entries
    may overflow), which reduces over a dimension that is not the last one slowly on the
    CPU (torch 2.13, one thread: 0.7 ms against 0.04 ms for 1000 ``8 x 8`` float64
    matrices, 93 against 17 µs for one ``256 x 256``).

    Parameters
    ----------
    t : torch.Tensor
        Real floating-point; half precision is squared in float32.
    dim : int, default -2
        The dimension along which the vectors lie.

    Returns
    -------
    torch.Tensor
        The norms, ``dim`` kept with size 1, in the working dtype.
    """
    t = t.to(work_dtype(t.dtype))
    return t.square().sum(dim=dim, keepdim=True).sqrt_()


def _read_range(lo: Tensor, hi: Tensor) -> tuple[float, float]:
    """``(min lo, max hi)`` on the host: one read, also under :mod:`torch.func` transforms.

    Two 0-dim reads on the CPU (cheapest there), one transfer of both on accelerators.
    """
    lo, hi = host_view(lo), host_view(hi)
    if lo.ndim:  # under vmap: one value per batch item
        lo, hi = lo.amin(), hi.amax()
    if lo.device.type == "cpu":
        return lo.item(), hi.item()
    low, high = torch.stack((lo, hi)).tolist()
    return low, high


def _raise_value_error(
    v: Tensor, name: str, scale: Tensor, extra: Tensor | None, extra_name: str
) -> None:
    v, scale = host_view(v), host_view(scale)
    extra = None if extra is None else host_view(extra)
    bad = ~torch.isfinite(v)
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
        f"{extra_name} must have finite entries; got {int((~torch.isfinite(extra)).sum())} "
        f"NaN/Inf entries in shape {tuple(extra.shape)}"
    )
