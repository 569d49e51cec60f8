"""The forward maps and apply forms against independent references."""

import pytest
import torch
from _reference import orthogonality_error, reflection_product, tol

from cwy_manifolds import cwy, cwy_apply, householder_product, tcwy, tcwy_apply

F64 = torch.float64
SHAPES = [(1, 1), (1, 3), (5, 1), (5, 3), (5, 5), (5, 8), (16, 16), (17, 40)]


def _ids(shapes):
    return [f"N{n}-L{m}" for n, m in shapes]


@pytest.mark.parametrize(("n", "refl"), SHAPES, ids=_ids(SHAPES))
@pytest.mark.parametrize("fn", [cwy, householder_product], ids=lambda f: f.__name__)
def test_matches_dense_product_of_reflections(fn, n, refl):
    v = torch.randn(n, refl, dtype=F64)
    expected = torch.from_numpy(reflection_product(v.numpy()))
    torch.testing.assert_close(fn(v), expected, atol=tol(n, F64), rtol=0)


THIN = [(1, 1), (5, 1), (5, 3), (5, 5), (64, 8)]


@pytest.mark.parametrize(("n", "m"), THIN, ids=_ids(THIN))
def test_tcwy_is_first_columns_of_reference(n, m):
    v = torch.randn(n, m, dtype=F64)
    expected = torch.from_numpy(reflection_product(v.numpy())[:, :m])
    torch.testing.assert_close(tcwy(v), expected, atol=tol(n, F64), rtol=0)
    torch.testing.assert_close(tcwy(v), cwy(v)[:, :m], atol=tol(n, F64), rtol=0)


@pytest.mark.parametrize(("n", "m"), [(7, 7), (9, 4)], ids=["square", "thin"])
def test_lapack_reflectors(n, m):
    """Reflectors of torch.geqrf (LAPACK) give the same matrix as LAPACK's own product."""
    a, tau = torch.geqrf(torch.randn(3, n, m, dtype=F64))
    k = min(m, n - 1)  # LAPACK's last reflector of a square matrix is the identity (tau = 0)
    w = torch.tril(a[..., :k], diagonal=-1) + torch.eye(n, k, dtype=F64)
    # LAPACK's H = I - tau w w^T is the reflection H(w) exactly when tau = 2 / ||w||^2
    torch.testing.assert_close(tau[..., :k] * (w * w).sum(-2), torch.full((3, k), 2.0, dtype=F64))
    padded = torch.cat([a[..., :k], torch.zeros(3, n, n - k, dtype=F64)], dim=-1)
    full = torch.linalg.householder_product(padded, tau[..., :k])
    torch.testing.assert_close(cwy(w), full, atol=tol(n, F64), rtol=0)
    torch.testing.assert_close(tcwy(w), full[..., :k], atol=tol(n, F64), rtol=0)


@pytest.mark.parametrize("refl", range(9))
def test_determinant_parity(refl):
    """Note [determinant parity]: det cwy(v) = (-1)^L whatever the vectors."""
    det = torch.linalg.det(cwy(torch.randn(6, refl, dtype=F64)))
    torch.testing.assert_close(det, torch.tensor((-1.0) ** refl, dtype=F64))


@pytest.mark.parametrize("n", [1, 16, 256, 1024])
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_orthogonality_error(dtype, n):
    v = torch.randn(n, n, dtype=dtype)
    assert orthogonality_error(cwy(v)) <= tol(n, dtype)
    assert orthogonality_error(tcwy(v[:, : max(1, n // 4)])) <= tol(n, dtype)


def test_equal_adjacent_pairs_give_identity():
    u = torch.randn(6, 3, dtype=F64)
    v = u.repeat_interleave(2, dim=-1)  # u1, u1, u2, u2, u3, u3
    torch.testing.assert_close(cwy(v), torch.eye(6, dtype=F64), atol=tol(6, F64), rtol=0)


def test_fewer_reflections_fix_the_complement():
    """For L < N, Q is the identity on the orthogonal complement of span(v)."""
    v = torch.randn(8, 3, dtype=F64)
    basis, _ = torch.linalg.qr(torch.cat([v, torch.randn(8, 5, dtype=F64)], dim=-1))
    perp = basis[:, 3:]
    torch.testing.assert_close(cwy(v) @ perp, perp, atol=tol(8, F64), rtol=0)


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_scale_invariance_float32(scale):
    """Note [scaled normalisation]: tiny and huge norms are valid and change nothing."""
    v = torch.randn(32, 32)
    col_scales = scale * torch.logspace(-3, 3, 32)
    for fn in (cwy, tcwy, householder_product):
        out = fn(v * col_scales)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, fn(v), atol=tol(32, torch.float32), rtol=0)


BATCHED = {
    "cwy": lambda v, x, y: cwy(v),
    "tcwy": lambda v, x, y: tcwy(v),
    "householder_product": lambda v, x, y: householder_product(v),
    "cwy_apply": lambda v, x, y: cwy_apply(v, y),
    "cwy_apply_T": lambda v, x, y: cwy_apply(v, y, transpose=True),
    "tcwy_apply": lambda v, x, y: tcwy_apply(v, x),
    "tcwy_apply_T": lambda v, x, y: tcwy_apply(v, y, transpose=True),
}


@pytest.mark.parametrize("name", BATCHED)
def test_batched_equals_per_item(name):
    fn = BATCHED[name]
    v, x, y = (torch.randn(2, 3, *shape, dtype=F64) for shape in ((7, 4), (4, 2), (7, 5)))
    out = fn(v, x, y)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(out[i, j], fn(v[i, j], x[i, j], y[i, j]))


def test_apply_broadcasts_batch_dimensions():
    v = torch.randn(3, 6, 4, dtype=F64)
    x = torch.randn(2, 1, 6, 5, dtype=F64)
    torch.testing.assert_close(cwy_apply(v, x), cwy(v) @ x)
    torch.testing.assert_close(tcwy_apply(v, x, transpose=True), tcwy(v).mT @ x)


@pytest.mark.parametrize(("n", "refl", "k"), [(6, 2, 3), (6, 6, 1), (6, 9, 2), (1, 1, 4)])
@pytest.mark.parametrize("transpose", [False, True])
def test_cwy_apply_equals_explicit_product(n, refl, k, transpose):
    v, x = torch.randn(n, refl, dtype=F64), torch.randn(n, k, dtype=F64)
    q = torch.from_numpy(reflection_product(v.numpy()))
    expected = (q.T if transpose else q) @ x
    torch.testing.assert_close(cwy_apply(v, x, transpose=transpose), expected)


@pytest.mark.parametrize(("n", "m", "k"), [(6, 2, 3), (6, 6, 1), (1, 1, 4)])
@pytest.mark.parametrize("transpose", [False, True])
def test_tcwy_apply_equals_explicit_product(n, m, k, transpose):
    v = torch.randn(n, m, dtype=F64)
    omega = torch.from_numpy(reflection_product(v.numpy())[:, :m])
    x = torch.randn(n if transpose else m, k, dtype=F64)
    expected = (omega.T if transpose else omega) @ x
    torch.testing.assert_close(tcwy_apply(v, x, transpose=transpose), expected)


GRADCHECK = {
    "cwy": (lambda v, x, y: cwy(v), (5, 4)),
    "cwy_wide": (lambda v, x, y: cwy(v), (3, 5)),
    "tcwy": (lambda v, x, y: tcwy(v), (5, 3)),
    "householder_product": (lambda v, x, y: householder_product(v), (5, 4)),
    "cwy_apply": (lambda v, x, y: cwy_apply(v, y), (5, 3)),
    "cwy_apply_T": (lambda v, x, y: cwy_apply(v, y, transpose=True), (5, 3)),
    "tcwy_apply": (lambda v, x, y: tcwy_apply(v, x), (5, 3)),
    "tcwy_apply_T": (lambda v, x, y: tcwy_apply(v, y, transpose=True), (5, 3)),
}


@pytest.mark.parametrize("name", GRADCHECK)
def test_gradcheck(name):
    fn, (n, refl) = GRADCHECK[name]
    v = torch.randn(2, n, refl, dtype=F64, requires_grad=True)
    x = torch.randn(2, refl, 2, dtype=F64, requires_grad=True)
    y = torch.randn(2, n, 2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (v, x, y))
    assert torch.autograd.gradgradcheck(fn, (v, x, y))


def test_gradient_is_orthogonal_to_each_column():
    """The maps depend on each column only through its direction (DESIGN.md 1)."""
    v = torch.randn(6, 4, dtype=F64, requires_grad=True)
    (cwy(v) * torch.randn(6, 6, dtype=F64)).sum().backward()
    torch.testing.assert_close((v.grad * v).sum(0), torch.zeros(4, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("fn", [cwy, tcwy], ids=lambda f: f.__name__)
def test_half_precision_uses_float32_internals(fn, dtype):
    """Note [precision]: half inputs give half outputs as accurate as their rounding."""
    v = torch.randn(128, 16).to(dtype)
    out = fn(v)
    assert out.dtype == dtype
    reference = fn(v.to(F64))
    assert float((out.to(F64) - reference).abs().max()) <= 4 * torch.finfo(dtype).eps


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_apply(dtype):
    v, x = torch.randn(64, 8).to(dtype), torch.randn(64, 3).to(dtype)
    out = cwy_apply(v, x, transpose=True)
    assert out.dtype == dtype
    reference = cwy_apply(v.to(F64), x.to(F64), transpose=True)
    assert float((out.to(F64) - reference).abs().max()) <= 16 * torch.finfo(dtype).eps


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((4, 0), (4, 4)), ((0, 0), (0, 0)), ((2, 0, 0), (2, 0, 0)), ((0, 3, 2), (0, 3, 3))],
    ids=["L0", "N0-L0", "batch-N0", "empty-batch"],
)
def test_empty_sizes(shape, expected):
    """No reflections is the identity; an empty batch gives an empty batch."""
    v = torch.randn(*shape, dtype=F64)
    q = cwy(v)
    assert q.shape == expected
    torch.testing.assert_close(q, torch.eye(expected[-1], dtype=F64).expand(expected))
    torch.testing.assert_close(householder_product(v), q)
    assert tcwy(v).shape == v.shape


def test_follows_input_dtype_and_device():
    v = torch.randn(5, 3, dtype=F64, device="cpu")
    for out in (cwy(v), tcwy(v), householder_product(v), cwy_apply(v, v), tcwy_apply(v, v[:3])):
        assert (out.dtype, out.device) == (v.dtype, v.device)
