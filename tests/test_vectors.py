"""renormalize_ and the weight-decay warning for reflection-vector parameters."""

import subprocess
import sys
import warnings

import geoopt
import numpy as np
import pytest
import torch
from _harness import one_thread  # noqa: F401 (small problems: one torch thread)

import cwy_manifolds as cm
import cwy_manifolds.nn as cnn

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


# -- renormalize_ at the edges of the floating-point range (Note [scaled normalisation]) --

SCALES = {
    "float16-9000": (torch.float16, 9000.0),  # norms about 72000 > 65504, the largest float16
    "bfloat16-1e37": (torch.bfloat16, 1e37),
    "float32-1e20": (torch.float32, 1e20),  # squares overflow
    "float32-1e-25": (torch.float32, 1e-25),  # squares underflow
    "float64-1e300": (F64, 1e300),
}


@pytest.mark.parametrize("name", SCALES)
def test_renormalize_huge_and_tiny_vectors(name):
    dtype, scale = SCALES[name]
    v = torch.randn(64, 4, dtype=F64, generator=torch.Generator().manual_seed(0)) * scale
    v = v.to(dtype)
    assert bool(torch.isfinite(v).all())
    expected = v.double().numpy() / np.abs(v.double().numpy()).max(axis=0)  # NumPy, scaled
    expected /= np.linalg.norm(expected, axis=0)
    cm.renormalize_(v)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(v.double(), torch.from_numpy(expected), atol=10 * eps, rtol=0)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (float("nan"), r"params must have finite entries; got 1 NaN/Inf entries in shape \(6, 3\)"),
        (float("inf"), r"params must have finite entries; got 1 NaN/Inf entries"),
        (0.0, r"params must have no zero columns .*; got 1 zero column\(s\) in shape \(6, 3\)"),
    ],
    ids=["nan", "inf", "zero"],
)
def test_renormalize_names_the_bad_column(value, match):
    v = torch.randn(6, 3, dtype=F64)
    if value == 0.0:
        v[:, 1] = 0.0
    else:
        v[2, 1] = value
    before = v.clone()
    with pytest.raises(ValueError, match=match):
        cm.renormalize_(v)
    torch.testing.assert_close(v, before, equal_nan=True)  # nothing changed


OPTIMIZERS = {
    "sgd-momentum": (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), 1e20),
    "adam": (lambda ps: torch.optim.Adam(ps, lr=0.01), 1e10),
    "adam-amsgrad": (lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True), 1e10),
}
_POWERS = {"momentum_buffer": 1, "exp_avg": 1, "exp_avg_sq": 2, "max_exp_avg_sq": 2}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_renormalize_rescales_the_optimizer_state_consistently(name):
    """A run at another scale (vectors times c, state in gradient units over c, squared
    state over c^2: the state a run at that scale has, the loss being scale-invariant),
    renormalised with its optimizer, continues exactly as the run at the first scale."""
    make, scale = OPTIMIZERS[name]
    target = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    factors = torch.tensor([scale, 1.0, 1.0 / scale])  # one huge, one tiny column

    def steps(p, opt, count):
        for _ in range(count):
            opt.zero_grad()
            (cm.tcwy(p) * target).sum().backward()
            opt.step()

    a = torch.nn.Parameter(cm.TCWY().random(6, 3).as_subclass(torch.Tensor))
    opt_a = make([a])
    steps(a, opt_a, 3)
    b = torch.nn.Parameter(a.detach() * factors)
    opt_b = make([b])
    opt_b.state[b] = {
        k: v / factors ** _POWERS[k] if k in _POWERS else v.clone()
        for k, v in opt_a.state[a].items()
    }
    for p, opt in ((a, opt_a), (b, opt_b)):
        cm.renormalize_(p, opt)
        steps(p, opt, 3)
    torch.testing.assert_close(b.detach(), a.detach(), atol=1e-5, rtol=1e-4)


def test_renormalize_half_precision_state_in_float32():
    p = torch.nn.Parameter((torch.randn(64, 4) * 9000).half())
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    loss = lambda: (cm.tcwy(p).float() * torch.ones(64, 4)).sum()  # noqa: E731
    loss().backward()
    opt.step()
    buffer = opt.state[p]["momentum_buffer"].float().clone()
    norms = torch.linalg.vector_norm(p.detach().double(), dim=0)
    cm.renormalize_(p, opt)
    rescaled = opt.state[p]["momentum_buffer"]
    assert rescaled.dtype == torch.float16
    assert bool(torch.isfinite(rescaled).all())
    torch.testing.assert_close(rescaled.double(), buffer.double() * norms, rtol=2e-3, atol=1e-3)


def test_renormalize_rows_of_a_wide_weight():
    """nn stores the vectors of a wide weight as the rows of the free tensor: dim=-1."""
    layer = cnn.orthogonal(torch.nn.Linear(7, 3, dtype=F64))  # weight 3 x 7, wide
    original = layer.parametrizations.weight.original
    with torch.no_grad():
        original.mul_(torch.tensor([[2.0], [5.0], [0.1]], dtype=F64))
    w = layer.weight.detach().clone()
    opt = torch.optim.SGD([original], lr=0.1, momentum=0.9)
    layer.weight.sum().backward()
    opt.step()
    w = layer.weight.detach().clone()
    cm.renormalize_(original, opt, dim=-1)
    torch.testing.assert_close(layer.weight, w)
    rows = torch.linalg.vector_norm(original.detach(), dim=-1)
    torch.testing.assert_close(rows, torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="dim must be -2 for CWY/TCWY points"):
        cm.renormalize_(geoopt.ManifoldParameter(cm.TCWY().random(5, 2)), dim=-1)
    with pytest.raises(ValueError, match=r"dim must be -2 .* or -1"):
        cm.renormalize_(original, dim=0)
