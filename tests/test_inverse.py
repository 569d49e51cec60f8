"""The inverse maps: round trips, exact edge cases, the determinant rule."""

import itertools

import pytest
import torch
from _reference import haar, reflection_product, tol

import cwy_manifolds.core.inverse as inverse_module
from cwy_manifolds import cwy, cwy_inverse, tcwy, tcwy_inverse

F64 = torch.float64


def _check_vectors(v, target, fn):
    """``fn(v)`` reproduces ``target``; vectors are finite unit columns."""
    n = target.shape[-2]
    assert v.shape[-2:] == target.shape[-2:]
    assert v.dtype == target.dtype
    assert torch.isfinite(v).all()
    norms = torch.linalg.vector_norm(v.to(F64), dim=-2)
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=tol(n, v.dtype), rtol=0)
    torch.testing.assert_close(fn(v), target, atol=tol(n, target.dtype), rtol=0)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 33])
def test_cwy_round_trip_haar(n):
    q = haar(n, det=(-1) ** n, seed=n)
    v = cwy_inverse(q)
    _check_vectors(v, q, cwy)
    # independent check: the dense product of the returned reflections
    torch.testing.assert_close(
        torch.from_numpy(reflection_product(v.numpy())), q, atol=tol(n, F64), rtol=0
    )


@pytest.mark.parametrize(("n", "m"), [(2, 1), (5, 1), (5, 3), (5, 4), (5, 5), (40, 7)])
def test_tcwy_round_trip_haar(n, m):
    omega = haar(n, m, det=(-1) ** n, seed=n + m)
    _check_vectors(tcwy_inverse(omega), omega, tcwy)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_round_trip_lower_precision(dtype):
    q = haar(16, det=1).to(dtype)
    v = cwy_inverse(q)
    assert v.dtype == dtype
    err = (cwy(v).to(F64) - q.to(F64)).abs().max()
    assert float(err) <= tol(16, dtype)


BLOCKED = [(40, 40), (40, 13), (2, 3, 9, 9)]


@pytest.mark.parametrize("shape", BLOCKED, ids=str)
@pytest.mark.parametrize("panel", [1, 3, 32])
def test_panels_match_lapack_and_the_dense_product(panel, shape, monkeypatch):
    """Note [blocked inverse]: any panel width gives vectors reproducing the target."""
    monkeypatch.setattr(inverse_module, "_PANEL", panel)
    *batch, n, m = shape
    q, _ = torch.linalg.qr(torch.randn(*batch, n, n, dtype=F64))
    q[..., -1] *= torch.linalg.det(q).sign()[..., None] * (-1) ** n  # det (-1)^N
    target = q[..., :m]
    v = tcwy_inverse(target)
    _check_vectors(v, target, tcwy)
    # LAPACK's product of the same reflections: unit head, tau = 2 / ||w||^2
    head = torch.diagonal(v, dim1=-2, dim2=-1)  # negative: no column was exactly e_i
    assert (head < 0).all()
    lapack = torch.linalg.householder_product(v / head[..., None, :], 2 * head**2)
    torch.testing.assert_close(lapack, target, atol=tol(n, F64), rtol=0)
    flat_v, flat_t = v.reshape(-1, n, m), target.reshape(-1, n, m)
    dense = torch.from_numpy(reflection_product(flat_v[0].numpy())[:, :m])
    torch.testing.assert_close(dense, flat_t[0], atol=tol(n, F64), rtol=0)


@pytest.mark.parametrize("panel", [1, 2])
def test_exact_edge_cases_across_panels(panel, monkeypatch):
    monkeypatch.setattr(inverse_module, "_PANEL", panel)
    batch = torch.stack([p for p in _signed_permutations(4) if torch.det(p) == 1])
    _check_vectors(cwy_inverse(batch), batch, cwy)
    _check_vectors(tcwy_inverse(batch[..., :3]), batch[..., :3], tcwy)


def test_batched_inverse_equals_per_item():
    qs = torch.stack([haar(6, det=1, seed=s) for s in range(4)]).reshape(2, 2, 6, 6)
    v = cwy_inverse(qs)
    _check_vectors(v, qs, cwy)
    for i, j in itertools.product(range(2), range(2)):
        torch.testing.assert_close(v[i, j], cwy_inverse(qs[i, j]))


def _signed_permutations(n):
    """All signed permutation matrices of size n, float64."""
    for perm in itertools.permutations(range(n)):
        for signs in itertools.product((1.0, -1.0), repeat=n):
            p = torch.zeros(n, n, dtype=F64)
            p[list(perm), range(n)] = torch.tensor(signs, dtype=F64)
            yield p


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_exact_edge_cases_signed_permutations(n):
    """Note [exact edge cases]: columns equal to +-e_i, identity and -I included."""
    reachable = [p for p in _signed_permutations(n) if torch.det(p) == (-1) ** n]
    unreachable = [p for p in _signed_permutations(n) if torch.det(p) != (-1) ** n]
    batch = torch.stack(reachable)
    _check_vectors(cwy_inverse(batch), batch, cwy)
    with pytest.raises(ValueError, match="determinant"):
        cwy_inverse(torch.stack(unreachable))
    # every signed partial permutation is a Stiefel matrix T-CWY reaches (M < N)
    for m in range(n):
        thin = batch[..., :m]
        _check_vectors(tcwy_inverse(thin), thin, tcwy)


@pytest.mark.parametrize("n", [3, 4, 7])
def test_edge_cases_block_structure(n):
    """Identity-like columns mixed with generic ones."""
    q = torch.eye(n, dtype=F64)
    q[1:3, 1:3] = haar(2, seed=n)  # rotates e_2, e_3; other columns are exactly e_i
    if torch.det(q).sign() != (-1) ** n:
        q[:, 0] *= -1
    _check_vectors(cwy_inverse(q), q, cwy)
    _check_vectors(tcwy_inverse(q[:, :3]), q[:, :3], tcwy)


def test_nearly_unit_columns_keep_accuracy():
    """Note [exact edge cases]: columns within 1e-9 of e_i, where x_1 - ||x|| cancels."""
    angle = torch.tensor(1e-9, dtype=F64)
    c, s = torch.cos(angle), torch.sin(angle)
    q = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, -1.0]], dtype=F64)
    _check_vectors(cwy_inverse(q), q, cwy)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_wrong_parity_raises_with_advice(n):
    q = haar(n, det=-((-1) ** n), seed=n)
    with pytest.raises(ValueError, match=r"determinant \(-1\)\^N") as info:
        cwy_inverse(q)
    assert "diag(1, ..., 1, -1)" in str(info.value)
    # the advice in the message works
    d = torch.ones(n, dtype=F64)
    d[-1] = -1
    torch.testing.assert_close(cwy(cwy_inverse(q * d)) * d, q, atol=tol(n, F64), rtol=0)
    with pytest.raises(ValueError, match="determinant"):
        tcwy_inverse(q)


def test_wrong_parity_counts_batch_items():
    q = torch.stack([haar(4, det=1), haar(4, det=-1), haar(4, det=-1, seed=3)])
    with pytest.raises(ValueError, match="2 of 3 matrices"):
        cwy_inverse(q)


def test_non_orthogonal_rejected_unless_atol_allows():
    q = haar(6, det=1)
    nudged = q + 1e-4 * torch.randn(6, 6, dtype=F64)
    with pytest.raises(ValueError, match=r"orthonormal columns; got max \|q\^T q - I\|"):
        cwy_inverse(nudged)
    v = cwy_inverse(nudged, atol=1e-2)
    # within atol the result stands for the orthogonal QR factor with positive diagonal
    qr_q, r = torch.linalg.qr(nudged)
    qr_q = qr_q * torch.sign(torch.diagonal(r))
    torch.testing.assert_close(cwy(v), qr_q, atol=tol(6, F64), rtol=0)


def test_result_is_detached():
    q = haar(4, det=1).requires_grad_()
    assert not cwy_inverse(q).requires_grad


def test_empty():
    assert cwy_inverse(torch.zeros(0, 0)).shape == (0, 0)
    assert tcwy_inverse(torch.zeros(3, 0)).shape == (3, 0)


# Note [orthonormality tolerance] in cwy_manifolds/core/checks.py: the default atol accepts
# every orthogonal matrix of the dtype and rejects clearly non-orthogonal ones.
HALF = (torch.float16, torch.bfloat16)
TOLERANCE_CASES = [
    pytest.param(dtype, n, id=f"{str(dtype)[6:]}-N{n}")
    for dtype, sizes in [
        (HALF[0], (2, 64, 1024)),
        (HALF[1], (2, 64, 1024)),
        (torch.float32, (2, 64, 1024)),
        (F64, (2, 256)),
    ]
    for n in sizes
]


def _haar_rounded(n, dtype, det):
    """Haar matrix computed in float64 (QR of a Gaussian, signs fixed), rounded to dtype."""
    q, r = torch.linalg.qr(torch.randn(n, n, dtype=F64))
    q = q * torch.sign(torch.diagonal(r))
    q[:, -1] *= det * torch.linalg.det(q).sign()
    return q.to(dtype)


@pytest.mark.parametrize(("dtype", "n"), TOLERANCE_CASES)
def test_default_atol_accepts_orthogonal_matrices_of_the_dtype(dtype, n):
    q = _haar_rounded(n, dtype, det=(-1) ** n)
    cwy_inverse(q)
    tcwy_inverse(q[:, : max(1, n // 4)])
    v = torch.randn(n, n, dtype=F64).to(dtype)
    cwy_inverse(cwy(v))
    tcwy_inverse(tcwy(v[:, : max(1, n // 4)]))


def _non_orthogonal(kind, n, dtype):
    if kind == "half-identity":
        return 0.5 * torch.eye(n, dtype=dtype)
    if kind == "scaled-5%":  # max |A^T A - I| = 0.1025
        return (1.05 * _haar_rounded(n, F64, det=(-1) ** n)).to(dtype)
    g = torch.randn(n, n, dtype=F64) / n**0.5  # max |A^T A - I| ~ 4 / sqrt(N)
    g[:, -1] *= (-1) ** n * torch.linalg.det(g).sign()
    return g.to(dtype)


@pytest.mark.parametrize("kind", ["half-identity", "scaled-5%", "gaussian"])
@pytest.mark.parametrize(("dtype", "n"), TOLERANCE_CASES)
def test_default_atol_rejects_non_orthogonal_matrices(dtype, n, kind):
    a = _non_orthogonal(kind, n, dtype)
    with pytest.raises(ValueError, match="orthonormal columns"):
        cwy_inverse(a)
    with pytest.raises(ValueError, match="orthonormal columns"):
        tcwy_inverse(a[:, : max(1, n // 2)] if kind != "gaussian" else a)
