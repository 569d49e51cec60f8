"""cwy_manifolds.nn.orthogonal: registration, assignment, optimizers, caching, bad input."""

import numpy as np
import pytest
import torch
from _nn_support import CASES, DTYPES, F64, det_of, gram_error, linear, one_thread, target_of
from _reference import haar, tol
from torch import nn
from torch.nn.utils import parametrize

import cwy_manifolds as cm
from cwy_manifolds.nn import (
    orthogonal,
    orthogonalize,
)

__all__ = ["one_thread"]  # the autouse fixture


@pytest.fixture(params=list(CASES))
def case(request):
    return CASES[request.param]


# -- registration ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_registered_weight_is_orthogonal_of_the_right_kind(case, dtype):
    shape, options = case
    layer = linear(shape, dtype, **options)
    w = layer.weight
    assert w.shape == shape
    assert w.dtype == dtype
    assert gram_error(w) <= tol(max(shape), dtype)
    if det_of(shape, options) is not None:
        assert round(float(torch.linalg.det(w.detach().double()))) == det_of(shape, options)
    original = layer.parametrizations.weight.original
    assert original.shape == shape  # Note [free tensor layout]


def test_registration_uses_the_nearest_matrix(case):
    """Kabsch: max tr(Q^T W) is the sum of the singular values, the smallest one negated
    when the determinant of W has the wrong sign. L < N: agrees with it on L columns."""
    shape, options = case
    layer = nn.Linear(shape[1], shape[0], dtype=F64)
    w = layer.weight.detach().clone()
    q = orthogonal(layer, **options).weight.detach()
    torch.testing.assert_close(orthogonalize(w, **options), q)
    sigma = np.linalg.svd(w.numpy(), compute_uv=False)
    det = det_of(shape, options)
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
    layer = linear((6, 6))
    layer(torch.randn(3, 6, dtype=F64)).square().sum().backward()
    v = layer.parametrizations.weight.original
    assert (v * v.grad).sum(0).abs().max() < 1e-9 * v.grad.abs().max()


# -- assignment -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_assignment_round_trips(case, dtype):
    shape, options = case
    layer = linear(shape, dtype, **options)
    original = layer.parametrizations.weight.original
    target = target_of(shape, options).to(dtype)
    layer.weight = target
    assert layer.parametrizations.weight.original is original
    torch.testing.assert_close(layer.weight, target, atol=tol(max(shape), dtype), rtol=0)


ASSIGNED = "weight cannot be assigned: it must have orthonormal columns"
BAD_VALUES = {
    "not-orthogonal": (lambda q: 1.1 * q, f"{ASSIGNED}.*m must have orthonormal columns; got max"),
    "wrong-det": (cm.core.flip_last_column, f"{ASSIGNED}.*m must have determinant \\+1"),
    "wrong-shape": (lambda q: q[:, :3], r"weight must have shape \(5, 5\); got \(5, 3\)"),
    "nan": (lambda q: q * float("nan"), f"{ASSIGNED}.*m must have finite entries"),
    "rank-3": (lambda q: q[None], r"weight must have shape \(5, 5\); got \(1, 5, 5\)"),
    "not-a-tensor": (lambda q: q.tolist(), "weight must be a torch.Tensor; got list"),
}


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_assignment_rejects_other_kinds(bad):
    layer = linear((5, 5))
    make, match = BAD_VALUES[bad]
    with pytest.raises((ValueError, TypeError), match=match):
        layer.weight = make(haar(5, det=1))


def test_assignment_rejects_matrices_out_of_reach_of_few_reflections():
    layer = linear((5, 5), n_reflections=2)
    with pytest.raises(ValueError, match=r"weight cannot be assigned.*n_reflections = 2"):
        layer.weight = haar(5, det=1)
    layer.weight = orthogonalize(torch.randn(5, 5, dtype=F64), n_reflections=2)


def test_wide_assignment_names_rows():
    layer = linear((3, 7))
    with pytest.raises(ValueError, match="orthonormal rows"):
        layer.weight = 2 * target_of((3, 7), {})


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
    target = target_of(shape, {}, seed=7)
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
    assert gram_error(layer.weight) <= tol(max(shape), F64)


def test_cached_forms_the_weight_once():
    layer = linear((6, 6))
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
    "det-with-tcwy": ((6, 3), {"det": -1}, "det must be None for a 6 x 3 weight"),
    "det-on-wide": ((3, 6), {"det": 1}, "det must be None for a 3 x 6 weight"),
    "count-with-tcwy": ((6, 3), {"n_reflections": 2}, "n_reflections must be None for method"),
    "det-2": ((4, 4), {"det": 2}, "det must be \\+1 or -1; got 2"),
    "too-many": ((4, 4), {"n_reflections": 5}, "n_reflections must be at most N = 4; got 5"),
    "negative": ((4, 4), {"n_reflections": -1}, "n_reflections must be a non-negative integer"),
}


@pytest.mark.parametrize("bad", BAD_OPTIONS)
def test_bad_options(bad):
    shape, options, match = BAD_OPTIONS[bad]
    with pytest.raises(ValueError, match=match):
        linear(shape, **options)
    with pytest.raises(ValueError, match=match):
        orthogonalize(torch.randn(shape), **options)


def test_bad_tensors():
    with pytest.raises(
        ValueError, match=r"bias must have at least 2 dimensions .*got shape \(3,\)"
    ):
        orthogonal(nn.Linear(2, 3), "bias")
    with pytest.raises(ValueError, match="name must be a parameter or buffer of module; got 'w'"):
        orthogonal(nn.Linear(2, 2), "w")
    module = nn.Module()
    module.register_buffer("weight", torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="weight must be a real floating-point tensor; got"):
        orthogonal(module)
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module; got Tensor"):
        orthogonal(torch.eye(3))
    layer = orthogonal(nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"already parametrized by cwy_manifolds.*remove_param"):
        orthogonal(layer)


def test_buffers_can_be_parametrized():
    module = nn.Module()
    module.register_buffer("weight", torch.randn(5, 2, dtype=F64))
    orthogonal(module)
    assert gram_error(module.weight) <= tol(5, F64)
    assert not module.parametrizations.weight.original.requires_grad
