"""The orthogonal RNN's recurrence: the fused loop against plain autograd; one graph compiled."""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
import torch
from _nn_support import F64, one_thread
from torch import nn

import cwy_manifolds as cm
from cwy_manifolds.nn import OrthogonalLinear, OrthogonalRNN, orthogonal

__all__ = ["one_thread"]  # the autouse fixture

RNNS = {
    "L=N-modrelu": {},
    "L=N-tanh-det-1": {"nonlinearity": "tanh", "det": -1},
    "L=N-relu": {"nonlinearity": "relu"},
    "L<N-modrelu": {"n_reflections": 3},
    "L<N-tanh-flip": {"n_reflections": 2, "nonlinearity": "tanh"},
    "L<N-relu-det-1": {"n_reflections": 3, "det": -1, "nonlinearity": "relu"},
}


def _dense_reference(rnn, x, h):
    """The textbook loop with the dense recurrent matrix and plain autograd."""
    cell = rnn.cell
    w = cell.weight_hh
    outputs = []
    for xt in x:
        z = xt @ cell.weight_ih.mT + h @ w.mT
        if cell.nonlinearity == "modrelu":
            h = torch.sign(z) * torch.relu(z.abs() + cell.bias)
        else:
            z = z + cell.bias
            h = torch.tanh(z) if cell.nonlinearity == "tanh" else torch.relu(z)
        outputs.append(h)
    return torch.stack(outputs)


@pytest.mark.parametrize("name", RNNS)
def test_fused_recurrence_matches_autograd_of_the_dense_loop(name):
    rnn = OrthogonalRNN(3, 7, dtype=F64, **RNNS[name])
    x = torch.randn(9, 4, 3, dtype=F64, requires_grad=True)
    h0 = torch.randn(1, 4, 7, dtype=F64, requires_grad=True)
    output, h_n = rnn(x, h0)
    expected = _dense_reference(rnn, x, h0[0])
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(h_n[0], expected[-1])
    inputs = [x, h0, *rnn.parameters()]
    weights = torch.randn_like(output)
    grads = torch.autograd.grad((output * weights).sum() + h_n.sum(), inputs)
    ref = torch.autograd.grad((expected * weights).sum() + expected[-1].sum(), inputs)
    for g, e in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, e)


VECTORS = "cell.parametrizations.weight_hh.original"


@pytest.mark.parametrize("name", ["L=N-tanh-det-1", "L<N-tanh-flip", "L<N-modrelu"])
def test_second_derivatives(name):
    """create_graph differentiates a recomputation (Note [fused recurrence])."""
    rnn = OrthogonalRNN(2, 4, dtype=F64, **RNNS[name])
    params = dict(rnn.named_parameters())

    def output(x, h0, v):
        return torch.func.functional_call(rnn, {**params, VECTORS: v}, (x, h0))[0]

    x = torch.randn(3, 2, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(1, 2, 4, dtype=F64, requires_grad=True)
    v = params[VECTORS].detach().clone().requires_grad_()
    assert torch.autograd.gradgradcheck(output, (x, h0, v))


@pytest.mark.parametrize("name", RNNS)
def test_create_graph_and_torch_func_give_the_same_gradients(name):
    """Also with create_graph=True and under torch.func.grad (both recompute)."""
    rnn = OrthogonalRNN(3, 6, dtype=F64, **RNNS[name])
    params = dict(rnn.named_parameters())
    x = torch.randn(5, 2, 3, dtype=F64)

    def loss(p):
        return torch.func.functional_call(rnn, p, (x,))[0].square().sum()

    plain = torch.autograd.grad(loss(params), list(params.values()))
    graph = torch.autograd.grad(loss(params), list(params.values()), create_graph=True)
    func = torch.func.grad(loss)(params)
    for p, g, f in zip(plain, graph, func.values(), strict=True):
        torch.testing.assert_close(g, p)
        torch.testing.assert_close(f, p)


def test_no_grad_and_unbatched_and_empty():
    rnn = OrthogonalRNN(3, 5, n_reflections=2, dtype=F64)
    x = torch.randn(4, 3, dtype=F64)
    with torch.no_grad():
        out, h = rnn(x)
    assert out.shape == (4, 5)
    assert h.shape == (1, 5)
    out, h = rnn(x[:0])
    assert out.shape == (0, 5)
    assert bool((h == 0).all())


# -- torch.compile: one graph ---------------------------------------------------------------

script_method_warning = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)
dynamo_grad_warning = pytest.mark.filterwarnings(
    "ignore:The .grad attribute of a Tensor that is not a leaf Tensor:UserWarning"
)

COMPILED = {
    "OrthogonalRNN-L<N": (lambda: OrthogonalRNN(3, 6, n_reflections=2), (5, 2, 3)),
    "OrthogonalRNN-L=N": (lambda: OrthogonalRNN(3, 6), (5, 2, 3)),
    "OrthogonalRNN-L=N-tanh": (lambda: OrthogonalRNN(3, 6, nonlinearity="tanh"), (5, 2, 3)),
    "orthogonal-Sequential": (
        lambda: nn.Sequential(orthogonal(nn.Linear(5, 5)), nn.Tanh(), orthogonal(nn.Linear(5, 3))),
        (4, 5),
    ),
    "OrthogonalLinear": (lambda: OrthogonalLinear(6, 3), (2, 6)),
    "orthogonal-Conv2d": (lambda: orthogonal(nn.Conv2d(2, 3, 3), flatten=True), (1, 2, 5, 5)),
}


def _explain(module, x, checks):
    torch._dynamo.reset()
    try:
        with cm.set_value_checks(checks):
            return torch._dynamo.explain(module)(x)
    finally:
        torch._dynamo.reset()


@script_method_warning
@dynamo_grad_warning
@pytest.mark.parametrize("checks", [True, False], ids=["checks-on", "checks-off"])
@pytest.mark.parametrize("name", COMPILED)
def test_one_graph(name, checks):
    """On the CPU the value checks are assertions inside the graph (Note [value checks])."""
    factory, shape = COMPILED[name]
    explanation = _explain(factory(), torch.randn(shape), checks=checks)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), [
        r.reason for r in explanation.break_reasons
    ]


HAS_COMPILER = shutil.which(os.environ.get("CXX", "g++")) is not None


@pytest.mark.skipif(not HAS_COMPILER, reason="inductor needs a C++ compiler")
@script_method_warning
@dynamo_grad_warning
@pytest.mark.filterwarnings("ignore:.*torch._prims_common.check.*:FutureWarning")
def test_compiled_rnn_trains_like_eager():
    torch._dynamo.reset()
    rnn = OrthogonalRNN(3, 6, n_reflections=2, dtype=F64)
    x = torch.randn(4, 2, 3, dtype=F64)
    with cm.set_value_checks(False):
        compiled = torch.compile(rnn, backend="aot_eager", fullgraph=True)
        fast = compiled(x)[0]
    eager = rnn(x)[0]
    torch.testing.assert_close(fast, eager)
    params = list(rnn.parameters())
    for g, e in zip(
        torch.autograd.grad(fast.square().sum(), params),
        torch.autograd.grad(eager.square().sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(g, e)
    torch._dynamo.reset()


# -- scripts/rnn_bench.py -------------------------------------------------------------------

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "rnn_bench.py"
_spec = importlib.util.spec_from_file_location("rnn_bench", SCRIPT)
rnn_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rnn_bench)


def test_rnn_bench_prints_a_table(capsys):
    argv = ["--hidden", "8", "16", "--steps", "3", "--batch", "2", "--input-size", "2"]
    argv += ["--repeats", "2", "--steps-per-repeat", "1", "--warmup", "0"]
    text = rnn_bench.main(argv)
    assert capsys.readouterr().out.strip() == text.strip()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| model | ms/step N=8 | x torch-cayley | ms/step N=16")
    assert [r.split(" | ")[0][2:] for r in rows[1:]] == list(rnn_bench.MODELS)
    reference = next(r for r in rows if r.startswith(f"| {rnn_bench.REFERENCE} |"))
    assert reference.split(" | ")[2] == "1.00"


@pytest.mark.parametrize("count", [None, 2], ids=["L=N", "L<N"])
def test_autocast(count):
    rnn = OrthogonalRNN(3, 6, n_reflections=count)
    x = torch.randn(5, 2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, h_n = rnn(x, torch.zeros(1, 2, 6))
    assert h_n.dtype == torch.bfloat16
    assert output.dtype == torch.bfloat16
    output.float().sum().backward()
    expected, _ = rnn(x)
    torch.testing.assert_close(output.float(), expected, atol=0.05, rtol=0.05)
