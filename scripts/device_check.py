"""Correctness of the functional core and the layers on an accelerator, against the CPU.

For a session lent a GPU: one short run that checks what CI (CPU only) cannot. Each
check computes on ``--device`` and compares with the same computation in float64 on the
CPU, or checks a behaviour that differs by device (Note [value checks],
Note [triangular inverse on accelerators] in ``cwy_manifolds/core/wy.py``):

- ``cwy``, ``tcwy``, ``cwy_apply``, ``tcwy_apply`` and their gradients, batched and not,
  in float32, float64 and bfloat16 (the recursive-doubling inverse of ``S`` runs off the
  CPU only);
- the inverse maps (``cwy_inverse`` then ``cwy``: back to the matrix);
- value checks: a zero column raises ``ValueError`` on the device;
- ``torch.compile``: graphs of a compiled ``cwy`` with value checks on and off;
- ``OrthogonalRNN`` forward and backward on the device against the CPU.

Prints one Markdown table (check, dtype, largest error, tolerance, ok) and exits with 1
if a check fails. On the CPU it runs too, as a smoke test of the script itself.

    python scripts/device_check.py --device cuda
    python scripts/device_check.py --device cuda --sizes 64 512
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch

import cwy_manifolds as cm
from cwy_manifolds.nn import OrthogonalRNN

F64 = torch.float64
#: Relative tolerance on the largest error, by dtype (the precision table's orders).
TOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 5e-2}


def _error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest absolute difference, relative to the largest entry of ``want`` (at least 1)."""
    got, want = got.detach().to("cpu", F64), want.detach().to("cpu", F64)
    return float((got - want).abs().max() / max(1.0, float(want.abs().max())))


def _compare(fn: Callable, args: list[torch.Tensor], device: torch.device, dtype) -> float:
    """Largest relative error of ``fn`` and of its gradients on ``device`` against the CPU."""
    on_device = [a.to(device, dtype).requires_grad_() for a in args]
    on_cpu = [a.to("cpu", F64).requires_grad_() for a in args]
    out, ref = fn(*on_device), fn(*on_cpu)
    weights = torch.randn(ref.shape, dtype=F64, generator=torch.Generator().manual_seed(2))
    grads = torch.autograd.grad((out.to(F64) * weights.to(device)).sum(), on_device)
    refs = torch.autograd.grad((ref * weights).sum(), on_cpu)
    return max([_error(out, ref)] + [_error(g, r) for g, r in zip(grads, refs, strict=True)])


def _graphs(device: torch.device, checks: bool) -> int:
    """Count the graphs of a compiled ``cwy`` (dynamo only, no code generation)."""
    torch._dynamo.reset()
    try:
        with cm.set_value_checks(checks):
            v = torch.randn(6, 4, device=device)
            return torch._dynamo.explain(cm.cwy)(v).graph_count
    finally:
        torch._dynamo.reset()


def checks(device: torch.device, sizes: list[int]) -> list[tuple[str, str, float, float]]:
    """Run every check; return rows ``(check, dtype, error, tolerance)``."""
    gen = torch.Generator().manual_seed(0)
    rows = []
    for n in sizes:
        m = max(1, n // 8)
        square = torch.randn(3, n, n, generator=gen, dtype=F64)
        thin = torch.randn(n, m, generator=gen, dtype=F64)
        x = torch.randn(3, n, 5, generator=gen, dtype=F64)
        cases = {
            f"cwy N={n}, batch 3": (cm.cwy, [square]),
            f"tcwy {n}x{m}": (cm.tcwy, [thin]),
            f"cwy_apply N={n}, L={m}": (cm.cwy_apply, [thin.expand(3, n, m), x]),
            f"tcwy_apply {n}x{m}": (cm.tcwy_apply, [thin, torch.randn(m, 4, generator=gen)]),
        }
        for name, (fn, args) in cases.items():
            for dtype in (torch.float64, torch.float32, torch.bfloat16):
                if dtype == torch.bfloat16 and n > 64:
                    continue  # bfloat16 rounding grows with N; one size shows the path
                rows.append((name, str(dtype)[6:], _compare(fn, args, device, dtype), TOL[dtype]))
        q = cm.cwy(square.to(device))
        rows.append((f"cwy(cwy_inverse(Q)) N={n}", "float64", _error(cm.cwy(cm.cwy_inverse(q)), q),
                     TOL[F64]))  # fmt: skip
    zero = torch.randn(5, 3, device=device)
    zero[:, 1] = 0
    try:
        cm.cwy(zero)
        raised = 0.0
    except ValueError:
        raised = 1.0
    rows.append(("zero column raises ValueError", "float32", 1.0 - raised, 0.0))
    off, on = _graphs(device, False), _graphs(device, True)
    rows.append((f"compiled cwy, checks off: {off} graph(s), 1 expected", "float32", off != 1, 0))
    if device.type == "cpu":  # an assertion in the graph
        rows.append((f"compiled cwy, checks on: {on} graph(s), 1 expected", "float32", on != 1, 0))
    else:  # a host read: a graph break, no device-side assert
        rows.append((f"compiled cwy, checks on: {on} graphs, a break expected", "float32",
                     on < 2, 0))  # fmt: skip
    torch.manual_seed(3)
    rnn = OrthogonalRNN(4, 16, n_reflections=4, dtype=F64)
    seq = torch.randn(7, 2, 4, dtype=F64)
    ref = rnn(seq)[0]
    ref_grads = torch.autograd.grad(ref.square().sum(), list(rnn.parameters()))
    rnn.to(device, torch.float32)
    out = rnn(seq.to(device, torch.float32))[0]
    grads = torch.autograd.grad(out.square().sum(), list(rnn.parameters()))
    err = max([_error(out, ref)] + [_error(g, r) for g, r in zip(grads, ref_grads, strict=True)])
    rows.append(("OrthogonalRNN(4, 16, L=4) and gradients", "float32", err, TOL[torch.float32]))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table; return 1 if a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 64, 512])
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"# python scripts/device_check.py --device {args.device}: {name}, torch "
          f"{torch.__version__}")  # fmt: skip
    print("\n| check | dtype | error | tolerance | ok |\n|---|---|---:|---:|---|")
    failed = 0
    for check, dtype, error, tol in checks(device, args.sizes):
        ok = error <= tol
        failed += not ok
        print(f"| {check} | {dtype} | {error:.1e} | {tol:.0e} | {'yes' if ok else 'NO'} |")
    print(f"\n{failed} of the checks failed" if failed else "\nall checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
