"""cwy_manifolds.nn: the parametrization, the layers, the RNN, compile and serialization."""

import copy
import io
import os
import pickle
import shutil

import geoopt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _reference import haar, orthogonality_error, tol
from torch import nn
from torch.nn.utils import parametrize

import cwy_manifolds as cm
import cwy_manifolds.nn as cnn
from cwy_manifolds.nn import (
    OrthogonalLinear,
    OrthogonalRNN,
    OrthogonalRNNCell,
    orthogonal,
    orthogonalize,
)

F64 = torch.float64

# id -> (weight shape (rows, cols), options of orthogonal())
CASES = {
    "cwy": ((6, 6), {}),
    "cwy-det-1": ((5, 5), {"det": -1}),
    "cwy-L2": ((6, 6), {"n_reflections": 2}),
    "cwy-L2-det-1": ((5, 5), {"n_reflections": 2, "det": -1}),
    "tcwy-tall": ((7, 3), {}),
    "tcwy-wide": ((3, 7), {}),
    "tcwy-square-even": ((4, 4), {"method": "tcwy"}),
    "tcwy-square-odd": ((5, 5), {"method": "tcwy"}),
}
DTYPES = {"float64": F64, "float32": torch.float32, "bfloat16": torch.bfloat16}


def _linear(shape, dtype=F64, **options):
    rows, cols = shape
    return orthogonal(nn.Linear(cols, rows, dtype=dtype), **options)


def _det(shape, options):
    """Determinant the case reaches, None for non-square weights."""
    n = shape[0]
    if shape[0] != shape[1]:
        return None
    return (-1) ** n if options.get("method") == "tcwy" else options.get("det", 1)


def _gram_error(w):
    """||W^T W - I|| for tall W, ||W W^T - I|| for wide W."""
    return orthogonality_error(w if w.shape[0] >= w.shape[1] else w.mT)


def _target(shape, options, seed=3):
    """A float64 matrix of the kind the case reaches (reachable also for L < N)."""
    rows, cols = shape
    if options.get("n_reflections") is not None:
        manifold = cm.CWY(det=options.get("det", 1), n_reflections=options["n_reflections"])
        v = torch.randn(rows, options["n_reflections"], dtype=F64)
        return manifold.matrix(v)
    tall = haar(max(shape), min(shape), det=_det(shape, options), seed=seed)
    return tall if rows >= cols else tall.mT.contiguous()


@pytest.fixture(autouse=True)
def _one_thread():
    """Small matrices: a second thread only adds overhead, and on a busy 2-core machine
    OpenMP's spinning threads slow these tests down a hundredfold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=list(CASES))
def case(request):
    return CASES[request.param]


# -- registration ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_registered_weight_is_orthogonal_of_the_right_kind(case, dtype):
    shape, options = case
    layer = _linear(shape, dtype, **options)
    w = layer.weight
    assert w.shape == shape
    assert w.dtype == dtype
    assert _gram_error(w) <= tol(max(shape), dtype)
    if _det(shape, options) is not None:
        assert round(float(torch.linalg.det(w.detach().double()))) == _det(shape, options)
    original = layer.parametrizations.weight.original
    count = options.get("n_reflections", min(shape))
    assert original.shape == (max(shape), count)


def test_registration_uses_the_nearest_matrix(case):
    """Kabsch: max tr(Q^T W) is the sum of the singular values, the smallest one negated
    when the determinant of W has the wrong sign. L < N: agrees with it on L columns."""
    shape, options = case
    layer = nn.Linear(shape[1], shape[0], dtype=F64)
    w = layer.weight.detach().clone()
    q = orthogonal(layer, **options).weight.detach()
    torch.testing.assert_close(orthogonalize(w, **options), q)
    sigma = np.linalg.svd(w.numpy(), compute_uv=False)
    det = _det(shape, options)
    if det is not None and np.sign(np.linalg.det(w.numpy())) != det:
        sigma[-1] *= -1
    if options.get("n_reflections") is None:
        assert float(torch.trace(q.mT @ w)) == pytest.approx(sigma.sum(), abs=1e-10)
        return
    full = orthogonalize(w, det=options.get("det", 1))
    agree = torch.linalg.vector_norm(q - full, dim=0) < 1e-10
    assert int(agree.sum()) >= options["n_reflections"]


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("seed", range(3))
def test_large_float32_weights_get_the_determinant(det, seed):
    """det() of a 400 x 400 orthogonal matrix under- or overflows in float32; slogdet not."""
    gen = torch.Generator().manual_seed(seed)
    q = orthogonalize(torch.randn(400, 400, generator=gen), det=det)
    assert torch.linalg.slogdet(q.double()).sign == det


def test_registration_keeps_the_parameter_object():
    layer = nn.Linear(4, 4, dtype=F64)
    before = layer.weight
    orthogonal(layer)
    assert layer.parametrizations.weight.original is before


def test_gradient_is_orthogonal_to_each_column():
    """Note [scale invariance]: the reason weight decay on V is harmful."""
    layer = _linear((6, 6))
    layer(torch.randn(3, 6, dtype=F64)).square().sum().backward()
    v = layer.parametrizations.weight.original
    assert (v * v.grad).sum(0).abs().max() < 1e-9 * v.grad.abs().max()


# -- assignment -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_assignment_round_trips(case, dtype):
    shape, options = case
    layer = _linear(shape, dtype, **options)
    original = layer.parametrizations.weight.original
    target = _target(shape, options).to(dtype)
    layer.weight = target
    assert layer.parametrizations.weight.original is original
    torch.testing.assert_close(layer.weight, target, atol=tol(max(shape), dtype), rtol=0)


BAD_VALUES = {
    "not-orthogonal": (lambda q: 1.1 * q, "weight must have orthonormal columns; got max"),
    "wrong-det": (cm.manifolds._base.flip_last_column, "weight must have determinant \\+1"),
    "wrong-shape": (lambda q: q[:, :3], r"weight must have shape \(5, 5\); got \(5, 3\)"),
    "nan": (lambda q: q * float("nan"), "weight must have finite entries"),
    "rank-3": (lambda q: q[None], "weight must be a 2-D matrix"),
    "not-a-tensor": (lambda q: q.tolist(), "weight must be a torch.Tensor; got list"),
}


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_assignment_rejects_other_kinds(bad):
    layer = _linear((5, 5))
    make, match = BAD_VALUES[bad]
    with pytest.raises((ValueError, TypeError), match=match):
        layer.weight = make(haar(5, det=1))


def test_assignment_rejects_matrices_out_of_reach_of_few_reflections():
    layer = _linear((5, 5), n_reflections=2)
    with pytest.raises(ValueError, match=r"weight cannot be reached.*n_reflections = 2"):
        layer.weight = haar(5, det=1)
    layer.weight = orthogonalize(torch.randn(5, 5, dtype=F64), n_reflections=2)


def test_wide_assignment_names_rows():
    layer = _linear((3, 7))
    with pytest.raises(ValueError, match="orthonormal rows"):
        layer.weight = 2 * _target((3, 7), {})


# -- optimizers and caching -----------------------------------------------------------------

OPTIMIZERS = {
    "SGD-momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    "Adam": lambda p: torch.optim.Adam(p, lr=0.02),
    "AdamW-no-decay": lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=0.0),
    "RMSprop": lambda p: torch.optim.RMSprop(p, lr=0.005),
    "Adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1),
    "LBFGS": lambda p: torch.optim.LBFGS(p, lr=0.5, max_iter=5),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("shape", [(6, 6), (8, 3)], ids=["cwy", "tcwy"])
def test_torch_optim_fits_a_target_and_stays_orthogonal(name, shape):
    layer = orthogonal(nn.Linear(shape[1], shape[0], bias=False, dtype=F64))
    target = _target(shape, {}, seed=7)
    optimizer = OPTIMIZERS[name](layer.parameters())

    def closure():
        optimizer.zero_grad()
        loss = (layer.weight - target).square().sum()
        loss.backward()
        return loss

    start = closure().item()
    for _ in range(30):
        optimizer.step(closure)
    assert closure().item() < 0.5 * start
    assert _gram_error(layer.weight) <= tol(max(shape), F64)


def test_cached_forms_the_weight_once():
    layer = _linear((6, 6))
    calls = []
    layer.parametrizations.weight[0].register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(4, 6, dtype=F64)
    with parametrize.cached():
        y = layer(x) + layer(x)
        assert layer.weight is layer.weight
    assert len(calls) == 1
    y.sum().backward()
    v = layer.parametrizations.weight.original
    cached_grad, v.grad = v.grad.clone(), None
    (layer(x) + layer(x)).sum().backward()
    torch.testing.assert_close(cached_grad, v.grad)


# -- bad input ------------------------------------------------------------------------------

BAD_OPTIONS = {
    "unknown-method": ((4, 4), {"method": "foo"}, "method must be one of 'cwy', 'tcwy'; got 'foo'"),
    "torch-method": ((4, 4), {"method": "householder"}, "must be one of.*got 'householder'"),
    "retraction-method": ((4, 4), {"method": "cayley"}, "only a geoopt optimizer does"),
    "cwy-not-square": ((3, 5), {"method": "cwy"}, r"square for method 'cwy'; got shape \(3, 5\)"),
    "det-with-tcwy": ((6, 3), {"det": -1}, "det must be None for method 'tcwy'"),
    "count-with-tcwy": ((6, 3), {"n_reflections": 2}, "n_reflections must be None for method"),
    "det-2": ((4, 4), {"det": 2}, "det must be \\+1 or -1; got 2"),
    "too-many": ((4, 4), {"n_reflections": 5}, "n_reflections must be at most N = 4; got 5"),
    "negative": ((4, 4), {"n_reflections": -1}, "n_reflections must be a non-negative integer"),
}


@pytest.mark.parametrize("bad", BAD_OPTIONS)
def test_bad_options(bad):
    shape, options, match = BAD_OPTIONS[bad]
    with pytest.raises(ValueError, match=match):
        _linear(shape, **options)
    with pytest.raises(ValueError, match=match):
        orthogonalize(torch.randn(shape), **options)


def test_bad_tensors():
    with pytest.raises(ValueError, match=r"bias must be a 2-D matrix .*got shape \(3,\)"):
        orthogonal(nn.Linear(2, 3), "bias")
    with pytest.raises(ValueError, match=r"weight must be a 2-D matrix .*\(2, 3, 3, 3\)"):
        orthogonal(nn.Conv2d(3, 2, 3))
    with pytest.raises(ValueError, match="name must be a parameter or buffer of module; got 'w'"):
        orthogonal(nn.Linear(2, 2), "w")
    module = nn.Module()
    module.register_buffer("weight", torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="weight must be a real floating-point tensor; got"):
        orthogonal(module)
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module; got Tensor"):
        orthogonal(torch.eye(3))
    layer = orthogonal(nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"already parametrized.*remove_parametrizations"):
        orthogonal(layer)


def test_buffers_can_be_parametrized():
    module = nn.Module()
    module.register_buffer("weight", torch.randn(5, 2, dtype=F64))
    orthogonal(module)
    assert _gram_error(module.weight) <= tol(5, F64)
    assert not module.parametrizations.weight.original.requires_grad


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
    manifold = layer.weight_map.manifold
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
    assert _gram_error(w) <= tol(max(w.shape), F64)
    point = layer.weight_original
    assert isinstance(point, geoopt.ManifoldParameter) == options.get("manifold_parameter", False)
    if isinstance(point, geoopt.ManifoldParameter):
        assert point.manifold is layer.weight_map.manifold
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
        assert _gram_error(layer.weight) <= 1e-10


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
    assert _gram_error(w) <= tol(w.shape[0], F64)
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


@pytest.mark.parametrize("count", [None, 3], ids=["L=N", "L<N"])
def test_rnn_prepares_the_recurrent_map_once(count, monkeypatch):
    rnn = OrthogonalRNN(3, 7, n_reflections=count)
    formed, applied = [], []
    rnn.cell.weight_hh_map.register_forward_hook(lambda *args: formed.append(1))
    apply = cnn.rnn.cwy_apply

    def counting_apply(v, x, **kwargs):
        applied.append(cm.value_checks_enabled())
        return apply(v, x, **kwargs)

    monkeypatch.setattr(cnn.rnn, "cwy_apply", counting_apply)
    rnn(torch.randn(5, 2, 3))
    if count is None:
        assert (len(formed), applied) == (1, [])
    else:  # matrix-free, and the vectors are checked at the first step only
        assert (len(formed), applied) == (0, [True, False, False, False, False])
    assert cm.value_checks_enabled()


@pytest.mark.parametrize("count", [None, 3], ids=["L=N", "L<N"])
def test_rnn_rejects_a_zero_column(count):
    rnn = OrthogonalRNN(3, 7, n_reflections=count)
    with torch.no_grad():
        rnn.cell.weight_hh_original[:, 1] = 0
    with pytest.raises(ValueError, match="v must have no zero columns"):
        rnn(torch.randn(4, 2, 3))
    assert cm.value_checks_enabled()


def test_rnn_weight_hh_assignment():
    rnn = OrthogonalRNN(2, 5, det=-1, dtype=F64)
    target = haar(5, det=-1)
    rnn.cell.weight_hh = target
    torch.testing.assert_close(rnn.cell.weight_hh, target)
    with pytest.raises(ValueError, match="weight_hh must have determinant -1"):
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


# -- torch.compile --------------------------------------------------------------------------

HAS_COMPILER = shutil.which(os.environ.get("CXX", "g++")) is not None
needs_compiler = pytest.mark.skipif(not HAS_COMPILER, reason="torch.compile needs a C++ compiler")
# torch 2.13's own deprecations, hit while importing and running dynamo and inductor
inductor_check_warning = pytest.mark.filterwarnings(
    "ignore:.*torch._prims_common.check.*:FutureWarning"
)
script_method_warning = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)
# dynamo reads `.grad` of non-leaf tensors when it resumes after a graph break
dynamo_grad_warning = pytest.mark.filterwarnings(
    "ignore:The .grad attribute of a Tensor that is not a leaf Tensor:UserWarning"
)

COMPILED = {
    "orthogonal-linear": (lambda: orthogonal(nn.Linear(5, 5, dtype=F64)), (3, 5)),
    "OrthogonalLinear-wide": (lambda: OrthogonalLinear(6, 3, dtype=F64), (3, 6)),
    "OrthogonalRNN-L<N": (lambda: OrthogonalRNN(3, 6, n_reflections=2, dtype=F64), (3, 2, 3)),
    "OrthogonalRNN-L=N": (lambda: OrthogonalRNN(3, 6, dtype=F64), (3, 2, 3)),
}


def _output(module, x):
    y = module(x)
    return y[0] if isinstance(y, tuple) else y


def _first_vectors(module):
    return next(p for name, p in module.named_parameters() if name.endswith("original"))


# inductor (C++ code generation, slow to compile) for the main entry point, dynamo and
# AOTAutograd without code generation for the others
BACKENDS = {
    "orthogonal-linear": "inductor",
    "OrthogonalLinear-wide": "aot_eager",
    "OrthogonalRNN-L<N": "aot_eager",
}


@needs_compiler
@pytest.mark.parametrize("name", BACKENDS)
@inductor_check_warning
@script_method_warning
@dynamo_grad_warning
def test_compiled_matches_eager_and_keeps_value_errors(name):
    """Note [value checks under torch.compile]: a graph break, the same values and errors."""
    torch._dynamo.reset()
    factory, shape = COMPILED[name]
    module, x = factory(), torch.randn(shape, dtype=F64)
    compiled = torch.compile(module, backend=BACKENDS[name])
    params = list(module.parameters())
    eager = _output(module, x)
    fast = _output(compiled, x)
    torch.testing.assert_close(fast, eager)
    for g, e in zip(
        torch.autograd.grad(fast.square().sum(), params),
        torch.autograd.grad(eager.square().sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(g, e)
    with torch.no_grad():
        _first_vectors(module)[:, 0] = 0
    with pytest.raises(ValueError, match="v must have no zero columns"):
        _output(compiled, x)


@script_method_warning
@dynamo_grad_warning
@pytest.mark.parametrize("name", COMPILED)
def test_value_checks_off_leave_no_graph_break_of_theirs(name):
    factory, shape = COMPILED[name]
    module, x = factory(), torch.randn(shape, dtype=F64)

    def break_files(checks):
        torch._dynamo.reset()
        with cm.set_value_checks(checks):
            explanation = torch._dynamo.explain(module)(x)
        return {frame.filename for r in explanation.break_reasons for frame in r.user_stack}

    assert any(f.endswith("_checks.py") for f in break_files(True))
    assert not any(f.endswith("_checks.py") for f in break_files(False))
    torch._dynamo.reset()


# -- saving, copying, converting ------------------------------------------------------------

MODULES = {
    "orthogonal-wide": (lambda: orthogonal(nn.Linear(5, 3, dtype=F64)), (2, 5)),
    "orthogonal-L2-det-1": (
        lambda: orthogonal(nn.Linear(5, 5, dtype=F64), n_reflections=2, det=-1),
        (2, 5),
    ),
    "OrthogonalLinear": (lambda: OrthogonalLinear(4, 6, dtype=F64), (2, 4)),
    "OrthogonalLinear-geoopt-cayley": (
        lambda: OrthogonalLinear(6, 4, manifold_parameter=True, method="cayley", dtype=F64),
        (2, 6),
    ),
    "OrthogonalRNN-geoopt-L<N": (
        lambda: OrthogonalRNN(3, 5, n_reflections=2, manifold_parameter=True, dtype=F64),
        (4, 2, 3),
    ),
}
LAYER_MODULES = [name for name in MODULES if not name.startswith("orthogonal-")]


@pytest.fixture(params=list(MODULES))
def module_case(request):
    factory, shape = MODULES[request.param]
    return request.param, factory, torch.randn(shape, dtype=F64)


def test_state_dict_loads_with_weights_only(module_case):
    _, factory, x = module_case
    saved = factory()
    buffer = io.BytesIO()
    torch.save(saved.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    loaded = factory()  # other random values until the state is loaded
    assert not torch.allclose(_output(loaded, x), _output(saved, x))
    loaded.load_state_dict(state)
    torch.testing.assert_close(_output(loaded, x), _output(saved, x))


def test_deepcopy_is_independent(module_case):
    _, factory, x = module_case
    module = factory()
    clone = copy.deepcopy(module)
    torch.testing.assert_close(_output(clone, x), _output(module, x))
    before = _output(module, x).detach()
    with torch.no_grad():
        _first_vectors(clone).mul_(-1).add_(0.1)
    torch.testing.assert_close(_output(module, x), before)
    for p in clone.parameters():
        if isinstance(p, geoopt.ManifoldParameter):
            assert p.manifold in list(clone.modules())  # still the layer's own manifold


@pytest.mark.parametrize("name", LAYER_MODULES)
def test_layers_pickle(name):
    factory, shape = MODULES[name]
    module, x = factory(), torch.randn(shape, dtype=F64)
    clone = pickle.loads(pickle.dumps(module))
    torch.testing.assert_close(_output(clone, x), _output(module, x))


def test_parametrized_modules_do_not_pickle():
    """PyTorch's rule for every parametrization, documented in orthogonal()."""
    with pytest.raises(RuntimeError, match="only supported through state_dict"):
        pickle.dumps(orthogonal(nn.Linear(3, 3)))


def test_to_dtype(module_case):
    _, factory, x = module_case
    module = factory().to(torch.float32)
    y = _output(module, x.float())
    assert y.dtype == torch.float32
    for p in module.parameters():
        assert p.dtype == torch.float32
    weights = [m.weight for m in module.modules() if isinstance(m, (nn.Linear, OrthogonalLinear))]
    weights += [m.weight_hh for m in module.modules() if isinstance(m, OrthogonalRNNCell)]
    for w in weights:
        assert _gram_error(w) <= tol(max(w.shape), torch.float32)
    kinds = [type(p) for p in factory().parameters()]
    assert [type(p) for p in module.parameters()] == kinds


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda(module_case):
    _, factory, x = module_case
    module = factory().cuda()
    torch.testing.assert_close(_output(module, x.cuda()).cpu(), _output(module.cpu(), x))
