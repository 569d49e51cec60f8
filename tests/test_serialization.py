"""Manifolds and ManifoldParameters survive pickle, deepcopy and state_dict."""

import copy
import io
import pickle

import geoopt
import pytest
import torch

import cwy_manifolds as cm

F64 = torch.float64
MANIFOLDS = {
    "cwy": lambda: cm.CWY(),
    "cwy-det-1-L3": lambda: cm.CWY(det=-1, n_reflections=3),
    "tcwy": lambda: cm.TCWY(),
    "cayley": lambda: cm.CayleyStiefel(),
    "exp": lambda: cm.ExpStiefel(),
    "qr": lambda: cm.QRStiefel(),
    "scaled-cwy": lambda: geoopt.Scaled(cm.CWY(), 2.0),
}


def _options(manifold):
    base = manifold.base if isinstance(manifold, geoopt.Scaled) else manifold
    return type(base), getattr(base, "det", None), getattr(base, "n_reflections", None)


def _param(manifold):
    base = manifold.base if isinstance(manifold, geoopt.Scaled) else manifold
    shape = (5, 5) if isinstance(base, cm.CWY) else (5, 3)
    m = base.matrix(base.random(*shape, dtype=F64)).detach()
    return geoopt.ManifoldParameter(cm.from_matrix(manifold, m))


@pytest.mark.parametrize("name", MANIFOLDS)
@pytest.mark.parametrize("clone", ["pickle", "deepcopy"])
def test_manifold_and_parameter_round_trip(name, clone):
    manifold = MANIFOLDS[name]()
    p = _param(manifold)
    dup = pickle.loads(pickle.dumps(p)) if clone == "pickle" else copy.deepcopy(p)
    assert isinstance(dup, geoopt.ManifoldParameter)
    assert _options(dup.manifold) == _options(manifold)
    torch.testing.assert_close(cm.matrix(dup), cm.matrix(p), rtol=0, atol=0)
    if clone == "pickle":
        assert _options(pickle.loads(pickle.dumps(manifold))) == _options(manifold)


@pytest.mark.parametrize("name", MANIFOLDS)
def test_state_dict_loads_with_weights_only(name):
    manifold = MANIFOLDS[name]()
    module = torch.nn.Module()
    module.p = _param(manifold)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = torch.nn.Module()
    fresh.p = geoopt.ManifoldParameter(torch.zeros_like(module.p), manifold=manifold)
    fresh.load_state_dict(state)
    torch.testing.assert_close(cm.matrix(fresh.p), cm.matrix(module.p), rtol=0, atol=0)


def test_whole_manifold_parameter_needs_weights_only_false():
    """Documented: save state_dict(), not the ManifoldParameter object."""
    p = _param(cm.CWY())
    buffer = io.BytesIO()
    torch.save(p, buffer)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buffer, weights_only=True)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    torch.testing.assert_close(cm.matrix(loaded), cm.matrix(p), rtol=0, atol=0)
