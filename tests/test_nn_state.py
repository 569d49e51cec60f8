"""Loading state dicts: the configuration check, old checkpoints, layouts; error messages."""

import io
import re

import pytest
import torch
from _nn_support import F64, one_thread
from torch import nn

import cwy_manifolds as cm
from cwy_manifolds.nn import (
    OrthogonalLinear,
    OrthogonalRNN,
    OrthogonalRNNCell,
    orthogonal,
    orthogonalize,
)

__all__ = ["one_thread"]  # the autouse fixture


def _round_trip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# id -> (factory of the saved module, factory of a differently configured one, words)
MISMATCHES = {
    "det": (
        lambda: orthogonal(nn.Linear(5, 5), det=-1),
        lambda: orthogonal(nn.Linear(5, 5)),
        r"det=-1.*det=\+1",
    ),
    "n_reflections": (
        lambda: orthogonal(nn.Linear(5, 5), n_reflections=2),
        lambda: orthogonal(nn.Linear(5, 5), n_reflections=3),
        "n_reflections=2.*n_reflections=3",
    ),
    "method-tcwy-into-qr": (
        lambda: OrthogonalLinear(4, 6),
        lambda: OrthogonalLinear(4, 6, method="qr", manifold_parameter=True),
        "method='tcwy'.*method='qr'",
    ),
    "method-cwy-into-tcwy": (
        lambda: orthogonal(nn.Linear(4, 4)),
        lambda: orthogonal(nn.Linear(4, 4), method="tcwy"),
        "method='cwy'.*method='tcwy'",
    ),
    "flatten": (
        lambda: orthogonal(nn.Conv2d(2, 3, 2), flatten=True),
        lambda: orthogonal(nn.Conv2d(2, 3, 2)),
        "flatten=True.*flatten=False",
    ),
    "rnn-det": (
        lambda: OrthogonalRNN(3, 5, det=-1),
        lambda: OrthogonalRNN(3, 5),
        r"det=-1.*det=\+1",
    ),
}


@pytest.mark.parametrize("name", MISMATCHES)
def test_load_refuses_another_configuration(name):
    saved, other, words = MISMATCHES[name]
    state = _round_trip(saved().state_dict())
    module = other()
    before = {k: v.clone() for k, v in module.state_dict().items() if torch.is_tensor(v)}
    with pytest.raises(ValueError, match=f"state_dict.*saved with.*{words}"):
        module.load_state_dict(state)
    after = module.state_dict()
    for key, value in before.items():  # nothing of the parametrized tensor was loaded
        if "original" in key:
            torch.testing.assert_close(after[key], value)
    with pytest.raises(ValueError, match="saved with"):
        module.load_state_dict(state, strict=False)


def test_det_flip_would_change_the_meaning():
    """What the check prevents: the same vectors with the other determinant."""
    src = orthogonal(nn.Linear(5, 5, dtype=F64), det=-1)
    dst = orthogonal(nn.Linear(5, 5, dtype=F64))
    assert torch.linalg.det(src.weight) < 0
    with pytest.raises(ValueError, match="saved with"):
        dst.load_state_dict(src.state_dict())
    assert torch.linalg.det(dst.weight) > 0


@pytest.mark.parametrize(
    "factory",
    [
        lambda: orthogonal(nn.Linear(5, 3, dtype=F64), n_reflections=None),
        lambda: OrthogonalLinear(6, 4, dtype=F64),
        lambda: OrthogonalRNN(3, 5, n_reflections=2, dtype=F64),
    ],
    ids=["orthogonal", "OrthogonalLinear", "OrthogonalRNN"],
)
def test_checkpoints_without_configuration_still_load(factory):
    """Checkpoints written before the configuration was saved: loaded without the check."""
    saved = factory()
    state = {k: v for k, v in saved.state_dict().items() if not k.endswith("_extra_state")}
    loaded = factory()
    loaded.load_state_dict(_round_trip(state))  # strict: no missing key
    for (_, a), (_, b) in zip(saved.state_dict().items(), loaded.state_dict().items(), strict=True):
        if torch.is_tensor(a):
            torch.testing.assert_close(a, b)


def test_old_layer_keys_load():
    """Before the layers used parametrize: `weight_original` (N, L), tall, for the layers."""
    layer = OrthogonalLinear(7, 3, dtype=F64)  # wide weight (3, 7): V is (7, 3)
    w = orthogonalize(torch.randn(3, 7, dtype=F64))
    old = {"weight_original": cm.TCWY().from_matrix(w.mT), "bias": torch.zeros(3, dtype=F64)}
    layer.load_state_dict(old)
    torch.testing.assert_close(layer.weight, w)
    rnn = OrthogonalRNN(2, 5, n_reflections=2, dtype=F64)
    manifold = cm.CWY(n_reflections=2)
    v = torch.randn(5, 2, dtype=F64)
    old = {
        "cell.weight_ih": torch.zeros(5, 2, dtype=F64),
        "cell.weight_hh_original": v,
        "cell.bias": torch.zeros(5, dtype=F64),
    }
    rnn.load_state_dict(old)
    torch.testing.assert_close(rnn.cell.weight_hh, manifold.matrix(v))


LAYOUT_CASES = {  # id -> (in_features, out_features), n_reflections
    "wide": ((6, 4), None),
    "tall": ((4, 6), None),
    "square": ((5, 5), None),
    "square-L2": ((5, 5), 2),
}


@pytest.mark.parametrize("name", LAYOUT_CASES)
def test_manifold_parameter_state_dicts_load_both_ways(name):
    """The free tensor's layouts differ (Note [free tensor layout]): converted on load."""
    sizes, count = LAYOUT_CASES[name]
    plain = OrthogonalLinear(*sizes, n_reflections=count, dtype=F64)
    geo = OrthogonalLinear(*sizes, n_reflections=count, manifold_parameter=True, dtype=F64)
    geo.load_state_dict(_round_trip(plain.state_dict()))
    torch.testing.assert_close(geo.weight, plain.weight)
    fresh = OrthogonalLinear(*sizes, n_reflections=count, dtype=F64)
    fresh.load_state_dict(_round_trip(geo.state_dict()))
    torch.testing.assert_close(fresh.weight, plain.weight)


def test_extra_state_is_plain_data():
    state = orthogonal(nn.Linear(5, 3), det=None).state_dict()
    config = state["parametrizations.weight.0._extra_state"]
    assert config["method"] == "tcwy"
    assert config["shape"] == [3, 5]
    _round_trip(state)  # weights_only=True accepts it


# -- messages -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [None, 2], ids=["L=N", "L<N"])
def test_rnn_nan_hx_gives_nan_without_misleading_errors(count):
    """Like torch.nn.RNN, the inputs' values are not checked: NaN propagates."""
    rnn = OrthogonalRNN(3, 8, n_reflections=count)
    hx = torch.full((1, 4, 8), float("nan"))
    output, h_n = rnn(torch.randn(5, 4, 3), hx)
    assert bool(output.isnan().any())
    assert h_n.shape == (1, 4, 8)


@pytest.mark.parametrize(
    ("hx_shape", "input_shape"),
    [((1, 2, 8), (2, 3)), ((3, 8), (2, 3)), ((8,), (2, 3)), ((2, 8), (3,)), ((2, 7), (2, 3))],
    ids=["3-d", "wrong-batch", "unbatched-hx", "unbatched-input", "wrong-size"],
)
def test_cell_validates_hx_like_rnncell(hx_shape, input_shape):
    cell = OrthogonalRNNCell(3, 8)
    with pytest.raises(ValueError, match=r"hx must have shape \("):
        cell(torch.randn(input_shape), torch.zeros(hx_shape))


def test_cell_validates_input():
    cell = OrthogonalRNNCell(3, 8)
    with pytest.raises(ValueError, match=r"input must have shape \(B, 3\) or \(3,\); got"):
        cell(torch.randn(1, 2, 3))
    with pytest.raises(ValueError, match=r"input must have shape"):
        cell(torch.randn(2, 4))


@pytest.mark.parametrize("where", ["orthogonal", "orthogonalize"])
def test_nan_weight_gets_a_value_error_naming_it(where):
    layer = nn.Linear(4, 4)
    with torch.no_grad():
        layer.weight[1, 2] = float("nan")
    call = orthogonal if where == "orthogonal" else lambda m: orthogonalize(m.weight)
    with pytest.raises(ValueError, match=r"weight must have finite entries.*1 NaN/Inf"):
        call(layer)


@pytest.mark.parametrize("count", [None, 3], ids=["L=N", "L<N"])
def test_rnn_zero_column_names_the_weight(count):
    rnn = OrthogonalRNN(3, 7, n_reflections=count)
    with torch.no_grad():
        rnn.cell.parametrizations.weight_hh.original[:, 1] = 0
    with pytest.raises(ValueError, match=r"weight_hh's reflection vectors.*zero column"):
        rnn(torch.randn(4, 2, 3))


@pytest.mark.parametrize("n", [4, 5])
def test_format_1_records_of_square_tcwy_keep_their_meaning(n):
    """Format 1 saved det=None for a square "tcwy" weight, whose matrix then had the
    determinant (-1)^N of N reflections; T-CWY now takes det (default +1) and applies
    the sign flip, so such a record loads where det = (-1)^N and is refused elsewhere."""
    old_det = (-1) ** n
    saved = orthogonal(nn.Linear(n, n, dtype=F64), method="tcwy", det=old_det)
    state = saved.state_dict()
    key = "parametrizations.weight.0._extra_state"
    assert state[key]["format"] == 2
    assert state[key]["det"] == old_det
    state[key] = {**state[key], "format": 1, "det": None}
    same = orthogonal(nn.Linear(n, n, dtype=F64), method="tcwy", det=old_det)
    same.load_state_dict(_round_trip(state))
    torch.testing.assert_close(same.weight, saved.weight)
    other = orthogonal(nn.Linear(n, n, dtype=F64), method="tcwy", det=-old_det)
    with pytest.raises(ValueError, match=re.escape(f"det={old_det:+d}") + ".*this module"):
        other.load_state_dict(_round_trip(state))
