"""The demo's figures agree with what they claim."""

import torch
from _reference import reflection_product

from cwy_manifolds.demo import _sequential_stiefel, orthogonality_error, run_demo


def test_sequential_stiefel_matches_reference():
    v = torch.randn(7, 3, dtype=torch.float64)
    expected = torch.from_numpy(reflection_product(v.numpy())[:, :3])
    torch.testing.assert_close(_sequential_stiefel(v), expected)


def test_run_demo_rows_are_consistent():
    rows = run_demo([12], dtype=torch.float64, repeats=1)
    assert [(r["map"], r["N"], r["columns"]) for r in rows] == [("cwy", 12, 12), ("tcwy", 12, 1)]
    for r in rows:
        assert r["error"] < 1e-13
        assert r["max_difference"] < 1e-13
        assert r["speedup"] > 0


def test_orthogonality_error_detects_non_orthogonal():
    assert orthogonality_error(torch.eye(3)) == 0
    assert abs(orthogonality_error(2 * torch.eye(3)) - 3 * 3**0.5) < 1e-12
