"""torch.func transforms through the functional core, with default settings (checks on).

Note [value checks] in ``cwy_manifolds/core/checks.py`` says how the checks run under the
transforms; Note [fast path] in ``householder.py`` which path differentiates.
References: the sequential :func:`householder_product` (plain autograd, no custom rule),
``torch.autograd.functional`` and central finite differences.
"""

import pytest
import torch
from _reference import haar, tol

import cwy_manifolds as cm
from cwy_manifolds import cwy, cwy_apply, householder_product, tcwy, tcwy_apply

F64 = torch.float64


def _ref_tcwy(v):
    return householder_product(v)[..., : v.shape[-1]]


def _ref_apply(v, x, transpose=False):
    q = householder_product(v)
    return (q.mT if transpose else q) @ x


def _ref_tapply(v, x, transpose=False):
    omega = _ref_tcwy(v)
    return (omega.mT if transpose else omega) @ x


# name: (function of v, reference of v, shape of v); x and y are fixed right-hand sides
_X, _Y = torch.randn(3, 2, dtype=F64), torch.randn(5, 2, dtype=F64)
MAPS = {
    "cwy": (cwy, householder_product, (5, 4)),
    "cwy-L>N": (cwy, householder_product, (3, 5)),
    "tcwy": (tcwy, _ref_tcwy, (5, 3)),
    "cwy_apply": (lambda v: cwy_apply(v, _Y), lambda v: _ref_apply(v, _Y), (5, 3)),
    "cwy_apply_T": (
        lambda v: cwy_apply(v, _Y, transpose=True),
        lambda v: _ref_apply(v, _Y, transpose=True),
        (5, 3),
    ),
    "tcwy_apply": (lambda v: tcwy_apply(v, _X), lambda v: _ref_tapply(v, _X), (5, 3)),
    "tcwy_apply_T": (
        lambda v: tcwy_apply(v, _Y, transpose=True),
        lambda v: _ref_tapply(v, _Y, transpose=True),
        (5, 3),
    ),
}


def _loss(fn, weight):
    return lambda v: (fn(v) * weight).sum()


@pytest.fixture(params=list(MAPS))
def case(request):
    fn, ref, shape = MAPS[request.param]
    v = torch.randn(*shape, dtype=F64)
    weight = torch.randn_like(ref(v))
    return fn, ref, v, weight


def test_hessian_equals_autograd_reference(case):
    fn, ref, v, weight = case
    hessian = torch.func.hessian(_loss(fn, weight))(v)
    expected = torch.autograd.functional.hessian(_loss(ref, weight), v)
    torch.testing.assert_close(hessian, expected, atol=100 * tol(5, F64), rtol=0)


def test_jvp_of_grad_is_hessian_vector_product(case):
    fn, ref, v, weight = case
    direction = torch.randn_like(v)
    _, hvp = torch.func.jvp(torch.func.grad(_loss(fn, weight)), (v,), (direction,))
    _, expected = torch.autograd.functional.hvp(_loss(ref, weight), v, direction)
    torch.testing.assert_close(hvp, expected, atol=100 * tol(5, F64), rtol=0)


def test_jacfwd_equals_jacrev_and_reference(case):
    fn, ref, v, _ = case
    expected = torch.autograd.functional.jacobian(ref, v)
    torch.testing.assert_close(torch.func.jacfwd(fn)(v), expected, atol=tol(5, F64), rtol=0)
    torch.testing.assert_close(torch.func.jacrev(fn)(v), expected, atol=tol(5, F64), rtol=0)


def test_jvp_matches_central_differences(case):
    fn, _, v, _ = case
    direction = torch.randn_like(v)
    out, tangent = torch.func.jvp(fn, (v,), (direction,))
    step = torch.finfo(F64).eps ** (1 / 3)  # balances truncation (step^2) and rounding
    diff = (fn(v + step * direction) - fn(v - step * direction)) / (2 * step)
    torch.testing.assert_close(out, fn(v))
    torch.testing.assert_close(tangent, diff, atol=100 * v.shape[-2] * step**2, rtol=0)


ORDERS = {  # outer, inner
    "fwd-fwd": (torch.func.jacfwd, torch.func.jacfwd),
    "fwd-rev": (torch.func.jacfwd, torch.func.jacrev),
    "rev-fwd": (torch.func.jacrev, torch.func.jacfwd),
    "rev-rev": (torch.func.jacrev, torch.func.jacrev),
}


@pytest.mark.parametrize("order", ORDERS)
def test_nested_second_derivatives_agree(order):
    """Every order of forward and reverse mode gives the Hessian of the reference."""
    v, weight = torch.randn(4, 3, dtype=F64), torch.randn(4, 4, dtype=F64)
    outer, inner = ORDERS[order]
    hessian = outer(inner(_loss(cwy, weight)))(v)
    expected = torch.autograd.functional.hessian(_loss(householder_product, weight), v)
    torch.testing.assert_close(hessian, expected, atol=100 * tol(4, F64), rtol=0)


VMAPPED = {
    "cwy": (cwy, (5, 4)),
    "tcwy": (tcwy, (5, 4)),
    "householder_product": (householder_product, (5, 4)),
    "cwy_apply": (lambda v: cwy_apply(v, _Y.to(v.dtype)), (5, 4)),
    "tcwy_apply_T": (lambda v: tcwy_apply(v, _Y.to(v.dtype), transpose=True), (5, 3)),
}


@pytest.mark.parametrize("name", VMAPPED)
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_vmap_equals_batched_call(name, dtype):
    fn, shape = VMAPPED[name]
    v = torch.randn(7, *shape, dtype=dtype)
    torch.testing.assert_close(torch.vmap(fn)(v), fn(v))


def test_vmap_over_a_middle_dimension_and_nested():
    v = torch.randn(5, 7, 4, 2, dtype=F64)  # vmap over dims 1 and 3
    out = torch.vmap(torch.vmap(cwy, in_dims=2), in_dims=1)(v)
    torch.testing.assert_close(out, cwy(v.permute(1, 3, 0, 2)))


def test_vmap_apply_over_both_arguments():
    v, x = torch.randn(6, 5, 3, dtype=F64), torch.randn(6, 5, 2, dtype=F64)
    torch.testing.assert_close(torch.vmap(cwy_apply)(v, x), cwy(v) @ x)
    torch.testing.assert_close(torch.vmap(tcwy_apply)(v, x[..., :3, :]), tcwy(v) @ x[..., :3, :])


def test_per_sample_gradients():
    v, weights = torch.randn(5, 4, dtype=F64), torch.randn(8, 5, 5, dtype=F64)
    grads = torch.vmap(torch.func.grad(lambda v, w: (cwy(v) * w).sum()), in_dims=(None, 0))(
        v, weights
    )
    for i in range(8):
        v_ = v.clone().requires_grad_()
        (expected,) = torch.autograd.grad((householder_product(v_) * weights[i]).sum(), v_)
        torch.testing.assert_close(grads[i], expected)


@pytest.mark.parametrize("fn", [cwy, tcwy, householder_product], ids=lambda f: f.__name__)
def test_vmap_keeps_value_errors_and_names_the_batch_item(fn):
    v = torch.randn(4, 5, 3, dtype=F64)
    v[2, :, 1] = 0
    with pytest.raises(
        ValueError, match=r"v must have no zero columns.*column 1 of batch item \(2,\)"
    ):
        torch.vmap(fn)(v)
    v[2, :, 1] = float("nan")
    with pytest.raises(ValueError, match="v must have finite entries; got 5 NaN/Inf"):
        torch.vmap(fn)(v)


def test_grad_keeps_value_errors():
    v = torch.randn(5, 3, dtype=F64)
    v[:, 0] = 0
    with pytest.raises(ValueError, match="zero column"):
        torch.func.grad(lambda t: cwy(t).sum())(v)
    with pytest.raises(ValueError, match="zero column"):
        torch.func.jvp(cwy, (v,), (v,))


def test_vmap_inverse_equals_batched_call():
    q = torch.stack([haar(5, det=-1, seed=s) for s in range(4)])
    omega = q[..., :3]
    torch.testing.assert_close(torch.vmap(cm.cwy_inverse)(q), cm.cwy_inverse(q))
    torch.testing.assert_close(torch.vmap(cm.tcwy_inverse)(omega), cm.tcwy_inverse(omega))
    torch.testing.assert_close(cwy(torch.vmap(cm.cwy_inverse)(q)), q, atol=tol(5, F64), rtol=0)


def test_vmap_inverse_keeps_errors():
    q = torch.stack([haar(4, det=1, seed=0), haar(4, det=-1, seed=1)])
    with pytest.raises(ValueError, match="determinant"):
        torch.vmap(cm.cwy_inverse)(q)
    with pytest.raises(ValueError, match="orthonormal columns"):
        torch.vmap(cm.tcwy_inverse)(2 * q[..., :2])


AUTOCAST = {
    "cwy": lambda v: cm.cwy(v),
    "tcwy": lambda v: cm.tcwy(v),
    "cwy_apply": lambda v: cm.cwy_apply(v, torch.ones(6, 2)),
    "tcwy_apply": lambda v: cm.tcwy_apply(v, torch.ones(4, 2)),
    "householder_product": lambda v: cm.householder_product(v),
}


@pytest.mark.parametrize("name", AUTOCAST)
def test_autocast_regions_compute_in_the_input_dtype(name):
    """Note [autocast]: no bfloat16 triangular solve, and the float32 result of float32 input."""
    v = torch.randn(6, 4, requires_grad=True)
    expected = AUTOCAST[name](v)
    (grad,) = torch.autograd.grad(expected.square().sum(), v)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = AUTOCAST[name](v)
    (autocast_grad,) = torch.autograd.grad(out.square().sum(), v)  # outside, as recommended
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(autocast_grad, grad)
