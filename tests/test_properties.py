"""Property-based tests (hypothesis) of the functional core and the inverse maps."""

import numpy as np
import torch
from _reference import orthogonality_error, reflection_product, tol
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cwy_manifolds import cwy, cwy_inverse, householder_product, tcwy, tcwy_apply, tcwy_inverse

F64 = torch.float64
SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def vectors(draw, *, thin=False, max_n=9):
    """Reflection vectors (N, L): entries of any sign, columns scaled by 10^k, no zero column."""
    n = draw(st.integers(1, max_n))
    cols = draw(st.integers(0, n if thin else 2 * n))
    values = draw(
        arrays(np.float64, (n, cols), elements=st.floats(-1.0, 1.0, allow_subnormal=False))
    )
    exponents = draw(arrays(np.int64, (cols,), elements=st.integers(-150, 150)))
    values = values * 10.0**exponents
    values[:, np.abs(values).max(axis=0, initial=0.0) == 0] = 1.0  # zero columns are invalid
    return torch.from_numpy(values)


@SETTINGS
@given(vectors())
def test_cwy_is_orthogonal_and_matches_the_dense_product(v):
    q = cwy(v)
    n, refl = v.shape
    assert torch.isfinite(q).all()
    assert orthogonality_error(q) <= tol(n, F64)
    assert torch.linalg.det(q).sign() == (-1) ** refl if n else True
    unit = v / torch.linalg.vector_norm(v / v.abs().amax(0), dim=0) / v.abs().amax(0)
    expected = torch.from_numpy(reflection_product(unit.numpy()))
    torch.testing.assert_close(q, expected, atol=tol(n, F64) * max(refl, 1), rtol=0)
    torch.testing.assert_close(householder_product(v), q, atol=tol(n, F64) * max(refl, 1), rtol=0)


@SETTINGS
@given(vectors(thin=True))
def test_tcwy_is_stiefel_and_first_columns(v):
    omega = tcwy(v)
    n, m = v.shape
    assert torch.isfinite(omega).all()
    assert orthogonality_error(omega) <= tol(n, F64)
    torch.testing.assert_close(omega, cwy(v)[:, :m], atol=tol(n, F64), rtol=0)
    x = torch.randn(m, 2, dtype=F64)
    torch.testing.assert_close(tcwy_apply(v, x), omega @ x, atol=tol(n, F64) * 10, rtol=0)


@SETTINGS
@given(vectors(thin=True))
def test_tcwy_inverse_round_trip(v):
    n = v.shape[0]
    omega = tcwy(v)
    back = tcwy_inverse(omega)
    assert torch.isfinite(back).all()
    torch.testing.assert_close(tcwy(back), omega, atol=tol(n, F64), rtol=0)


@SETTINGS
@given(st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_cwy_inverse_round_trip(n, seed):
    """N reflections give determinant (-1)^N, which cwy_inverse accepts."""
    v = torch.randn(n, n, dtype=F64, generator=torch.Generator().manual_seed(seed))
    q = cwy(v)
    torch.testing.assert_close(cwy(cwy_inverse(q)), q, atol=tol(n, F64), rtol=0)


@SETTINGS
@given(
    st.integers(2, 9),
    st.integers(0, 2**31 - 1),
    st.floats(1e-14, 1e-3),
)
def test_nearly_parallel_columns(n, seed, spread):
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, dtype=F64, generator=gen)
    v = base + spread * torch.randn(n, n, dtype=F64, generator=gen)
    q = cwy(v)
    assert orthogonality_error(q) <= tol(n, F64)
    torch.testing.assert_close(cwy(cwy_inverse(q)), q, atol=tol(n, F64), rtol=0)


@SETTINGS
@given(st.permutations(range(6)), st.lists(st.sampled_from([1.0, -1.0]), min_size=6, max_size=6))
def test_signed_permutations_round_trip_exactly(perm, signs):
    p = torch.zeros(6, 6, dtype=F64)
    p[list(perm), range(6)] = torch.tensor(signs, dtype=F64)
    if torch.linalg.det(p) < 0:  # 6 reflections: determinant +1
        p[:, -1] *= -1
    v = cwy_inverse(p)
    assert torch.isfinite(v).all()
    torch.testing.assert_close(cwy(v), p, atol=tol(6, F64), rtol=0)
    for m in range(6):
        torch.testing.assert_close(tcwy(tcwy_inverse(p[:, :m])), p[:, :m], atol=tol(6, F64), rtol=0)
