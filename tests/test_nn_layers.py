"""cwy_manifolds.nn layers: OrthogonalLinear, the orthogonal RNN, the copying task."""

import geoopt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _nn_support import F64, gram_error, one_thread
from _reference import haar, tol
from torch import nn

import cwy_manifolds as cm
import cwy_manifolds.nn as cnn
import cwy_manifolds.nn._recurrence as recurrence
from cwy_manifolds.nn import (
    OrthogonalLinear,
    OrthogonalRNN,
    OrthogonalRNNCell,
    orthogonalize,
)

__all__ = ["one_thread"]  # the autouse fixture


# -- OrthogonalLinear -----------------------------------------------------------------------

LAYERS = {
    "cwy": ((6, 6), {}),
    "cwy-L3-det-1": ((6, 6), {"n_reflections": 3, "det": -1}),
    "tcwy-tall": ((3, 7), {}),
    "tcwy-wide": ((7, 3), {"bias": False}),
    "geoopt-cwy": ((6, 6), {"manifold_parameter": True}),
    "geoopt-tcwy-wide": ((7, 3), {"manifold_parameter": True}),
    "geoopt-cayley": ((3, 7), {"manifold_parameter": True, "method": "cayley"}),
    "geoopt-exp-wide": ((7, 3), {"manifold_parameter": True, "method": "exp"}),
    "geoopt-qr-square": ((5, 5), {"manifold_parameter": True, "method": "qr"}),
}


@pytest.fixture(params=list(LAYERS))
def layer_case(request):
    (in_features, out_features), options = LAYERS[request.param]
    return OrthogonalLinear(in_features, out_features, dtype=F64, **options), options


def _kind(layer):
    """Options of orthogonalize() for a matrix the layer reaches."""
    manifold = layer.parametrizations.weight[0].manifold
    if isinstance(manifold, cm.CWY):
        return {"det": manifold.det, "n_reflections": manifold.n_reflections}
    square = layer.in_features == layer.out_features
    return {} if square else {"method": "tcwy"}


def test_linear_forward_and_orthogonality(layer_case):
    layer, options = layer_case
    x = torch.randn(2, 4, layer.in_features, dtype=F64)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
    w = layer.weight
    assert w.shape == (layer.out_features, layer.in_features)
    assert gram_error(w) <= tol(max(w.shape), F64)
    point = layer.parametrizations.weight.original
    assert isinstance(point, geoopt.ManifoldParameter) == options.get("manifold_parameter", False)
    if isinstance(point, geoopt.ManifoldParameter):
        assert point.manifold is layer.parametrizations.weight[0].manifold
        tall = w if w.shape[0] >= w.shape[1] else w.mT
        torch.testing.assert_close(cm.matrix(point), tall)


def test_linear_weight_assignment(layer_case):
    layer, _ = layer_case
    w = torch.randn(layer.out_features, layer.in_features, dtype=F64)
    target = orthogonalize(w, **_kind(layer))
    layer.weight = target
    torch.testing.assert_close(layer.weight, target)


def test_linear_layer_errors():
    with pytest.raises(ValueError, match="only a geoopt optimizer does: use a layer with"):
        OrthogonalLinear(4, 4, method="cayley")
    with pytest.raises(ValueError, match="method must be one of 'cwy', 'tcwy', 'cayley'"):
        OrthogonalLinear(4, 4, method="stiefel", manifold_parameter=True)


def test_riemannian_adam_on_cwy_takes_the_steps_of_torch_adam():
    """Flat geometry, elementwise component_inner: the claim of the docstring."""
    torch.manual_seed(1)
    plain = OrthogonalLinear(6, 4, dtype=F64)
    geo = OrthogonalLinear(6, 4, dtype=F64, manifold_parameter=True)
    geo.load_state_dict(plain.state_dict())
    x, y = torch.randn(16, 6, dtype=F64), torch.randn(16, 4, dtype=F64)
    for layer, optimizer in (
        (plain, torch.optim.Adam(plain.parameters(), lr=0.01)),
        (geo, geoopt.optim.RiemannianAdam(geo.parameters(), lr=0.01)),
    ):
        for _ in range(5):
            optimizer.zero_grad()
            F.mse_loss(layer(x), y).backward()
            optimizer.step()
    torch.testing.assert_close(geo.weight, plain.weight)


def test_geoopt_optimizer_mixes_manifolds_in_one_model():
    torch.manual_seed(2)
    model = nn.Sequential(
        OrthogonalLinear(8, 8, manifold_parameter=True, dtype=F64),
        nn.Tanh(),
        OrthogonalLinear(8, 3, manifold_parameter=True, method="cayley", dtype=F64),
    )
    model.append(nn.Linear(3, 2, dtype=F64))
    stiefel = geoopt.ManifoldParameter(geoopt.Stiefel().random(3, 3, dtype=F64))
    optimizer = geoopt.optim.RiemannianAdam([*model.parameters(), stiefel], lr=0.01)
    x, y = torch.randn(32, 8, dtype=F64), torch.randn(32, 2, dtype=F64)

    def loss():
        return F.mse_loss(model(x) @ stiefel[:2, :2], y)

    start = loss().item()
    for _ in range(40):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < start
    for layer in (model[0], model[2]):
        assert gram_error(layer.weight) <= 1e-10


# -- RNN ------------------------------------------------------------------------------------

RNNS = {
    "L=N": {},
    "L=N-det-1-tanh": {"det": -1, "nonlinearity": "tanh"},
    "L<N": {"n_reflections": 3},
    "L<N-flip-relu": {"n_reflections": 2, "det": -1, "nonlinearity": "relu"},
    "L<N-geoopt": {"n_reflections": 3, "manifold_parameter": True},
}


@pytest.fixture(params=list(RNNS))
def rnn_options(request):
    return RNNS[request.param]


def _reference_rnn(rnn, x, h):
    """The textbook loop with the dense recurrent matrix, (T, B, I) -> (T, B, N)."""
    cell = rnn.cell
    w = cell.weight_hh
    assert gram_error(w) <= tol(w.shape[0], F64)
    outputs = []
    for xt in x:
        z = xt @ cell.weight_ih.mT + h @ w.mT
        if cell.nonlinearity == "modrelu":
            h = torch.sign(z) * torch.clamp(z.abs() + cell.bias, min=0)
        else:
            z = z + cell.bias
            h = torch.tanh(z) if cell.nonlinearity == "tanh" else torch.relu(z)
        outputs.append(h)
    return torch.stack(outputs), h


def test_rnn_matches_the_dense_loop(rnn_options):
    rnn = OrthogonalRNN(3, 7, dtype=F64, **rnn_options)
    x, h0 = torch.randn(6, 2, 3, dtype=F64), torch.randn(1, 2, 7, dtype=F64)
    output, h_n = rnn(x, h0)
    expected, h_last = _reference_rnn(rnn, x, h0[0])
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(h_n, h_last[None])
    grads = torch.autograd.grad(output.square().sum(), list(rnn.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(), list(rnn.parameters()))
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)


def test_rnn_layouts():
    rnn = OrthogonalRNN(3, 5, batch_first=True, dtype=F64)
    x = torch.randn(2, 4, 3, dtype=F64)
    output, h_n = rnn(x)
    time_major, _ = _reference_rnn(rnn, x.transpose(0, 1), torch.zeros(2, 5, dtype=F64))
    torch.testing.assert_close(output, time_major.transpose(0, 1))
    assert h_n.shape == (1, 2, 5)
    single, h_single = rnn(x[0], torch.zeros(1, 5, dtype=F64))  # unbatched: (T, I)
    torch.testing.assert_close(single, output[0])
    assert h_single.shape == (1, 5)
    empty, h_empty = rnn(x[:, :0])
    assert empty.shape == (2, 0, 5)
    assert h_empty.shape == (1, 2, 5)


def test_cell_is_one_step_of_the_rnn(rnn_options):
    rnn = OrthogonalRNN(3, 7, dtype=F64, **rnn_options)
    x, h = torch.randn(1, 2, 3, dtype=F64), torch.randn(1, 2, 7, dtype=F64)
    torch.testing.assert_close(rnn.cell(x[0], h[0]), rnn(x, h)[0][0])
    torch.testing.assert_close(rnn.cell(x[0, 0], h[0, 0]), rnn(x, h)[0][0, 0])
    torch.testing.assert_close(rnn.cell(x[0, 0]), rnn(x[:, :1])[0][0, 0])  # hx = 0


CHECKED_NAME = "weight_hh's reflection vectors (parametrizations.weight_hh.original)"


@pytest.mark.parametrize("count", [None, 3], ids=["L=N", "L<N"])
def test_rnn_prepares_the_recurrent_map_once(count, monkeypatch):
    rnn = OrthogonalRNN(3, 7, n_reflections=count)
    formed, checked = [], []
    rnn.cell.parametrizations.weight_hh[0].register_forward_hook(lambda *a: formed.append(1))
    check = recurrence.column_scale
    monkeypatch.setattr(
        recurrence, "column_scale", lambda *a, **k: checked.append(a[1]) or check(*a, **k)
    )
    rnn(torch.randn(5, 2, 3))
    if count is None:  # formed once (the core checks the vectors there)
        assert (len(formed), len(checked)) == (1, 0)
    else:  # matrix-free: the cell checks the vectors once per sequence
        assert (len(formed), checked) == (0, [CHECKED_NAME])
    assert cm.value_checks_enabled()


def test_rnn_weight_hh_assignment():
    rnn = OrthogonalRNN(2, 5, det=-1, dtype=F64)
    target = haar(5, det=-1)
    rnn.cell.weight_hh = target
    torch.testing.assert_close(rnn.cell.weight_hh, target)
    with pytest.raises(ValueError, match=r"weight_hh cannot be assigned.*determinant -1"):
        rnn.cell.weight_hh = haar(5, det=1)


def test_rnn_errors():
    with pytest.raises(ValueError, match="nonlinearity must be one of 'modrelu', 'tanh'"):
        OrthogonalRNN(2, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="bias must be True for nonlinearity 'modrelu'"):
        OrthogonalRNNCell(2, 4, bias=False)
    rnn = OrthogonalRNN(2, 4)
    with pytest.raises(ValueError, match=r"input must have shape \(T, B, input_size\)"):
        rnn(torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match=r"hx must have shape \(1, 2, 4\); got \(2, 4\)"):
        rnn(torch.randn(5, 2, 2), torch.zeros(2, 4))
    OrthogonalRNNCell(2, 4, bias=False, nonlinearity="tanh")


# -- copying-memory task --------------------------------------------------------------------


def test_copying_memory_data():
    x, y = cnn.copying_memory(4, 6, length=3, n_symbols=5)
    assert x.shape == y.shape == (12, 4)
    assert bool((x[:3] >= 1).all() and (x[:3] <= 5).all())
    assert bool((x[3:9] == 0).all() and (x[9] == 6).all() and (x[10:] == 0).all())
    assert bool((y[:9] == 0).all() and (y[9:] == x[:3]).all())
    assert cnn.copying_memory_baseline(6, length=3, n_symbols=5) == pytest.approx(
        3 * np.log(5) / 12
    )


def test_copying_memory_tiny_run_beats_the_baseline():
    """The test-suite version of examples/plot_copying_task.py."""
    torch.manual_seed(0)
    delay, length, symbols = 8, 3, 4
    rnn = OrthogonalRNN(symbols + 2, 16)
    readout = nn.Linear(16, symbols + 1)
    optimizer = torch.optim.Adam([*rnn.parameters(), *readout.parameters()], lr=0.01)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        x, y = cnn.copying_memory(64, delay, length=length, n_symbols=symbols, generator=gen)
        logits = readout(rnn(F.one_hot(x, symbols + 2).float())[0])
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    baseline = cnn.copying_memory_baseline(delay, length=length, n_symbols=symbols)
    assert sum(losses[-10:]) / 10 < 0.5 * baseline
