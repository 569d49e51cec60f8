"""CWY(gradient="matrix"): Note [matrix gradient], against a dense Jacobian and pinv."""

import geoopt
import pytest
import torch
from _reference import haar

import cwy_manifolds as cm

F64 = torch.float64


def _sequential(v):
    """H(v_1) ... H(v_L) with every reflection formed densely (plain torch, differentiable)."""
    n = v.shape[-2]
    q = torch.eye(n, dtype=v.dtype)
    for i in range(v.shape[-1]):
        x = v[:, i]
        q = q - 2 * torch.outer(q @ x, x) / (x @ x)
    return q


def _jacobian(v):
    """The Jacobian of the product as an (N*N) x (N*L) matrix."""
    n, count = v.shape
    return torch.autograd.functional.jacobian(_sequential, v).reshape(n * n, n * count)


def _unit_vectors(n, count, seed):
    v = torch.randn(n, count, dtype=F64, generator=torch.Generator().manual_seed(seed))
    return v / torch.linalg.vector_norm(v, dim=0)


def _gradient(manifold, v, g):
    """The Euclidean gradient on ``v`` of <G, matrix(v)>, through the package's map."""
    x = v.clone().requires_grad_()
    (manifold.matrix(x) * g).sum().backward()
    return x.grad


SHAPES = [(2, 2), (5, 5), (6, 3), (7, 7), (8, 1)]


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_step_is_pinv_of_the_dense_gauss_newton_matrix(shape, det):
    """At unit columns the step is (J^T J)^+ u, J the Jacobian of the sequential product."""
    n, count = shape
    v = _unit_vectors(n, count, seed=n + count)
    g = torch.randn(n, n, dtype=F64, generator=torch.Generator().manual_seed(1))
    manifold = cm.CWY(det=det, gradient="matrix")
    u = _gradient(manifold, v, g)
    j = _jacobian(v)
    expected = (torch.linalg.pinv(j.T @ j, rtol=1e-10) @ u.reshape(-1)).reshape(n, count)
    torch.testing.assert_close(manifold.egrad2rgrad(v, u), expected, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("n", [3, 6])
def test_step_moves_the_matrix_by_its_riemannian_gradient(n):
    """Full rank: J step = Q skew(Q^T G), the step of a retraction (closed form)."""
    v = _unit_vectors(n, n, seed=n) * torch.linspace(0.5, 3.0, n, dtype=F64)  # any norms
    g = torch.randn(n, n, dtype=F64, generator=torch.Generator().manual_seed(2))
    manifold = cm.CWY(gradient="matrix", det=(-1) ** n)  # no flip: matrix(v) is the product
    step = manifold.egrad2rgrad(v, _gradient(manifold, v, g))
    q = _sequential(v)
    moved = (_jacobian(v) @ step.reshape(-1)).reshape(n, n)
    torch.testing.assert_close(moved, q @ (q.T @ g - g.T @ q) / 2, atol=1e-11, rtol=1e-10)


def test_step_scales_with_the_column_norms():
    """Rescaled columns (the same matrix) give the unit-column step times the norms."""
    v = _unit_vectors(6, 6, seed=3)
    u = torch.randn(6, 6, dtype=F64, generator=torch.Generator().manual_seed(4))
    u -= v * (v * u).sum(0)  # a gradient is orthogonal to its columns
    r = torch.tensor([0.2, 0.5, 1.0, 2.0, 7.0, 30.0], dtype=F64)
    manifold = cm.CWY(gradient="matrix")
    torch.testing.assert_close(
        manifold.egrad2rgrad(v * r, u / r), manifold.egrad2rgrad(v, u) * r, atol=1e-12, rtol=1e-10
    )


def test_pseudo_inverse_at_the_singular_origin():
    """At ``origin`` the map has rank N - 1 (Note [singular at the identity]): pinv, finite."""
    manifold = cm.CWY(gradient="matrix")
    v = manifold.origin(5, 5, dtype=F64).as_subclass(torch.Tensor)
    u = _gradient(manifold, v, torch.randn(5, 5, dtype=F64))
    j = _jacobian(v)
    expected = (torch.linalg.pinv(j.T @ j, rtol=1e-10) @ u.reshape(-1)).reshape(5, 5)
    step = manifold.egrad2rgrad(v, u)
    assert torch.isfinite(step).all()
    torch.testing.assert_close(step, expected, atol=1e-12, rtol=1e-10)


def test_inner_is_the_metric_inherited_from_the_matrix():
    v = _unit_vectors(5, 4, seed=5) * torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=F64)
    gen = torch.Generator().manual_seed(6)
    a, b = (torch.randn(5, 4, dtype=F64, generator=gen) for _ in range(2))
    j = _jacobian(v)
    manifold = cm.CWY(gradient="matrix", n_reflections=4)
    expected = (j @ a.reshape(-1)) @ (j @ b.reshape(-1))
    torch.testing.assert_close(manifold.inner(v, a, b), expected, atol=1e-12, rtol=1e-10)
    assert manifold.inner(v, a, keepdim=True).shape == (1, 1)


def test_batches_and_float32():
    manifold = cm.CWY(gradient="matrix")
    v = manifold.random(3, 6, 6, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    u = torch.randn(3, 6, 6, generator=torch.Generator().manual_seed(1))
    step = manifold.egrad2rgrad(v, u)
    assert step.dtype == torch.float32
    assert step.shape == (3, 6, 6)
    for k in range(3):
        expected = manifold.egrad2rgrad(v[k].double(), u[k].double())
        torch.testing.assert_close(step[k].double(), expected, atol=1e-4, rtol=1e-4)


def test_float32_vectors_get_the_float64_step_at_large_sizes():
    """At N = 256 the spread of J J^T exceeds float32 (Note [matrix gradient]): float64 inside."""
    manifold = cm.CWY(gradient="matrix")
    v = manifold.random(256, 256, dtype=F64, generator=torch.Generator().manual_seed(0))
    u = torch.randn(256, 256, dtype=F64, generator=torch.Generator().manual_seed(1))
    v32, u32 = v.float(), u.float()
    expected = manifold.egrad2rgrad(v32.double(), u32.double())  # the same inputs, float64
    step = manifold.egrad2rgrad(v32, u32)
    assert step.dtype == torch.float32
    error = torch.linalg.matrix_norm(step.double() - expected) / torch.linalg.matrix_norm(expected)
    assert error < 1e-6


def test_sgd_step_follows_the_matrix_gradient_to_first_order():
    """One RiemannianSGD step moves the matrix by -lr times its Riemannian gradient + O(lr^2)."""
    target = haar(6, det=-1, seed=3)
    loss = cm.problems.Procrustes(torch.eye(6, dtype=F64), target, "o").loss
    manifold = cm.CWY(det=-1, gradient="matrix")
    start = manifold.random(6, 6, dtype=F64, generator=torch.Generator().manual_seed(0))
    errors = []
    for lr in (1e-3, 1e-4):
        x = geoopt.ManifoldParameter(start.clone(), manifold=manifold)
        q = manifold.matrix(x)
        loss(q).backward()
        q = q.detach()
        geoopt.optim.RiemannianSGD([x], lr=lr).step()
        egrad = q - target  # the Euclidean gradient of 1/2 |Q - B|^2
        expected = q - lr * q @ (q.T @ egrad - egrad.T @ q) / 2
        errors.append(float((manifold.matrix(x.detach()) - expected).abs().max()))
        assert torch.linalg.vector_norm(x.detach(), dim=0).allclose(torch.ones(6, dtype=F64))
    assert errors[1] < errors[0] / 50  # second order: 100 times smaller for lr / 10


def test_converges_on_procrustes_in_the_steps_of_a_retraction():
    """Square O(24), optimum with det -1, SGD with momentum: within 1.5 times QR's steps."""
    prob = cm.problems.Procrustes.random(24, group="o", det=-1, seed=0)
    start = cm.QRStiefel(det=-1).random(
        24, 24, dtype=F64, generator=torch.Generator().manual_seed(1)
    )

    def steps(manifold, lr):
        x = geoopt.ManifoldParameter(cm.from_matrix(manifold, start))
        opt = geoopt.optim.RiemannianSGD([x], lr=lr, momentum=0.9)
        for k in range(2000):
            opt.zero_grad()
            loss = prob.loss(cm.matrix(x))
            if float(loss.detach()) - prob.optimum < 1e-10 * max(1, abs(prob.optimum)):
                return k
            loss.backward()
            opt.step()
        return 2000

    qr = min(steps(cm.QRStiefel(det=-1), lr) for lr in (0.3, 1.0))
    matrix = min(steps(cm.CWY(det=-1, gradient="matrix"), lr) for lr in (0.3, 1.0, 3.0))
    euclidean = min(steps(cm.CWY(det=-1), lr) for lr in (1.0, 3.0))
    assert qr < 2000
    assert matrix <= 1.5 * qr < euclidean


def test_line_search_slope_is_the_inner_product():
    """d/dt f(retr(x, t d)) at 0 equals inner(x, rgrad, d): what a line search relies on."""
    manifold = cm.CWY(gradient="matrix")
    v = manifold.random(5, 5, dtype=F64, generator=torch.Generator().manual_seed(2))
    target = haar(5, seed=4)

    def f(x):
        return 0.5 * ((manifold.matrix(x) - target) ** 2).sum()

    x = v.clone().requires_grad_()
    f(x).backward()
    rgrad = manifold.egrad2rgrad(v, x.grad)
    d = torch.randn(5, 5, dtype=F64, generator=torch.Generator().manual_seed(3))
    slope = manifold.inner(v, rgrad, d)  # marks v: free steps (Note [gauge])
    h = 1e-6
    numeric = (f(manifold.retr(v, h * d)) - f(manifold.retr(v, -h * d))) / (2 * h)
    torch.testing.assert_close(slope, numeric.detach(), atol=1e-7, rtol=1e-6)


def test_options_are_checked():
    with pytest.raises(ValueError, match="gradient must be one of 'euclidean', 'matrix'"):
        cm.CWY(gradient="natural")
    with pytest.raises(TypeError):
        cm.TCWY(gradient="matrix")
    manifold = cm.CWY(gradient="matrix")
    assert "gradient='matrix'" in repr(manifold)
    assert manifold.step_scale(torch.zeros(8, 8)) == 1.0
    assert cm.CWY().step_scale(torch.zeros(8, 8)) == 16.0


def test_tiny_and_empty_shapes():
    manifold = cm.CWY(gradient="matrix")
    for shape in [(1, 1), (0, 0), (3, 0), (2, 4, 4)]:
        v = torch.ones(shape, dtype=F64) if shape[-1] else torch.zeros(shape, dtype=F64)
        u = torch.ones(shape, dtype=F64)
        step = manifold.egrad2rgrad(v, u)
        assert step.shape == shape
        assert torch.isfinite(step).all()
    assert float(manifold.egrad2rgrad(torch.ones(1, 1), torch.ones(1, 1))) == 0  # O(1): no move
