r"""Speed benchmark: CWY/T-CWY against the other ways to get orthogonal matrices in PyTorch.

For each row group (a shape and a dtype) every method is timed three ways, as the median
over ``repeats`` rounds after a warm-up, the methods taking turns within each round:

- ``forward``: forming the matrix from the parameters (no autograd graph);
- ``forward_backward``: forming it and back-propagating a fixed cotangent;
- ``step``: one optimizer step. For parametrizations, forward+backward plus the time of
  the ``torch.optim.SGD`` update, timed separately; for retraction-based Stiefel
  manifolds, whose parameter is the matrix, one step of geoopt's ``RiemannianSGD``
  (Riemannian gradient and retraction) for a fixed Euclidean gradient.

Each time is reported as a multiple of one :math:`N \times N` matrix product of the same
dtype timed in the same rounds (*matmul equivalents*; for a batch, one batched product),
so that figures travel between machines, and as a ratio to the fastest *peer* (a method
not from this package, or the sequential Householder product) in the same row group. The
orthogonality error :math:`\|Q^\top Q - I\|_F` of each method's matrix (after the steps)
is reported too. Grid: ``--quick`` about a minute on a 2-core CPU, full mode otherwise
(see :data:`QUICK`, :data:`FULL`); combinations too slow for the mode are skipped, and
each skip is listed with its reason. Run as ``cwy-manifolds bench``
(``cwy_manifolds.cli.bench``) or through :func:`~cwy_manifolds.tools.bench.benchmark`;
``cwy_manifolds.tools.bench.report`` writes the table, the CSV file and the plot.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence

import torch

from ...registry import DTYPES
from ..choices import check_device
from .methods import METHODS as _METHODS
from .methods import Case, Shape, unavailable
from .report import METRICS

__all__ = ["FULL", "METHODS", "QUICK", "BenchmarkInterrupted", "benchmark"]


#: The timed methods by name, in table order (the values of ``--methods``): ``cwy``,
#: ``tcwy``, the sequential and LAPACK Householder products, PyTorch's ``orthogonal``
#: maps, geotorch, geoopt's Stiefel manifolds and this package's, each a
#: ``Method(family, build, ...)`` whose ``family`` is ``"ours"`` or ``"peer"``.
METHODS = _METHODS

#: Grid and budgets of the two modes. ``slow_call``: a call slower than this (seconds)
#: is timed once, its warm-up call being the sample; ``min_sample``: faster calls are
#: repeated within a sample to last at least this long; ``give_up``: a method with a
#: call slower than this is skipped in the later groups of the same kind and dtype with
#: the same or larger N (the thin shapes are ordered so that 4096 x 64 comes first among
#: N = 4096).
QUICK = {
    "sizes": (64, 256, 1024),
    "thin": ((1024, 16), (1024, 64), (2048, 16), (4096, 64)),
    "batch": ((1024, 16),),
    "dtypes": ("float32",),
    "repeats": 3,
    "slow_call": 0.5,
    "min_sample": 1e-3,
    "give_up": 20.0,
}
#: The full grid and budgets (the keys as in :data:`QUICK`): about an hour on 2 CPU cores.
FULL = {
    "sizes": (64, 256, 1024, 2048),
    "thin": ((1024, 16), (1024, 64), (1024, 256), (2048, 16), (4096, 64), (4096, 16), (4096, 256)),
    "batch": ((1024, 16),),
    "dtypes": ("float32", "float64"),
    "repeats": 5,
    "slow_call": 5.0,
    "min_sample": 5e-3,
    "give_up": 60.0,
}


def _positive(values: Iterable[object], name: str) -> list[int]:
    out = list(values)
    if any(isinstance(x, bool) or not isinstance(x, int) or x <= 0 for x in out):
        raise ValueError(f"{name} must be positive integers; got {out!r}")
    return out


def _pairs(values: Iterable[object], name: str, *, tall: bool = False) -> list[tuple[int, int]]:
    pairs = []
    for value in values:
        parts = value.lower().split("x") if isinstance(value, str) else value
        try:
            a, b = (int(p) for p in parts)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be pairs like 1024x64; got {value!r}") from None
        if a <= 0 or b <= 0 or (tall and b > a):
            rule = "positive with M <= N" if tall else "positive"
            raise ValueError(f"{name} must be {rule}; got {value!r}")
        pairs.append((a, b))
    return pairs


def _device(device: str | torch.device) -> torch.device:
    """``cpu`` or an available ``cuda[:k]``, the index checked too (ValueError otherwise)."""
    return check_device(device)


def _dtypes(values: Iterable[object]) -> list[torch.dtype]:
    out = []
    for value in values:
        dtype = DTYPES.get(value) if isinstance(value, str) else value
        if dtype not in DTYPES.values():
            raise ValueError(f"dtypes must be among {', '.join(DTYPES)}; got {value!r}")
        out.append(dtype)
    if not out:
        raise ValueError("dtypes must name at least one dtype; got none")
    return out


def _methods(names: Iterable[str] | None) -> list[str]:
    names = list(METHODS) if names is None else list(names)
    for name in names:
        if name not in METHODS:
            raise ValueError(f"methods must be among {', '.join(METHODS)}; got {name!r}")
    return names


def _shapes(sizes: list[int], thin: list, batch: list) -> list[Shape]:
    shapes = []
    for n in sizes:
        for refl in dict.fromkeys(r for r in (n, n // 4, n // 8) if r > 0):
            shapes.append(Shape("square", n, n, refl))
    shapes += [Shape("thin", n, m, m) for n, m in thin]
    shapes += [Shape("batch", n, n, n, (b,)) for b, n in batch]
    return shapes


class BenchmarkInterrupted(KeyboardInterrupt):
    """Ctrl-C during the benchmark; ``rows`` holds the rows of the groups finished before it.

    Raised by :func:`~cwy_manifolds.tools.bench.benchmark`.
    """

    def __init__(self, rows: list[dict]) -> None:
        super().__init__(f"interrupted after {len(rows)} rows")
        self.rows = rows


#: Matrices of the largest shape that one row group holds at once (inputs, products,
#: autograd buffers, the matmul unit), for the memory estimate made before timing.
_BUFFERS = 12


def _check_memory(shapes: list[Shape], dtypes: list[torch.dtype], device: torch.device) -> None:
    """Refuse a grid whose largest row group cannot fit in memory, before timing anything."""
    need = max(
        (_BUFFERS * math.prod(s.lead) * s.n * s.n * d.itemsize for s in shapes for d in dtypes),
        default=0,
    )
    if need > _memory(device) / 2:
        raise ValueError(
            f"sizes must fit in memory; the largest shape needs about {need / 2**30:.0f} GiB "
            f"and {device} has {_memory(device) / 2**30:.0f} GiB"
        )


def _memory(device: torch.device) -> int:
    """Bytes of memory of ``device`` (physical memory for the CPU)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _skip_reason(
    name: str, shape: Shape, dtype: torch.dtype, device: torch.device, settings: dict
) -> str | None:
    quick, slow = settings["quick"], settings["slow"]
    method = METHODS[name]
    if shape.kind not in method.kinds or (shape.refl < shape.m and not method.partial):
        return "not applicable"
    if reason := unavailable(method):
        return reason
    if quick and method.quick_max_n is not None and shape.n > method.quick_max_n:
        return (
            f"skipped in quick mode above N = {method.quick_max_n} (sequential or O(N^3) "
            "work); run without --quick"
        )
    if method.saves_every_step:
        need = shape.refl * shape.n * shape.m * math.prod(shape.lead) * dtype.itemsize
        if need > _memory(device) / 4:
            return (
                f"skipped: autograd would keep {shape.refl} matrices of {shape.n} x {shape.m}, "
                f"{need / 2**30:.0f} GiB"
            )
    if (seen := slow.get((name, shape.kind, dtype))) and shape.n >= seen[0]:
        return f"skipped: one call took {seen[1]:.0f} s at N = {seen[0]} (give-up time)"
    return None


def _timer(device: torch.device) -> Callable[[Callable[[], object], int], float]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def once(fn: Callable[[], object], number: int) -> float:
        sync()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        return (time.perf_counter() - start) / number

    return once


def _time_all(
    fns: dict[tuple[str, str], Callable[[], object]], repeats: int, mode: dict, device: torch.device
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """Return the median seconds per call of each callable, and of its warm-up call.

    All callables take turns in each round, so that a slow spell of the machine hits all.
    """
    once = _timer(device)
    first = {key: once(fn, 1) for key, fn in fns.items()}
    samples = {key: [t] for key, t in first.items() if t > mode["slow_call"]}
    number = {
        key: max(1, min(1000, math.ceil(mode["min_sample"] / max(t, 1e-7))))
        for key, t in first.items()
        if key not in samples
    }
    for key in number:
        samples[key] = []
    for _ in range(repeats):
        for key, count in number.items():
            samples[key].append(once(fns[key], count))
    return {key: statistics.median(values) for key, values in samples.items()}, first


def _orthogonality_error(q: torch.Tensor) -> float:
    q = q.detach().to(torch.float64)
    eye = torch.eye(q.shape[-1], dtype=q.dtype, device=q.device)
    return float(torch.linalg.matrix_norm(q.mT @ q - eye).max()) if q.numel() else 0.0


def _group(
    shape: Shape, dtype: torch.dtype, device: torch.device, names: list[str], settings: dict
) -> list[dict]:
    base = {
        "kind": shape.kind,
        "n": shape.n,
        "m": shape.m,
        "reflections": shape.refl,
        "batch": shape.lead[0] if shape.lead else 1,
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
    }
    mode, slow = settings["mode"], settings["slow"]
    cases: dict[str, Case] = {}
    rows = {}
    for name in names:
        reason = _skip_reason(name, shape, dtype, device, settings)
        if reason == "not applicable":
            continue
        rows[name] = {**base, "method": name, "family": METHODS[name].family}
        rows[name]["note"] = reason or ""
        if reason is None:
            torch.manual_seed(settings["seed"])
            cases[name] = METHODS[name].build(shape, dtype, device)
    a, b = (torch.randn(*shape.lead, shape.n, shape.n, dtype=dtype, device=device) for _ in "ab")
    fns: dict[tuple[str, str], Callable[[], object]] = {("matmul", "unit"): lambda: a @ b}
    for name, case in cases.items():
        for part in ("forward", "forward_backward", "update", "step"):
            if (fn := getattr(case, part)) is not None:
                fns[(name, part)] = fn
    times, first = _time_all(fns, settings["repeats"], mode, device)
    for (name, _), seconds in first.items():
        if seconds > mode["give_up"] and name in rows:
            slow.setdefault((name, shape.kind, dtype), (shape.n, seconds))
    unit = times[("matmul", "unit")]
    for name, row in rows.items():
        row["matmul_ms"] = 1e3 * unit
        get = lambda part, name=name: times.get((name, part), math.nan)  # noqa: E731
        step = get("step") if (name, "step") in times else get("forward_backward") + get("update")
        for metric, seconds in zip(
            METRICS, (get("forward"), get("forward_backward"), step), strict=True
        ):
            row[f"{metric}_ms"] = 1e3 * seconds
            row[f"{metric}_mm"] = seconds / unit
        row["orthogonality_error"] = (
            _orthogonality_error(cases[name].matrix()) if name in cases else math.nan
        )
    for metric in METRICS:
        peers = [r[f"{metric}_mm"] for r in rows.values() if r["family"] == "peer"]
        best = min((x for x in peers if not math.isnan(x)), default=math.nan)
        for row in rows.values():
            row[f"{metric}_vs_peer"] = row[f"{metric}_mm"] / best
    return list(rows.values())


def benchmark(
    *,
    quick: bool = False,
    sizes: Sequence[int] | None = None,
    thin: Sequence[tuple[int, int] | str] | None = None,
    batch: Sequence[tuple[int, int] | str] | None = None,
    dtypes: Sequence[str | torch.dtype] | None = None,
    device: str | torch.device = "cpu",
    repeats: int | None = None,
    methods: Sequence[str] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    r"""Time the methods over a grid of shapes; return one row (a dict) per method and group.

    Parameters
    ----------
    quick : bool, default False
        Use the grid and budgets of :data:`~cwy_manifolds.tools.bench.run.QUICK` (about a
        minute on 2 CPU cores) instead of :data:`~cwy_manifolds.tools.bench.run.FULL`.
    sizes : sequence of int, optional
        Square sizes :math:`N`; each gives groups with :math:`L = N, N/4, N/8`
        reflections (only methods that can use :math:`L < N` run in the latter).
    thin : sequence of (N, M) pairs or ``"NxM"`` strings, optional
        Stiefel shapes, :math:`M \le N`.
    batch : sequence of (B, N) pairs or ``"BxN"`` strings, optional
        Batches of :math:`B` square :math:`N \times N` matrices. Pass an empty sequence
        to leave a kind out.
    dtypes : sequence of {"float32", "float64"}, optional
    device : str or torch.device, default "cpu"
    repeats : int, optional
        Timed rounds per method (after one warm-up call).
    methods : sequence of str, optional
        Names from :data:`~cwy_manifolds.tools.bench.run.METHODS`; default all.
    seed : int, default 0
        Seed of the parameters of every method.
    progress : callable, optional
        Called with one line of text per row group.

    Returns
    -------
    list of dict
        One row per method and group with keys ``kind, n, m, reflections, batch, dtype,
        device, method, family, note, matmul_ms`` and, for each metric in ``forward,
        forward_backward, step``: ``<metric>_ms``, ``<metric>_mm`` (in matmul
        equivalents) and ``<metric>_vs_peer`` (ratio to the fastest peer of the group;
        NaN where not applicable), and ``orthogonality_error``. Skipped or unavailable
        methods have NaN times and say why in ``note``.

    Raises
    ------
    ValueError
        For unknown method or dtype names, non-positive sizes or repeats, :math:`M > N`,
        an unknown or unavailable device, or sizes too large for its memory (estimated
        before timing anything); the message names the argument.
    ~cwy_manifolds.tools.bench.run.BenchmarkInterrupted
        On Ctrl-C (a :class:`KeyboardInterrupt`), with the rows finished so far.

    Notes
    -----
    The times are measurements of this machine and moment, not a test: nothing checks
    them. A matmul equivalent is :math:`2 N^3` flops at the speed of the machine's
    matrix product.

    Examples
    --------
    >>> from cwy_manifolds.tools.bench import benchmark
    >>> rows = benchmark(
    ...     quick=True, sizes=[8], thin=[], batch=[], repeats=1, methods=["cwy", "torch-cayley"]
    ... )
    >>> [(r["reflections"], r["method"]) for r in rows]
    [(8, 'cwy'), (8, 'torch-cayley'), (2, 'cwy'), (1, 'cwy')]
    >>> rows[0]["orthogonality_error"] < 1e-5
    True
    """
    mode = QUICK if quick else FULL
    sizes = _positive(mode["sizes"] if sizes is None else sizes, "sizes")
    thin = _pairs(mode["thin"] if thin is None else thin, "thin", tall=True)
    batch = _pairs(mode["batch"] if batch is None else batch, "batch")
    dtype_list = _dtypes(mode["dtypes"] if dtypes is None else dtypes)
    dev = _device(device)
    (repeats,) = _positive([mode["repeats"] if repeats is None else repeats], "repeats")
    names = _methods(methods)
    settings = {"mode": mode, "quick": quick, "repeats": repeats, "seed": seed, "slow": {}}
    shapes = _shapes(sizes, thin, batch)
    _check_memory(shapes, dtype_list, dev)
    rows: list[dict] = []
    try:
        for dtype in dtype_list:
            for shape in shapes:
                if progress is not None:
                    lead = f"{shape.lead[0]} x " if shape.lead else ""
                    progress(f"{shape.kind} {lead}{shape.n} x {shape.m}, L = {shape.refl}, {dtype}")
                rows += _group(shape, dtype, dev, names, settings)
    except KeyboardInterrupt:
        raise BenchmarkInterrupted(rows) from None
    return rows
