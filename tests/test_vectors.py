"""renormalize_ and the weight-decay warning for reflection-vector parameters."""

import warnings

import geoopt
import pytest
import torch

import cwy_manifolds as cm

F64 = torch.float64


def _grown(manifold, shape, factor=3.0):
    x = geoopt.ManifoldParameter(manifold.random(*shape, dtype=F64))
    with torch.no_grad():
        x.mul_(torch.linspace(1.0, factor, x.shape[-1], dtype=F64))
    return x


@pytest.mark.parametrize(
    ("manifold", "shape"),
    [(cm.CWY(), (5, 5)), (cm.CWY(det=-1, n_reflections=2), (5, 5)), (cm.TCWY(), (6, 3))],
    ids=["cwy", "cwy-det-1-L2", "tcwy"],
)
def test_renormalize_keeps_the_matrix(manifold, shape):
    x = _grown(manifold, shape)
    q = cm.matrix(x).detach().clone()
    cm.renormalize_(x)
    torch.testing.assert_close(cm.matrix(x), q)
    norms = torch.linalg.vector_norm(x.detach(), dim=-2)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_renormalize_plain_and_batched_tensors():
    v = torch.randn(2, 3, 6, 4, dtype=F64) * 7
    q = cm.tcwy(v)
    cm.renormalize_([v])
    torch.testing.assert_close(cm.tcwy(v), q)
    torch.testing.assert_close(torch.linalg.vector_norm(v, dim=-2), torch.ones(2, 3, 4, dtype=F64))


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.Adam([p], lr=0.01),
        lambda p: geoopt.optim.RiemannianAdam([p], lr=0.01, amsgrad=True),
        lambda p: torch.optim.SGD([p], lr=0.01, momentum=0.9),
    ],
    ids=["adam", "radam-amsgrad", "sgd-momentum"],
)
def test_renormalize_rescales_optimizer_state_consistently(make):
    """After renormalising, the state means the same in the new units.

    For Adam the next step is then exactly the step it would have taken (it depends on the
    ratio of first to root second moment); for SGD the momentum is in gradient units, which
    scale like the norms.
    """
    target = torch.randn(6, 3, dtype=F64)
    x = _grown(cm.TCWY(), (6, 3))
    y = geoopt.ManifoldParameter(x.detach().clone(), manifold=x.manifold)
    opts = [make(x), make(y)]

    def step(p, opt):
        opt.zero_grad()
        (cm.matrix(p) * target).sum().backward()
        opt.step()

    for _ in range(3):
        step(x, opts[0])
        step(y, opts[1])
    norms = torch.linalg.vector_norm(y.detach(), dim=-2, keepdim=True)
    before = {k: v.clone() for k, v in opts[1].state[y].items() if torch.is_tensor(v) and v.ndim}
    cm.renormalize_(y, opts[1])
    for key, value in before.items():
        power = 2 if "sq" in key else 1
        torch.testing.assert_close(opts[1].state[y][key], value * norms**power)
    old_x, old_y = x.detach().clone(), y.detach().clone()
    step(x, opts[0])
    step(y, opts[1])
    if "sgd" not in type(opts[0]).__name__.lower():
        torch.testing.assert_close(y.detach() - old_y, x.detach() - old_x, rtol=1e-5, atol=1e-9)


def test_renormalize_refuses_what_it_cannot_do():
    st = geoopt.ManifoldParameter(cm.QRStiefel().random(5, 2))
    with pytest.raises(TypeError, match="got a point of QRStiefel"):
        cm.renormalize_(st)
    x = _grown(cm.TCWY(), (5, 2))
    opt = torch.optim.Adagrad([x], lr=0.1)
    (cm.matrix(x).sum()).backward()
    opt.step()
    with pytest.raises(ValueError, match=r"got \['sum'\] in Adagrad"):
        cm.renormalize_(x, opt)
    with pytest.raises(ValueError, match="zero column"):
        cm.renormalize_(torch.zeros(4, 2))


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.01),
        lambda ps: geoopt.optim.RiemannianSGD(ps, lr=0.01, weight_decay=1e-4),
    ],
    ids=["torch-adamw", "geoopt-rsgd"],
)
def test_weight_decay_on_vectors_warns_once(make):
    x = geoopt.ManifoldParameter(cm.CWY().random(4, 4))
    opt = make([x])
    seen = []
    for _ in range(2):
        opt.zero_grad()
        cm.matrix(x).sum().backward()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opt.step()
        seen.append([str(w.message) for w in caught if "weight_decay" in str(w.message)])
    assert len(seen[0]) == 1
    assert "parameter group with weight_decay=0" in seen[0][0]
    assert seen[1] == []


@pytest.mark.parametrize(
    "params",
    [
        lambda: [geoopt.ManifoldParameter(cm.CWY().random(4, 4))],  # no weight decay
        lambda: [geoopt.ManifoldParameter(cm.QRStiefel().random(4, 2))],  # not vectors
    ],
    ids=["no-decay", "stiefel"],
)
def test_no_weight_decay_warning_otherwise(params):
    ps = params()
    decay = 0.0 if isinstance(ps[0].manifold, cm.CWY) else 0.1
    opt = geoopt.optim.RiemannianAdam(ps, lr=0.01, weight_decay=decay)
    cm.matrix(ps[0]).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
