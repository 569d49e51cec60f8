"""Shared cases and helpers of the cwy_manifolds.nn tests."""

import pytest
import torch
from _reference import haar, orthogonality_error
from torch import nn

import cwy_manifolds as cm
from cwy_manifolds.nn import orthogonal

F64 = torch.float64

# id -> (weight shape (rows, cols), options of orthogonal())
CASES = {
    "cwy": ((6, 6), {}),
    "cwy-det-1": ((5, 5), {"det": -1}),
    "cwy-L2": ((6, 6), {"n_reflections": 2}),
    "cwy-L2-det-1": ((5, 5), {"n_reflections": 2, "det": -1}),
    "tcwy-tall": ((7, 3), {}),
    "tcwy-wide": ((3, 7), {}),
    "tcwy-square-even": ((4, 4), {"method": "tcwy"}),
    "tcwy-square-odd": ((5, 5), {"method": "tcwy"}),
    "tcwy-square-det-1": ((4, 4), {"method": "tcwy", "det": -1}),
}
DTYPES = {"float64": F64, "float32": torch.float32, "bfloat16": torch.bfloat16}


def linear(shape, dtype=F64, **options):
    rows, cols = shape
    return orthogonal(nn.Linear(cols, rows, dtype=dtype), **options)


def det_of(shape, options):
    """Determinant the case reaches, None for non-square weights: the manifold's ``det``,
    default +1 for "cwy" and "tcwy" alike (T-CWY uses the sign flip D like CWY)."""
    if shape[0] != shape[1]:
        return None
    return options.get("det", 1)


def gram_error(w):
    """||W^T W - I|| for tall W, ||W W^T - I|| for wide W."""
    return orthogonality_error(w if w.shape[0] >= w.shape[1] else w.mT)


def target_of(shape, options, seed=3):
    """A float64 matrix of the kind the case reaches (reachable also for L < N)."""
    rows, cols = shape
    if options.get("n_reflections") is not None:
        manifold = cm.CWY(det=options.get("det", 1), n_reflections=options["n_reflections"])
        v = torch.randn(rows, options["n_reflections"], dtype=F64)
        return manifold.matrix(v)
    tall = haar(max(shape), min(shape), det=det_of(shape, options), seed=seed)
    return tall if rows >= cols else tall.mT.contiguous()


@pytest.fixture(autouse=True)
def one_thread():
    """Small matrices: a second thread only adds overhead, and on a busy 2-core machine
    OpenMP's spinning threads slow these tests down a hundredfold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
