"""Training-step time of orthogonal RNNs: cwy_manifolds.nn.OrthogonalRNN against torch's maps.

One training step is a forward pass over a sequence, a backward pass and an Adam step.
The models, all one-layer RNNs with ``hidden`` units on ``T``-step sequences:

- ``cwy``: :class:`cwy_manifolds.nn.OrthogonalRNN` (modReLU, :math:`L = N` reflections);
- ``cwy-tanh``: the same with tanh, the nonlinearity of ``torch.nn.RNN``;
- ``cwy-L=N/8``: matrix-free recurrent map with :math:`N/8` reflections (modReLU);
- ``torch-cayley``, ``torch-matrix-exp``, ``torch-householder``: ``torch.nn.RNN`` (tanh) with
  ``torch.nn.utils.parametrizations.orthogonal(rnn, "weight_hh_l0", map)``;
- ``rnn``: an unconstrained ``torch.nn.RNN`` (tanh), the floor.

Timing: every repeat times ``--steps-per-repeat`` steps of each model, the models in
rotating order (A/B/C, B/C/A, ...), after warm-up; the table gives the median ms/step and
the median over repeats of the ratio to ``torch-cayley`` measured in the same repeat.
``torch.set_num_threads(--threads)`` (default 1: the recurrence is a chain of small
products, and shared machines make two threads noisy).

    python scripts/rnn_bench.py                         # hidden 128 and 512, T = 64, B = 32
    python scripts/rnn_bench.py --hidden 128 --repeats 5 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal as torch_orthogonal

from cwy_manifolds.nn import OrthogonalRNN

#: The reference of the ratios.
REFERENCE = "torch-cayley"


def _torch_rnn(input_size: int, hidden: int, orthogonal_map: str | None) -> nn.Module:
    rnn = nn.RNN(input_size, hidden, nonlinearity="tanh")
    if orthogonal_map is not None:
        torch_orthogonal(rnn, "weight_hh_l0", orthogonal_map)
    return rnn


#: name -> factory (input_size, hidden) -> module with the interface of torch.nn.RNN
MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "cwy": lambda i, n: OrthogonalRNN(i, n),
    "cwy-tanh": lambda i, n: OrthogonalRNN(i, n, nonlinearity="tanh"),
    "cwy-L=N/8": lambda i, n: OrthogonalRNN(i, n, n_reflections=max(n // 8, 1)),
    "torch-cayley": lambda i, n: _torch_rnn(i, n, "cayley"),
    "torch-matrix-exp": lambda i, n: _torch_rnn(i, n, "matrix_exp"),
    "torch-householder": lambda i, n: _torch_rnn(i, n, "householder"),
    "rnn": lambda i, n: _torch_rnn(i, n, None),
}


def _step_function(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor
) -> Callable[[], torch.Tensor]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        output, _ = model(x)
        loss = (output - target).square().mean()
        loss.backward()
        optimizer.step()
        return loss

    return step


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    hidden: int,
    *,
    steps: int = 64,
    batch: int = 32,
    input_size: int = 32,
    models: Sequence[str] = tuple(MODELS),
    repeats: int = 7,
    steps_per_repeat: int = 5,
    warmup: int = 3,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, dict[str, float]]:
    """Time training steps; return ``{model: {"ms": median ms/step, "ratio": ...}}``.

    ``ratio`` is the median over repeats of the time relative to :data:`REFERENCE` in the
    same repeat (NaN when the reference is not among ``models``).
    """
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(steps, batch, input_size, generator=gen).to(dev, dtype)
    target = torch.randn(steps, batch, hidden, generator=gen).to(dev, dtype)
    functions = {}
    for name in models:
        torch.manual_seed(0)
        model = MODELS[name](input_size, hidden).to(dev, dtype)
        functions[name] = _step_function(model, x, target)
        for _ in range(warmup):
            functions[name]()
    times: dict[str, list[float]] = {name: [] for name in models}
    order = list(models)
    for r in range(repeats):
        rotated = order[r % len(order) :] + order[: r % len(order)]
        for name in rotated:
            _synchronize(dev)
            start = time.perf_counter()
            for _ in range(steps_per_repeat):
                functions[name]()
            _synchronize(dev)
            times[name].append(1e3 * (time.perf_counter() - start) / steps_per_repeat)
    result = {}
    for name in models:
        if REFERENCE in times:
            ratios = [a / b for a, b in zip(times[name], times[REFERENCE], strict=True)]
            ratio = statistics.median(ratios)
        else:
            ratio = float("nan")
        result[name] = {"ms": statistics.median(times[name]), "ratio": ratio}
    return result


def table(results: dict[int, dict[str, dict[str, float]]]) -> str:
    """Return the markdown table of :func:`measure` results, one column pair per size."""
    sizes = list(results)
    head = "| model | " + " | ".join(f"ms/step N={n} | x {REFERENCE}" for n in sizes) + " |"
    rule = "|---|" + "---:|---:|" * len(sizes)
    lines = [head, rule]
    for name in results[sizes[0]]:
        cells = []
        for n in sizes:
            row = results[n][name]
            cells += [f"{row['ms']:.2f}", f"{row['ratio']:.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    """Run the benchmark from command-line arguments; print and return the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--steps", type=int, default=64, help="sequence length T")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps-per-repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {
        n: measure(
            n,
            steps=args.steps,
            batch=args.batch,
            input_size=args.input_size,
            models=args.models,
            repeats=args.repeats,
            steps_per_repeat=args.steps_per_repeat,
            warmup=args.warmup,
            device=args.device,
        )
        for n in args.hidden
    }
    text = (
        f"T = {args.steps}, batch {args.batch}, input {args.input_size}, float32, "
        f"{args.device}, {args.threads} thread(s); medians of {args.repeats} repeats\n\n"
        + table(results)
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
