"""renormalize_ and the weight-decay warning for reflection-vector parameters."""

import subprocess
import sys
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


def test_importing_the_package_installs_no_optimizer_hooks():
    hooks = "(dict(o._global_optimizer_pre_hooks), dict(o._global_optimizer_post_hooks))"
    code = (
        f"import torch.optim.optimizer as o; before = {hooks}; "
        f"import cwy_manifolds, cwy_manifolds.nn, cwy_manifolds.tools.compare; "
        f"print(before == {hooks})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.01),
        lambda ps: geoopt.optim.RiemannianSGD(ps, lr=0.01, weight_decay=1e-4),
    ],
    ids=["torch-adamw", "geoopt-rsgd"],
)
def test_weight_decay_on_vectors_warns_when_checked(make):
    x = geoopt.ManifoldParameter(cm.CWY().random(4, 4))
    opt = make([x])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt.step()  # no hook: nothing is said
        assert cm.check_weight_decay(opt)
        cm.renormalize_(x, opt)  # the package's own helper checks too
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert all("parameter group with weight_decay=0" in m for m in messages)


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
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cm.check_weight_decay(opt)
