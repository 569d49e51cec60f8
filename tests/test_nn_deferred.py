"""Meta tensors and deferred initialisation; thread safety; nn asks the manifolds."""

import threading

import pytest
import torch
from _nn_support import F64, gram_error, one_thread
from _reference import haar, tol
from torch import nn

import cwy_manifolds as cm
import cwy_manifolds.nn as cnn
from cwy_manifolds.nn import (
    OrthogonalLinear,
    OrthogonalRNN,
    OrthogonalRNNCell,
    orthogonal,
    orthogonalize,
)

__all__ = ["one_thread"]  # the autouse fixture

META = {
    "OrthogonalLinear-square": lambda **f: OrthogonalLinear(6, 6, **f),
    "OrthogonalLinear-wide": lambda **f: OrthogonalLinear(7, 3, bias=False, **f),
    "OrthogonalLinear-L2": lambda **f: OrthogonalLinear(5, 5, n_reflections=2, **f),
    "OrthogonalLinear-geoopt": lambda **f: OrthogonalLinear(3, 7, manifold_parameter=True, **f),
    "OrthogonalLinear-cayley": lambda **f: OrthogonalLinear(
        6, 4, manifold_parameter=True, method="cayley", **f
    ),
    "OrthogonalRNN": lambda **f: OrthogonalRNN(3, 6, **f),
    "OrthogonalRNN-L2": lambda **f: OrthogonalRNN(3, 6, n_reflections=2, **f),
    "OrthogonalRNNCell": lambda **f: OrthogonalRNNCell(3, 6, **f),
}


def _weights(module):
    out = [m.weight for m in module.modules() if isinstance(m, OrthogonalLinear)]
    return out + [m.weight_hh for m in module.modules() if isinstance(m, OrthogonalRNNCell)]


@pytest.mark.parametrize("name", META)
def test_layers_on_meta_then_to_empty_and_reset(name):
    module = META[name](device="meta", dtype=F64)
    assert all(p.is_meta for p in module.parameters())
    module.to_empty(device="cpu")
    for m in module.modules():
        if hasattr(m, "reset_parameters") and not isinstance(m, nn.ModuleList):
            m.reset_parameters()
    for w in _weights(module):
        assert gram_error(w) <= tol(max(w.shape), F64)
    kinds = [type(p) for p in META[name](dtype=F64).parameters()]
    assert [type(p) for p in module.parameters()] == kinds


def test_meta_default_device_model():
    with torch.device("meta"):
        model = nn.Sequential(OrthogonalLinear(4, 8), nn.Tanh(), OrthogonalLinear(8, 8))
    model.to_empty(device="cpu")
    for layer in (model[0], model[2]):
        layer.reset_parameters()
    assert model(torch.randn(2, 4)).shape == (2, 8)


@pytest.mark.parametrize("shape", [(5, 5), (3, 6)], ids=["square", "wide"])
def test_orthogonal_on_a_meta_module(shape):
    """Registration reads no values on meta; after to_empty, assign a weight."""
    layer = orthogonal(nn.Linear(shape[1], shape[0], device="meta"))
    assert layer.parametrizations.weight.original.is_meta
    layer.to_empty(device="cpu")
    target = orthogonalize(torch.randn(shape))
    layer.weight = target
    torch.testing.assert_close(layer.weight, target)


# -- thread safety --------------------------------------------------------------------------


def test_rnn_does_not_switch_checks_off_for_other_threads():
    """Before: OrthogonalRNN (L < N) turned the global value checks off at every step."""
    rnn = OrthogonalRNN(4, 32, n_reflections=4)
    x = torch.randn(200, 8, 4)
    stop = threading.Event()
    errors = []

    def run_rnn():
        try:
            while not stop.is_set():
                with torch.no_grad():
                    rnn(x)
        except Exception as err:
            errors.append(err)

    worker = threading.Thread(target=run_rnn)
    worker.start()
    v = torch.randn(32, 3)
    v[:, 1] = 0
    missed = 0
    try:
        for _ in range(300):
            try:
                q = cm.cwy(v)
            except ValueError:
                continue
            missed += 1
            assert bool(q.isnan().any())
    finally:
        stop.set()
        worker.join()
    assert not errors
    assert missed == 0
    assert cm.value_checks_enabled()


def test_nn_never_toggles_value_checks():
    """The switch is the user's: nn checks once per forward and then runs plain torch ops."""
    import ast
    from pathlib import Path

    for path in Path(cnn.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "id", None) or getattr(node, "attr", None)
            name = node.name if isinstance(node, ast.alias) else name
            assert name != "set_value_checks", f"{path.name} toggles the value checks"


# -- nn asks the manifolds ------------------------------------------------------------------


def test_nn_uses_no_private_manifold_names():
    import ast
    from pathlib import Path

    for path in Path(cnn.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("_flips", "_count"):
                pytest.fail(f"{path.name} uses manifold.{node.attr}")


CANDIDATES = {
    "half-scaled-identity": (torch.float16, lambda: 0.5 * torch.eye(16)),
    "half-orthogonal": (torch.float16, lambda: haar(16, det=1)),
    "float32-slightly-off": (torch.float32, lambda: haar(16, det=1) * (1 + 1e-3)),
    "float64-wrong-det": (F64, lambda: cm.core.flip_last_column(haar(16, det=1))),
}


@pytest.mark.parametrize("name", CANDIDATES)
def test_assignment_verdict_is_the_manifolds(name):
    """nn refuses exactly what CWY.from_matrix refuses (no copy of its tolerance)."""
    dtype, make = CANDIDATES[name]
    q = make().to(dtype)
    layer = orthogonal(nn.Linear(16, 16, dtype=dtype))
    try:
        cm.CWY().from_matrix(q)
        accepted = True
    except ValueError:
        accepted = False
    if accepted:
        layer.weight = q
    else:
        with pytest.raises(ValueError, match="weight cannot be assigned"):
            layer.weight = q
