"""Haar sampling of reflection vectors (Note [Haar vectors]) against SciPy and LAPACK."""

import numpy as np
import pytest
import torch
from _harness import one_thread  # noqa: F401 (small problems: one torch thread)
from scipy.stats import ks_2samp, ortho_group, special_ortho_group

import cwy_manifolds as cm
from cwy_manifolds.core import cwy_inverse, haar_vectors, tcwy_inverse

F64 = torch.float64
SAMPLES = 4000


def _ours(manifold, shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return manifold.matrix(manifold.random(SAMPLES, *shape, dtype=F64, generator=gen)).numpy()


def _scipy(n, det, seed=1):
    """Haar on SO(n) from SciPy, times D for the other component."""
    q = special_ortho_group.rvs(n, size=SAMPLES, random_state=seed)
    if det == -1:
        q[:, :, -1] *= -1
    return q


@pytest.mark.parametrize("n", [3, 4, 5])
@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("cls", [cm.CWY, cm.TCWY], ids=["cwy", "tcwy"])
def test_square_random_is_haar_on_the_component(cls, det, n):
    """Moments of the trace (E tr Q = 0, E (tr Q)^2 = 1 on both components for N >= 3),
    and the distributions of tr Q and Q_11 against SciPy's samples (two-sample KS)."""
    ours = _ours(cls(det=det), (n, n))
    assert set(np.sign(np.linalg.det(ours))) == {det}
    trace = np.trace(ours, axis1=-2, axis2=-1)
    assert abs(trace.mean()) < 5 / SAMPLES**0.5
    assert abs((trace**2).mean() - 1) < 5 * 2**0.5 / SAMPLES**0.5  # Var (tr Q)^2 = 2
    reference = _scipy(n, det)
    for stat in (lambda q: np.trace(q, axis1=-2, axis2=-1), lambda q: q[:, 0, 0]):
        assert ks_2samp(stat(ours), stat(reference)).pvalue > 1e-3


@pytest.mark.parametrize(("n", "m"), [(6, 2), (5, 4)])
def test_thin_random_is_haar_on_stiefel(n, m):
    ours = _ours(cm.TCWY(), (n, m))
    reference = ortho_group.rvs(n, size=SAMPLES, random_state=2)[:, :, :m]
    assert abs(ours.mean(0)).max() < 5 / SAMPLES**0.5
    assert abs((ours**2).mean(0) - 1 / n).max() < 5 / SAMPLES**0.5 / n**0.5
    for i, j in ((0, 0), (n - 1, m - 1)):
        assert ks_2samp(ours[:, i, j], reference[:, i, j]).pvalue > 1e-3


def test_haar_check_has_teeth():
    """CWY of Gaussian vectors (not Haar: biased towards the identity) fails the KS test."""
    q = cm.cwy(torch.randn(SAMPLES, 5, 5, dtype=F64)).numpy()
    q[:, :, -1] *= np.sign(np.linalg.det(q))[:, None]  # onto SO(5), as D does
    trace, reference = np.trace(q, axis1=-2, axis2=-1), np.trace(_scipy(5, 1), axis1=-2, axis2=-1)
    assert ks_2samp(trace, reference).pvalue < 1e-3


@pytest.mark.parametrize("shape", [(6, 6), (7, 7), (8, 3), (2, 5, 5)], ids=str)
def test_vectors_are_those_of_the_inverse_map(shape):
    """The vectors of the matrix they make, as the inverse map finds them."""
    v = haar_vectors(shape, dtype=F64, generator=torch.Generator().manual_seed(3))
    inverse = cwy_inverse(cm.cwy(v)) if shape[-1] == shape[-2] else tcwy_inverse(cm.tcwy(v))
    torch.testing.assert_close(inverse, v)
    assert torch.equal(v, torch.tril(v))  # zero above row i in column i


@pytest.mark.parametrize("n", [5, 6])
def test_product_against_lapack(n):
    """cwy of the vectors is LAPACK's product of the same reflections (orgqr)."""
    v = haar_vectors((n, n), dtype=F64, generator=torch.Generator().manual_seed(n))
    head = torch.diagonal(v)
    reflectors = v / head  # LAPACK's convention: unit diagonal, implied
    tau = 2 / (reflectors * reflectors).sum(0)
    expected = torch.linalg.householder_product(reflectors, tau)
    torch.testing.assert_close(cm.cwy(v), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_haar_vectors_in_low_precision(dtype):
    v = haar_vectors((3, 16, 16), dtype=dtype)
    assert v.dtype == dtype
    assert v.is_contiguous()
    norms = torch.linalg.vector_norm(v.float(), dim=-2)
    torch.testing.assert_close(
        norms, torch.ones_like(norms), atol=4 * torch.finfo(dtype).eps, rtol=0
    )
