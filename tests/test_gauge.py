"""The gauge of CWY/T-CWY steps (Note [gauge]) and their scale (Note [step scale])."""

import math

import geoopt
import pytest
import torch
from _reference import haar, tol

import cwy_manifolds as cm

F64 = torch.float64


def _norms(x):
    return torch.linalg.vector_norm(x.detach(), dim=-2)


def _pca_loss(n, seed=0):
    q = haar(n, seed=seed)
    cov = q @ torch.diag(torch.linspace(2.0, 0.1, n, dtype=F64)) @ q.T
    return lambda w: -(w * (cov[: w.shape[-2], : w.shape[-2]] @ w)).sum()


def _run(manifold, shape, make, steps, *, seed=0):
    x = geoopt.ManifoldParameter(manifold.random(*shape, dtype=F64))
    opt = make([x])
    loss = _pca_loss(shape[-2], seed)
    for _ in range(steps):
        opt.zero_grad()
        loss(cm.matrix(x)[..., : min(3, shape[-1])]).backward()
        opt.step()
    return x, opt


SGD = {
    "sgd": lambda ps: geoopt.optim.RiemannianSGD(ps, lr=0.3),
    "sgd-momentum": lambda ps: geoopt.optim.RiemannianSGD(ps, lr=0.1, momentum=0.9),
    "sgd-nesterov": lambda ps: geoopt.optim.RiemannianSGD(ps, lr=0.1, momentum=0.9, nesterov=True),
}
MANIFOLDS = {
    "cwy": (cm.CWY, (6, 6)),
    "tcwy": (cm.TCWY, (9, 3)),
    "tcwy-batch": (cm.TCWY, (2, 9, 3)),
}


@pytest.mark.parametrize("optimizer", SGD)
@pytest.mark.parametrize("name", MANIFOLDS)
def test_default_keeps_unit_columns_with_sgd(name, optimizer):
    """Note [gauge]: with the default the effective step of SGD never shrinks."""
    factory, shape = MANIFOLDS[name]
    x, _ = _run(factory(), shape, SGD[optimizer], 150)
    norms = _norms(x)
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=tol(shape[-2], F64), rtol=0)


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("name", MANIFOLDS)
def test_unit_gauge_keeps_unit_columns_with_adam(name, amsgrad):
    factory, shape = MANIFOLDS[name]
    make = lambda ps: geoopt.optim.RiemannianAdam(ps, lr=0.05, amsgrad=amsgrad)  # noqa: E731
    x, _ = _run(factory(gauge="unit"), shape, make, 150)
    norms = _norms(x)
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=tol(shape[-2], F64), rtol=0)


def _lockstep(manifold, *runs, n, after=None, steps=30):
    """Step every (parameter, optimizer) run in turn on the PCA loss; ``after`` each round."""
    loss = _pca_loss(n)
    for _ in range(steps):
        for param, opt in runs:
            opt.zero_grad()
            loss(manifold.matrix(param)[:, :3]).backward()
            opt.step()
        if after is not None:
            after()


@pytest.mark.parametrize("gauge", ["auto", "free"])
@pytest.mark.parametrize("name", ["cwy", "tcwy"])
def test_free_gauge_with_adam_is_torch_adam(name, gauge):
    """Adam-type steps use the free gauge by default (Note [gauge]): exactly torch's Adam."""
    factory, shape = MANIFOLDS[name]
    manifold = factory(gauge=gauge)
    start = manifold.random(*shape, dtype=F64)
    p = geoopt.ManifoldParameter(start.clone(), manifold=manifold)
    q = torch.nn.Parameter(start.as_subclass(torch.Tensor).clone())
    opt_p = geoopt.optim.RiemannianAdam([p], lr=0.05, betas=(0.8, 0.95), amsgrad=True)
    opt_q = torch.optim.Adam([q], lr=0.05, betas=(0.8, 0.95), amsgrad=True)
    _lockstep(manifold, (p, opt_p), (q, opt_q), n=shape[0])
    torch.testing.assert_close(p.as_subclass(torch.Tensor), q.detach())
    assert float((_norms(p) - 1).abs().max()) > 1e-2  # free: Adam's steps move the norms


@pytest.mark.parametrize("name", ["cwy", "tcwy"])
def test_unit_gauge_adam_is_torch_adam_with_a_scaled_lr(name):
    """The step divided by c (Note [step scale]): torch's Adam with lr / c, then unit columns."""
    factory, shape = MANIFOLDS[name]
    manifold = factory(gauge="unit")
    start = manifold.random(*shape, dtype=F64)
    c = manifold.step_scale(start)
    assert c > 1.5
    p = geoopt.ManifoldParameter(start.clone(), manifold=manifold)
    q = start.as_subclass(torch.Tensor).clone().requires_grad_()
    opt_p = geoopt.optim.RiemannianAdam([p], lr=0.05)
    opt_q = torch.optim.Adam([q], lr=0.05 / c)

    def unit_columns():  # the unit gauge, by hand
        with torch.no_grad():
            q.div_(_norms(q).unsqueeze(-2))

    _lockstep(manifold, (p, opt_p), (q, opt_q), n=shape[0], after=unit_columns)
    torch.testing.assert_close(p.as_subclass(torch.Tensor), q.detach())


@pytest.mark.parametrize("gauge", ["auto", "unit", "free"])
@pytest.mark.parametrize("name", ["cwy", "tcwy"])
def test_retr_moves_the_matrix_by_x_plus_u(name, gauge):
    """Every gauge stands for the matrix of a plain step: no retraction of the matrix.

    ``x + u`` in the free gauge, ``x + u / c`` in the unit gauge (Note [step scale]).
    """
    factory, shape = MANIFOLDS[name]
    manifold = factory(gauge=gauge)
    x = manifold.random(*shape, dtype=F64)
    u = 0.3 * torch.randn(x.shape, dtype=F64)
    y = manifold.retr(x, u)
    c = 1.0 if gauge == "free" else manifold.step_scale(x)
    torch.testing.assert_close(manifold.matrix(y), manifold.matrix(x + u / c))
    y2, w = manifold.retr_transp(x, u, 2 * u)
    torch.testing.assert_close(y2, y)
    torch.testing.assert_close(w, 2 * u)  # state is kept as it is (Note [gauge])
    if gauge == "free":
        torch.testing.assert_close(y, x + u)
    else:  # outside an optimizer step "auto" is "unit"
        torch.testing.assert_close(_norms(y), torch.ones(shape[-1], dtype=F64))


def test_free_gauge_grows_the_columns_with_sgd():
    """What the default avoids: plain steps only grow the columns (Note [scale invariance])."""
    x, _ = _run(cm.TCWY(gauge="free"), (9, 3), SGD["sgd-momentum"], 200)
    assert float(_norms(x).min()) > 1.01


@pytest.mark.parametrize("name", ["cwy", "tcwy"])
def test_effective_step_does_not_shrink(name):
    """One SGD step from the same matrix, after 0 and after 300 steps of drift.

    With the default gauge it moves the matrix by the same amount; with the free gauge
    the drift has grown the columns and the step has shrunk (Note [scale invariance]).
    """
    factory, shape = MANIFOLDS[name]
    target = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(3))

    def one_step(manifold, drift):
        gen = torch.Generator().manual_seed(0)
        x = geoopt.ManifoldParameter(manifold.random(*shape, dtype=F64, generator=gen))
        start = cm.matrix(x).detach()
        opt = geoopt.optim.RiemannianSGD([x], lr=1.0)
        for _ in range(drift):  # a loss that keeps changing, as in stochastic training
            opt.zero_grad()
            (cm.matrix(x) * torch.randn(shape, dtype=F64, generator=gen)).sum().backward()
            opt.step()
        with torch.no_grad():  # back to the start matrix, keeping the column norms
            x.copy_(cm.from_matrix(manifold, start) * _norms(x).unsqueeze(-2))
        x.grad = None
        opt = geoopt.optim.RiemannianSGD([x], lr=0.05)
        (cm.matrix(x) * target).sum().backward()
        opt.step()
        return float(torch.linalg.matrix_norm(cm.matrix(x).detach() - start))

    first, late = one_step(factory(), 0), one_step(factory(), 300)
    assert late == pytest.approx(first, rel=1e-9)
    first, late = one_step(factory(gauge="free"), 0), one_step(factory(gauge="free"), 300)
    assert late < 0.2 * first


@pytest.mark.parametrize(
    ("factory", "shape"),
    [
        (cm.CWY, (6, 6)),
        (lambda: cm.CWY(n_reflections=3, det=-1), (8, 8)),
        (cm.TCWY, (4, 4)),
        (cm.TCWY, (8, 2)),
        (cm.TCWY, (16, 4)),
        (cm.TCWY, (40, 5)),
        (cm.TCWY, (12, 9)),
    ],
    ids=["cwy", "cwy-L3", "tcwy-square", "tcwy-8x2", "tcwy-16x4", "tcwy-40x5", "tcwy-12x9"],
)
def test_step_scale_is_the_mean_squared_gain_of_the_map(factory, shape):
    """Note [step scale]: c = ||J||_F^2 / rank J at unit columns (Haar points, mean of 3)."""
    manifold = factory()
    gains = []
    for seed in range(3):
        x = manifold.random(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))
        x = x.as_subclass(torch.Tensor)
        jac = torch.autograd.functional.jacobian(manifold.matrix, x).reshape(-1, x.numel())
        s = torch.linalg.svdvals(jac)
        s = s[s > 1e-8 * s[0]]
        gains.append(float((s**2).mean()))
    c = manifold.step_scale(x)
    measured = sum(gains) / len(gains)
    assert abs(math.log(c / measured)) < math.log(1.25), (c, measured)


@pytest.mark.parametrize("name", ["cwy", "tcwy"])
def test_one_lr_moves_the_matrix_as_much_as_on_stiefel(name):
    """First-order change of the matrix by one SGD step: within a factor 2 of QRStiefel's."""
    factory, shape = MANIFOLDS[name]
    loss = _pca_loss(shape[0], seed=5)
    ratios = []
    for seed in range(4):
        w = haar(shape[0], shape[1], det=1 if shape[0] == shape[1] else None, seed=seed)
        changes = []
        for manifold in (factory(), cm.QRStiefel()):
            x = cm.from_matrix(manifold, w).requires_grad_()
            loss(manifold.matrix(x)).backward()
            with torch.no_grad():
                y = manifold.retr(x, -1e-6 * manifold.egrad2rgrad(x, x.grad))
                changes.append(float(torch.linalg.matrix_norm(manifold.matrix(y) - w)))
        ratios.append(changes[0] / changes[1])
    assert 0.5 < math.exp(sum(map(math.log, ratios)) / len(ratios)) < 2, ratios


@pytest.mark.parametrize("gauge", ["auto", "unit", "free"])
@pytest.mark.parametrize("cls", [cm.CWY, cm.TCWY])
def test_every_gauge_is_euclidean(cls, gauge):
    """Gradient, inner product and component_inner are Euclidean in every gauge; only the
    step differs, and gauge="free" is the geometry of earlier releases, bit for bit."""
    manifold = cls(gauge=gauge)
    x = manifold.random(7, 7 if cls is cm.CWY else 3, dtype=F64)
    u = torch.randn(x.shape, dtype=F64)
    torch.testing.assert_close(manifold.egrad2rgrad(x, u), u, rtol=0, atol=0)
    torch.testing.assert_close(manifold.inner(x, u), (u * u).sum())
    torch.testing.assert_close(manifold.component_inner(x, u), u * u)
    torch.testing.assert_close(manifold.dist(x, x + u), torch.linalg.matrix_norm(u))
    if gauge == "free":
        torch.testing.assert_close(manifold.retr(x, u), x + u, rtol=0, atol=0)


@pytest.mark.parametrize("cls", [cm.CWY, cm.TCWY])
def test_bad_gauge(cls):
    with pytest.raises(
        ValueError, match="gauge must be one of 'auto', 'unit', 'free'; got 'fixed'"
    ):
        cls(gauge="fixed")


def test_auto_gauge_follows_the_optimizer_of_each_step():
    """One manifold shared by an SGD and an Adam parameter: each gets its own gauge."""
    manifold = cm.TCWY()
    a = geoopt.ManifoldParameter(manifold.random(9, 3, dtype=F64))
    b = geoopt.ManifoldParameter(manifold.random(9, 3, dtype=F64))
    sgd = geoopt.optim.RiemannianSGD([a], lr=0.3, momentum=0.9)
    adam = geoopt.optim.RiemannianAdam([b], lr=0.1)
    loss = _pca_loss(9)
    for _ in range(50):
        for p, opt in ((a, sgd), (b, adam)):
            opt.zero_grad()
            loss(cm.matrix(p)).backward()
            opt.step()
    torch.testing.assert_close(_norms(a), torch.ones(3, dtype=F64))
    assert float((_norms(b) - 1).abs().max()) > 1e-2
    y = manifold.retr(a.detach(), torch.randn(9, 3, dtype=F64))  # after the steps: unit
    torch.testing.assert_close(_norms(y), torch.ones(3, dtype=F64))


def test_auto_gauge_marks_adam_points_without_optimizer_hooks():
    """Note [gauge]: component_inner marks the point; no global optimizer hook is involved."""
    import torch.optim.optimizer as torch_optimizer

    assert not torch_optimizer._global_optimizer_pre_hooks
    manifold = cm.CWY()
    x = manifold.random(5, 5, dtype=F64)
    u = 0.1 * torch.randn(x.shape, dtype=F64)
    assert float((_norms(manifold.retr(x, u)) - 1).abs().max()) < 1e-12  # unit
    manifold.component_inner(x, u)  # what RiemannianAdam asks before its first step
    torch.testing.assert_close(manifold.retr(x, u), x + u, rtol=0, atol=0)  # free
    copied = __import__("copy").deepcopy(manifold)  # weak references do not travel
    assert float((_norms(copied.retr(x, u)) - 1).abs().max()) < 1e-12


def test_auto_gauge_recovers_after_a_failed_adam_step():
    manifold = cm.TCWY()
    p = geoopt.ManifoldParameter(manifold.random(9, 3, dtype=F64))
    adam = geoopt.optim.RiemannianAdam([p], lr=0.1)
    p.grad = torch.full_like(p, float("nan")).to_sparse()  # geoopt raises inside step()
    with pytest.raises(RuntimeError, match="sparse"):
        adam.step()
    y = manifold.retr(p.detach(), torch.randn(9, 3, dtype=F64))
    torch.testing.assert_close(_norms(y), torch.ones(3, dtype=F64))
