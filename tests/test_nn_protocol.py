"""The torch.nn.utils.parametrize protocol for cwy_manifolds.nn.orthogonal and the layers.

Ported from PyTorch's test/nn/test_parametrization.py (test_orthogonal_parametrization,
test_orthogonal_errors, test_transfer_parametrizations_and_params*, test_caching_*,
test_register_and_remove_*, test_deepcopy_after_parametrization, test_weight_norm_pickle)
and geotorch's test_integration.py (linear and Conv2d layers), with the design differences
of docs/user_guide/nn.md ("PyTorch's orthogonal and ours") written out where they apply.
"""

import copy
import itertools
import pickle

import pytest
import torch
from _nn_support import F64, gram_error, one_thread
from _reference import tol
from torch import nn
from torch.nn.utils import parametrize

import cwy_manifolds as cm
from cwy_manifolds.nn import OrthogonalLinear, OrthogonalRNN, orthogonal, orthogonalize

__all__ = ["one_thread"]  # the autouse fixture

SHAPES = {"square": (4, 4), "tall": (5, 3), "wide": (3, 5)}  # PyTorch's (in, out) of Linear
# id -> (Linear(in, out) sizes, options of orthogonal())
PARAMETRIZED = {
    "square": ((5, 5), {}),
    "square-det-1": ((5, 5), {"det": -1}),
    "square-L2": ((5, 5), {"n_reflections": 2}),
    "tall": ((3, 5), {}),
    "wide": ((5, 3), {}),
    "square-tcwy": ((4, 4), {"method": "tcwy"}),
}


@pytest.fixture(params=[False, True], ids=["set", "swap"])
def swap(request):
    """PyTorch runs its parametrization tests with both ways of replacing tensors."""
    before = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(request.param)
    yield request.param
    torch.__future__.set_swap_module_params_on_conversion(before)


def assert_orthogonal(w):
    """PyTorch's assert_is_orthogonal: tolerance 10 n eps, batched, wide transposed."""
    w = w.detach()
    tall = w if w.shape[-2] >= w.shape[-1] else w.mT
    n, k = tall.shape[-2:]
    eye = torch.eye(k, dtype=w.dtype).expand(*tall.shape[:-2], k, k)
    torch.testing.assert_close(tall.mT @ tall, eye, atol=tol(n, w.dtype), rtol=0)


def det_fixed(q, det=1):
    """q with its last column negated where its determinant is not ``det`` (square only)."""
    if q.shape[-1] != q.shape[-2]:
        return q
    wrong = (torch.linalg.det(q) * det < 0)[..., None, None]
    return torch.where(wrong, cm.core.flip_last_column(q), q)


def qr_q(w):
    """The Q factor of a (wide: transposed) matrix, PyTorch's way."""
    wide = w.shape[-2] < w.shape[-1]
    q = torch.linalg.qr(w.mT if wide else w).Q
    return q.mT if wide else q


# -- PyTorch's test_orthogonal_parametrization ----------------------------------------------


@pytest.mark.parametrize("layer", ["Linear", "Conv2d"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("assign", ["strict", "project"])
def test_ported_orthogonal_parametrization(shape, layer, assign, swap):
    if layer == "Linear":
        m = nn.Linear(*shape)
        x = torch.randn(3, shape[0])
    else:  # PyTorch's (skipped there) and geotorch's case: a batch of (k1, k2) kernels
        m = nn.Conv2d(2, 3, shape)
        x = torch.randn(2, 2, shape[0] + 2, shape[1] + 1)
    w_init = m.weight.detach().clone()
    orthogonal(m, "weight", assign=assign)
    # forward works as expected: same shape, orthogonal, the nearest matrix of the kind
    assert m.weight.shape == w_init.shape
    assert_orthogonal(m.weight)
    torch.testing.assert_close(m.weight, orthogonalize(w_init), atol=1e-5, rtol=0)
    # assigning an orthogonal matrix of the component reached works
    w_new = det_fixed(qr_q(torch.randn_like(m.weight)))
    m.weight = w_new
    torch.testing.assert_close(m.weight, w_new, atol=1e-5, rtol=0)
    # assigning a non-orthogonal matrix: strict refuses, project takes the nearest matrix
    w_new = torch.randn_like(m.weight)
    if assign == "strict":
        with pytest.raises(ValueError, match="weight cannot be assigned"):
            m.weight = w_new
    else:
        m.weight = w_new
        torch.testing.assert_close(m.weight, orthogonalize(w_new), atol=1e-5, rtol=0)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        m(x).norm().backward()
        assert m.parametrizations.weight.original.grad is not None
        opt.step()
        assert_orthogonal(m.weight)


def test_ported_orthogonal_errors():
    m = nn.Linear(3, 4)
    with pytest.raises(ValueError, match="method must be one of"):
        orthogonal(m, "weight", method="foo")
    with pytest.raises(ValueError, match=r"bias must have at least 2 dimensions"):
        orthogonal(m, "bias")
    orthogonal(m, "weight")
    with pytest.raises(ValueError, match=r"weight must have shape \(4, 3\); got \(5, 5\)"):
        m.weight = torch.randn(5, 5)
    parametrize.remove_parametrizations(m, "weight")


# -- batched and convolution weights --------------------------------------------------------

BATCHED = {
    "Linear-batch": (lambda: nn.Parameter(torch.randn(2, 3, 5, 4, dtype=F64)), {}),
    "batch-det-1": (lambda: nn.Parameter(torch.randn(3, 4, 4, dtype=F64)), {"det": -1}),
    "batch-L2": (lambda: nn.Parameter(torch.randn(3, 4, 4, dtype=F64)), {"n_reflections": 2}),
    "batch-wide": (lambda: nn.Parameter(torch.randn(2, 3, 6, dtype=F64)), {}),
}


@pytest.mark.parametrize("name", BATCHED)
def test_batched_weights(name):
    make, options = BATCHED[name]
    module = nn.Module()
    module.weight = make()
    w0 = module.weight.detach().clone()
    orthogonal(module, **options)
    w = module.weight
    assert w.shape == w0.shape
    assert_orthogonal(w)
    # each matrix of the batch is the one orthogonalize() gives for it alone
    for index in itertools.product(*(range(d) for d in w.shape[:-2])):
        torch.testing.assert_close(w[index], orthogonalize(w0[index], **options))
    if options.get("det"):
        assert bool((torch.linalg.det(w.detach()) < 0).all())
    target = orthogonalize(torch.randn_like(w0), **options)
    module.weight = target
    torch.testing.assert_close(module.weight, target)


CONVS = {
    "Conv1d": lambda: nn.Conv1d(4, 3, 5, dtype=F64),
    "Conv2d": lambda: nn.Conv2d(3, 2, (2, 3), dtype=F64),
    "Conv3d": lambda: nn.Conv3d(2, 4, 2, dtype=F64),
    "ConvTranspose2d": lambda: nn.ConvTranspose2d(2, 3, 3, dtype=F64),
}
INPUTS = {1: (8,), 2: (5, 6), 3: (4, 4, 4)}


@pytest.mark.parametrize("name", CONVS)
def test_convolutions_flattened(name):
    """flatten=True: the (out, in * k...) matrix has orthonormal rows (columns if tall)."""
    conv = CONVS[name]()
    w0 = conv.weight.detach().clone()
    orthogonal(conv, flatten=True)
    w = conv.weight
    assert w.shape == w0.shape
    flat = w.reshape(w.shape[0], -1)
    assert gram_error(flat) <= tol(max(flat.shape), F64)
    torch.testing.assert_close(flat, orthogonalize(w0.reshape(w0.shape[0], -1)))
    dims = len(w.shape) - 2
    x = torch.randn(2, conv.in_channels, *INPUTS[dims], dtype=F64)
    conv(x).square().sum().backward()
    assert conv.parametrizations.weight.original.grad.shape == w.shape
    torch.testing.assert_close(orthogonalize(w0, flatten=True), w.detach())


def test_geotorch_conv2d_integration():
    """geotorch: Conv2d(5, 4, size) keeps its shape; a few SGD steps stay orthogonal."""
    for size in [(1, 1), (3, 3), (2, 5), (5, 2)]:
        layer = orthogonal(nn.Conv2d(5, 4, size))
        x = torch.rand(6, 5, size[0] + 7, size[1] + 3)
        assert layer.weight.shape == (4, 5, *size)
        optimizer = torch.optim.SGD(layer.parameters(), lr=1e-3)
        for _ in range(3):
            with parametrize.cached():
                loss = layer(x).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            assert_orthogonal(layer.weight)


# -- transfer -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", PARAMETRIZED)
def test_transfer_parametrizations_and_params(case, swap):
    (i, o), options = PARAMETRIZED[case]
    model = orthogonal(nn.Linear(i, o, dtype=F64), **options)
    hold_weight = model.weight.detach().clone()
    to_model = nn.Linear(i, o, dtype=F64)
    parametrize.transfer_parametrizations_and_params(model, to_model)
    assert parametrize.is_parametrized(to_model, "weight")
    torch.testing.assert_close(to_model.weight, model.weight)
    assert to_model.parametrizations.weight.original is model.parametrizations.weight.original
    torch.testing.assert_close(model.weight, hold_weight)  # the source is unchanged
    parametrize.remove_parametrizations(to_model, "weight")
    assert not parametrize.is_parametrized(to_model, "weight")
    assert parametrize.is_parametrized(model, "weight")
    # a tensor the destination does not have is created and transferred
    model.test_param = nn.Parameter(torch.randn(4, 4, dtype=F64))
    orthogonal(model, "test_param")
    parametrize.transfer_parametrizations_and_params(model, to_model, "test_param")
    torch.testing.assert_close(to_model.test_param, model.test_param)


def test_transfer_then_cached():
    model = orthogonal(nn.Linear(5, 5))
    to_model = nn.Linear(5, 5)
    parametrize.transfer_parametrizations_and_params(model, to_model)
    with parametrize.cached():
        x, y = model.weight, model.weight
        a, b = to_model.weight, to_model.weight
        assert x is y
        assert a is b
        assert a is not x


def test_transfer_does_not_relax_assignment():
    model = orthogonal(nn.Linear(4, 4))
    to_model = nn.Linear(4, 4)
    parametrize.transfer_parametrizations_and_params(model, to_model)
    with pytest.raises(ValueError, match="weight cannot be assigned"):
        to_model.weight = torch.randn(4, 4)


# -- removal --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", PARAMETRIZED)
@pytest.mark.parametrize("leave", [True, False], ids=["leave-parametrized", "leave-original"])
def test_remove_parametrizations(case, leave, swap):
    (i, o), options = PARAMETRIZED[case]
    model = orthogonal(nn.Linear(i, o, dtype=F64), **options)
    original = model.parametrizations.weight.original
    w = model.weight.detach().clone()
    parametrize.remove_parametrizations(model, "weight", leave_parametrized=leave)
    assert type(model) is nn.Linear
    assert model.weight.shape == (o, i)  # the shape the layer needs
    model(torch.randn(2, i, dtype=F64))  # and it runs
    if leave:
        torch.testing.assert_close(model.weight.detach(), w)
    if not swap:
        assert model.weight is original  # same object: optimizers keep tracking it


def test_register_remove_register_round_trip():
    model = nn.Linear(6, 4, dtype=F64)
    orthogonal(model)
    w = model.weight.detach().clone()
    parametrize.remove_parametrizations(model, "weight", leave_parametrized=True)
    orthogonal(model)  # w is orthogonal already: registering keeps it
    torch.testing.assert_close(model.weight, w)


@pytest.mark.parametrize("name", ["OrthogonalLinear-wide", "OrthogonalLinear-L2"])
def test_layers_remove_parametrizations(name):
    layer = (
        OrthogonalLinear(6, 3, dtype=F64)
        if name.endswith("wide")
        else OrthogonalLinear(5, 5, n_reflections=2, dtype=F64)
    )
    x = torch.randn(2, layer.in_features, dtype=F64)
    y = layer(x)
    parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    torch.testing.assert_close(layer(x), y)
    assert isinstance(layer.weight, nn.Parameter)


# -- stacking -------------------------------------------------------------------------------


class Double(nn.Module):
    def forward(self, x):
        return 2.0 * x

    def right_inverse(self, w):
        return 0.5 * w


def test_stacking_on_top_of_orthogonal():
    """A parametrization registered after ours sees the orthogonal weight."""
    model = orthogonal(nn.Linear(5, 3, dtype=F64))
    q = model.weight.detach().clone()
    parametrize.register_parametrization(model, "weight", Double())
    torch.testing.assert_close(model.weight, 2 * q)
    target = orthogonalize(torch.randn(3, 5, dtype=F64))
    model.weight = 2 * target  # Double's right_inverse, then ours (strict)
    torch.testing.assert_close(model.weight, 2 * target)


def test_orthogonal_on_top_of_another():
    """Ours registered second maps the output of the first, like any parametrization."""
    model = nn.Linear(4, 4, dtype=F64)
    parametrize.register_parametrization(model, "weight", Double())
    orthogonal(model)
    assert_orthogonal(model.weight)
    target = orthogonalize(torch.randn(4, 4, dtype=F64))
    model.weight = target
    torch.testing.assert_close(model.weight, target)


# -- caching --------------------------------------------------------------------------------

LAYERS = {
    "OrthogonalLinear": (lambda: OrthogonalLinear(5, 5, dtype=F64), "weight"),
    "OrthogonalLinear-geoopt": (
        lambda: OrthogonalLinear(5, 3, manifold_parameter=True, dtype=F64),
        "weight",
    ),
    "OrthogonalRNN-cell": (lambda: OrthogonalRNN(3, 5, dtype=F64).cell, "weight_hh"),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layers_are_parametrized_and_cached(name):
    factory, tensor = LAYERS[name]
    layer = factory()
    assert parametrize.is_parametrized(layer, tensor)
    with parametrize.cached():
        assert getattr(layer, tensor) is getattr(layer, tensor)


def test_rnn_forms_its_weight_once_in_cached():
    rnn = OrthogonalRNN(3, 5, dtype=F64)
    calls = []
    rnn.cell.parametrizations.weight_hh[0].register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(4, 2, 3, dtype=F64)
    with parametrize.cached():
        rnn(x)
        rnn(x)
    assert len(calls) == 1


# -- copying, pickling, dtypes --------------------------------------------------------------


@pytest.mark.parametrize("case", PARAMETRIZED)
def test_deepcopy_after_parametrization(case):
    (i, o), options = PARAMETRIZED[case]
    m1 = orthogonal(nn.Linear(i, o, dtype=F64), **options)
    m1.attr = [1.0, 2.0]
    m2 = copy.deepcopy(m1)
    assert m1.__dict__.keys() == m2.__dict__.keys()
    w1, w2 = m1.parametrizations.weight.original, m2.parametrizations.weight.original
    torch.testing.assert_close(w1, w2)
    assert w1 is not w2
    assert m1.attr == m2.attr
    assert m1.attr is not m2.attr
    torch.testing.assert_close(m1.weight, m2.weight)


def test_parametrized_modules_refuse_pickle_but_layers_pickle():
    with pytest.raises(RuntimeError, match="state_dict"):
        pickle.dumps(orthogonal(nn.Linear(4, 5)))
    layer = OrthogonalLinear(4, 5, dtype=F64)
    layer.note = "kept"
    clone = pickle.loads(pickle.dumps(layer))
    assert parametrize.is_parametrized(clone, "weight")
    assert clone.note == "kept"
    torch.testing.assert_close(clone.weight, layer.weight)
    with parametrize.cached():
        assert clone.weight is clone.weight


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("case", PARAMETRIZED)
def test_dtype_conversion(case, dtype):
    (i, o), options = PARAMETRIZED[case]
    model = orthogonal(nn.Linear(i, o, dtype=F64), **options).to(dtype)
    assert model.weight.dtype == dtype
    assert gram_error(model.weight) <= tol(max(i, o), dtype)
    assert model(torch.randn(2, i, dtype=dtype)).dtype == dtype


@pytest.mark.parametrize("case", PARAMETRIZED)
def test_autocast_forms_the_weight_in_full_precision(case):
    (i, o), options = PARAMETRIZED[case]
    model = orthogonal(nn.Linear(i, o), **options)
    x = torch.randn(3, i)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
        w = model.weight
    assert y.dtype == torch.bfloat16
    assert w.dtype == torch.float32
    assert gram_error(w) <= tol(max(i, o), torch.float32)
