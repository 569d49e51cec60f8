"""MatrixManifold.nearest, point_shape, det_of, CWY.flips; nn asks the manifolds for each.

References: SciPy's polar decomposition and NumPy's SVD, independent of the package.
"""

import numpy as np
import pytest
import scipy.linalg
import torch
from _harness import one_thread  # noqa: F401 (small problems: one torch thread)
from _reference import haar, tol
from torch import nn

import cwy_manifolds as cm
from cwy_manifolds.nn import orthogonal, orthogonalize

F64 = torch.float64

# id -> (manifold factory, matrix shape)
CASES = {
    "cwy": (cm.CWY, (5, 5)),
    "cwy-det-1": (lambda: cm.CWY(det=-1), (4, 4)),
    "tcwy-thin": (cm.TCWY, (7, 3)),
    "tcwy-square-odd": (cm.TCWY, (5, 5)),
    "tcwy-square-det-1": (lambda: cm.TCWY(det=-1), (4, 4)),
    "cayley-thin": (cm.CayleyStiefel, (6, 2)),
    "qr-square-both": (cm.QRStiefel, (4, 4)),
    "exp-square-det+1": (lambda: cm.ExpStiefel(det=1), (5, 5)),
    "qr-batch-det-1": (lambda: cm.QRStiefel(det=-1), (3, 4, 4)),
}


def _reference(a: np.ndarray, det: int | None) -> np.ndarray:
    """The polar factor (scipy), with the smallest singular direction reversed for det."""
    if a.ndim > 2:
        return np.stack([_reference(item, det) for item in a])
    q, _ = scipy.linalg.polar(a)
    if det is not None and np.sign(np.linalg.det(q)) != det:
        p, _, rt = np.linalg.svd(a, full_matrices=False)
        p[:, -1] *= -1
        q = p @ rt
    return q


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", CASES)
def test_nearest_is_the_polar_factor_of_the_component(name, seed):
    factory, shape = CASES[name]
    manifold = factory()
    a = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(seed))
    q = manifold.nearest(a)
    expected = _reference(a.numpy(), manifold.det_of(*shape[-2:]))
    torch.testing.assert_close(q, torch.from_numpy(expected), atol=tol(shape[-2], F64), rtol=0)
    torch.testing.assert_close(manifold.matrix(manifold.from_matrix(q)), q)  # reachable
    assert q.is_contiguous()
    assert not q.requires_grad


@pytest.mark.parametrize("det", [1, -1])
def test_nearest_with_a_determinant_beats_every_matrix_of_the_component(det):
    """A brute-force check of optimality: no Haar matrix of the component is closer."""
    a = torch.randn(4, 4, dtype=F64, generator=torch.Generator().manual_seed(5))
    best = float(torch.linalg.matrix_norm(a - cm.CWY(det=det).nearest(a)))
    others = torch.stack([haar(4, det=det, seed=s) for s in range(200)])
    assert best <= float(torch.linalg.matrix_norm(a - others).min())


@pytest.mark.parametrize("det", [1, -1])
def test_nearest_with_few_reflections_is_reachable(det):
    """L < N: a close matrix of the subset (Note [fewer reflections]), not always the nearest."""
    manifold = cm.CWY(det=det, n_reflections=2)
    a = torch.randn(6, 6, dtype=F64, generator=torch.Generator().manual_seed(0))
    q = manifold.nearest(a)
    x = manifold.from_matrix(q)
    assert x.shape == (6, 2)
    torch.testing.assert_close(manifold.matrix(x), q)
    assert int(torch.linalg.slogdet(q).sign) == det


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_nearest_keeps_the_dtype(dtype):
    a = torch.randn(6, 6, dtype=dtype)
    q = cm.CWY(det=-1).nearest(a)
    assert q.dtype == dtype
    assert int(torch.linalg.slogdet(q.double()).sign) == -1


BAD = {
    "nan": (lambda: cm.CWY().nearest(torch.full((3, 3), float("nan"))), ValueError,
            r"m must have finite entries to be made orthogonal; got 9 NaN/Inf"),
    "inf-named": (lambda: cm.TCWY().nearest(torch.eye(4, 2) / 0, name="w"), ValueError,
                  r"w must have finite entries"),
    "wide": (lambda: cm.QRStiefel().nearest(torch.randn(2, 5)), ValueError,
             r"m must have M <= N for QRStiefel; got \(2, 5\)"),
    "cwy-thin": (lambda: cm.CWY().nearest(torch.randn(5, 2)), ValueError,
                 r"m must be a square shape \(\*, N, N\) for CWY; got \(5, 2\)"),
    "integer": (lambda: cm.CWY().nearest(torch.ones(3, 3, dtype=torch.int64)), TypeError,
                "m must be a real floating-point tensor"),
    "vector": (lambda: cm.CWY().nearest(torch.ones(3)), ValueError, "at least 2 dimensions"),
}  # fmt: skip


@pytest.mark.parametrize("bad", BAD)
def test_nearest_refuses_bad_input(bad):
    call, error, match = BAD[bad]
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("manifold", "size", "expected"),
    [
        (cm.CWY(), (2, 6, 6), (2, 6, 6)),
        (cm.CWY(n_reflections=3), (6, 6), (6, 3)),
        (cm.CWY(n_reflections=3), (6, 3), (6, 3)),  # a point shape (Note [sizes are ...])
        (cm.TCWY(), (7, 2), (7, 2)),
        (cm.CayleyStiefel(), (0, 0), (0, 0)),
    ],
    ids=["cwy", "cwy-L3", "cwy-L3-point-shape", "tcwy", "empty"],
)
def test_point_shape(manifold, size, expected):
    assert manifold.point_shape(*size) == expected
    assert tuple(manifold.random(*size).shape) == expected


def test_det_of_and_flips():
    assert cm.TCWY(det=-1).det_of(5, 5) == -1
    assert cm.TCWY(det=-1).det_of(5, 3) is None
    assert cm.QRStiefel().det_of(4, 4) is None
    assert [cm.CWY().flips(n) for n in range(4)] == [False, True, False, True]
    assert [cm.CWY(det=-1).flips(n) for n in range(4)] == [True, False, True, False]


# -- nn asks the manifolds ------------------------------------------------------------------

NN_CASES = {
    "cwy": ((5, 5), {}),
    "cwy-det-1": ((4, 4), {"det": -1}),
    "tcwy-square-odd": ((5, 5), {"method": "tcwy"}),
    "tcwy-square-det-1": ((5, 5), {"method": "tcwy", "det": -1}),
    "tcwy-wide": ((3, 6), {}),
    "cwy-L2": ((5, 5), {"n_reflections": 2}),
}


def _manifold_of(layer):
    return layer.parametrizations.weight[0].manifold


@pytest.mark.parametrize("name", NN_CASES)
def test_nn_projects_with_the_manifold(name):
    shape, options = NN_CASES[name]
    w = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(4))
    layer = orthogonal(nn.Linear(shape[1], shape[0], dtype=F64), **options)
    manifold = _manifold_of(layer)
    tall = w if shape[0] >= shape[1] else w.mT
    expected = manifold.nearest(tall)
    expected = expected if shape[0] >= shape[1] else expected.mT
    torch.testing.assert_close(orthogonalize(w, **options), expected, rtol=0, atol=0)
    if shape[0] == shape[1]:  # the determinant is the manifold's
        assert manifold.det == options.get("det", 1)
        assert int(torch.linalg.slogdet(layer.weight.detach()).sign) == manifold.det


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("name", NN_CASES)
def test_nn_accepts_exactly_what_the_manifold_accepts(name, det):
    shape, options = NN_CASES[name]
    layer = orthogonal(nn.Linear(shape[1], shape[0], dtype=F64), **options)
    manifold = _manifold_of(layer)
    n, m = max(shape), min(shape)
    targets = [haar(n, m, det=det if n == m else None, seed=1)]
    if "n_reflections" in options:
        targets.append(manifold.matrix(manifold.random(n, n, dtype=F64)))
    for tall in targets:
        try:
            manifold.from_matrix(tall)
            accepted = True
        except ValueError:
            accepted = False
        weight = tall if shape[0] >= shape[1] else tall.mT
        if accepted:
            layer.weight = weight
            torch.testing.assert_close(layer.weight, weight, atol=tol(n, F64), rtol=0)
        else:
            with pytest.raises(ValueError, match="weight cannot be assigned"):
                layer.weight = weight
