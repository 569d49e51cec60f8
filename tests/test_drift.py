"""Retraction results stay on the manifold: large steps, long runs (Note [drift])."""

import geoopt
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from _harness import one_thread  # noqa: F401 (small problems: one torch thread)
from _reference import haar

import cwy_manifolds as cm
from cwy_manifolds.manifolds.stiefel_math import drift_atol

F64 = torch.float64
STIEFEL = {"cayley": cm.CayleyStiefel, "exp": cm.ExpStiefel, "qr": cm.QRStiefel}
DTYPES = {"float32": torch.float32, "float64": F64}


def _drift(y):
    y = y.detach().to(F64)
    return float((y.mT @ y - torch.eye(y.shape[-1], dtype=F64)).abs().max())


@pytest.mark.parametrize("size", [1e1, 1e2, 1e3, 1e4])
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("name", STIEFEL)
def test_large_steps_stay_on_the_manifold(name, dtype, size):
    """||u|| up to 1e4: the result is within the size-aware tolerance, never NaN."""
    manifold = STIEFEL[name]()
    gen = torch.Generator().manual_seed(0)
    x = manifold.random(64, 8, dtype=dtype, generator=gen)
    u = manifold.proju(x, torch.randn(64, 8, dtype=dtype, generator=gen))
    u = u * (size / torch.linalg.matrix_norm(u))
    for y in (manifold.retr(x, u), manifold.retr_transp(x, u, u)[0], manifold.expmap(x, u)):
        assert bool(torch.isfinite(y).all())
        # the bound the retractions keep, plus rounding the float64 residual to dtype
        assert _drift(y) <= drift_atol(64, dtype) + 8 * torch.finfo(dtype).eps


@pytest.mark.parametrize("name", STIEFEL)
def test_huge_learning_rates_give_no_nan(name):
    manifold = STIEFEL[name]()
    x = geoopt.ManifoldParameter(manifold.random(32, 4, generator=torch.Generator().manual_seed(1)))
    opt = geoopt.optim.RiemannianSGD([x], lr=1e3)
    cov = torch.diag(torch.linspace(3.0, 0.1, 32))
    for _ in range(10):
        opt.zero_grad()
        (-(x.mT @ cov @ x).trace()).backward()
        opt.step()
        assert bool(torch.isfinite(x).all())
        assert _drift(x) <= drift_atol(32, torch.float32) + 8 * torch.finfo(torch.float32).eps


def test_exp_is_the_geodesic():
    """Against Edelman, Arias and Smith's formula with SciPy's expm, in float64."""
    manifold = cm.ExpStiefel()
    x = haar(9, 3, seed=2)
    u = manifold.proju(x, torch.randn(9, 3, dtype=F64, generator=torch.Generator().manual_seed(3)))
    xn, un = x.numpy(), u.numpy()
    a, s = xn.T @ un, un.T @ un
    block = np.block([[a, -s], [np.eye(3), a]])
    expected = (
        np.hstack([xn, un])
        @ scipy.linalg.expm(block)
        @ np.vstack([scipy.linalg.expm(-a), np.zeros((3, 3))])
    )
    torch.testing.assert_close(manifold.retr(x, u), torch.from_numpy(expected))


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_settling_fixes_only_what_drifted(dtype):
    """Below the tolerance a result is returned bit for bit; above, its polar factor."""
    from cwy_manifolds.manifolds.stiefel_math import settle

    gen = torch.Generator().manual_seed(4)
    q = torch.from_numpy(scipy.stats.ortho_group.rvs(20, random_state=4)[:, :5]).to(dtype)
    bump = torch.randn(20, 5, dtype=dtype, generator=gen)
    tolerance = drift_atol(20, dtype)
    near = q + 0.05 * tolerance * bump / float(bump.abs().max())
    torch.testing.assert_close(settle(near), near, rtol=0, atol=0)
    far = q + 1e-3 * bump
    fixed = settle(torch.stack([near, far]))
    torch.testing.assert_close(fixed[0], near, rtol=0, atol=0)  # per batch item
    polar, _ = scipy.linalg.polar(far.double().numpy())
    torch.testing.assert_close(fixed[1].double(), torch.from_numpy(polar), atol=tolerance, rtol=0)


@pytest.mark.parametrize("name", ["cayley", "exp"])
def test_long_float32_runs_stay_within_the_tolerance(name):
    """RiemannianAdam, float32, 1500 steps of online PCA: the drift stays bounded."""
    manifold = STIEFEL[name]()
    gen = torch.Generator().manual_seed(5)
    x = geoopt.ManifoldParameter(manifold.random(32, 8, generator=gen))
    opt = geoopt.optim.RiemannianAdam([x], lr=0.01)
    scales = torch.linspace(2.0, 0.2, 32)
    for _ in range(1500):
        samples = torch.randn(16, 32, generator=gen) * scales
        opt.zero_grad()
        (-(samples @ x).square().sum() / 16).backward()
        opt.step()
    assert _drift(x) <= drift_atol(32, torch.float32) + 8 * torch.finfo(torch.float32).eps
