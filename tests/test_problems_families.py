"""The new problem families against NumPy/SciPy closed forms, and the suites."""

import numpy as np
import pytest
import scipy.linalg
import torch
from _harness import one_thread  # noqa: F401
from _reference import haar, orthogonality_error, tol
from scipy.stats import ortho_group

from cwy_manifolds.problems import (
    PCA,
    PROBLEMS,
    SUITES,
    Brockett,
    DominantSubspace,
    JointDiagonalization,
    make_suite,
)

F64 = torch.float64
SAMPLES = 300


def _stiefel_samples(n, p, seed=1):
    return ortho_group.rvs(n, size=SAMPLES, random_state=seed)[:, :, :p]


def _random_symmetric(n, seed):
    g = np.random.default_rng(seed).standard_normal((n, n))
    return (g + g.T) / 2


# --------------------------------------------------------------- dominant subspace

SHAPES = [(5, 1), (6, 2), (9, 4), (4, 4)]


@pytest.mark.parametrize(("n", "p"), SHAPES, ids=[f"n{n}-p{p}" for n, p in SHAPES])
def test_dominant_subspace_of_an_indefinite_matrix_matches_eigh(n, p):
    a = _random_symmetric(n, seed=n)
    assert np.linalg.eigvalsh(a).min() < 0 < np.linalg.eigvalsh(a).max()  # indefinite
    prob = DominantSubspace(a, p)
    values = np.linalg.eigvalsh(a)[::-1]
    scale = np.abs(values).max()
    assert prob.optimum == pytest.approx(-values[:p].sum() / scale, abs=tol(n, F64))
    xs = _stiefel_samples(n, p)
    losses = -np.einsum("sij,ik,skj->s", xs, a, xs) / scale
    assert losses.min() >= prob.optimum - tol(n, F64)
    assert prob.reference.startswith("closed form: eigh")


def test_pca_refuses_indefinite_and_names_the_class_that_takes_it():
    a = _random_symmetric(5, seed=0)
    with pytest.raises(ValueError, match="use DominantSubspace"):
        PCA(a, 2)
    assert DominantSubspace(a, 2).n == 5


def test_pca_is_the_dominant_subspace_of_a_covariance_scaled_by_its_trace():
    pca = PCA.random(6, 2, seed=1)
    same = DominantSubspace(pca.cov, 2)
    x = haar(6, 2, seed=2)
    ratio = float(pca.loss(x)) / float(same.loss(x))
    assert ratio == pytest.approx(same.scale / float(torch.trace(pca.cov)), rel=1e-12)


def test_dominant_subspace_random_spectrum():
    prob = DominantSubspace.random(7, 3, eigengap=0.25, seed=4)
    values = np.linalg.eigvalsh(prob.a.numpy())[::-1]
    np.testing.assert_allclose(values[:3], [1.0, 0.625, 0.25], atol=tol(7, F64))
    np.testing.assert_allclose(values[3:], [0.0, -1 / 3, -2 / 3, -1.0], atol=tol(7, F64))
    assert prob.eigengap == pytest.approx(0.25)


# ------------------------------------------------------------------------ Brockett


@pytest.mark.parametrize(("n", "p"), SHAPES, ids=[f"n{n}-p{p}" for n, p in SHAPES])
def test_brockett_closed_form_pairs_smallest_eigenvalues_with_largest_weights(n, p):
    a = _random_symmetric(n, seed=10 + n)
    prob = Brockett(a, p)
    values, vectors = np.linalg.eigh(a)
    weights = np.arange(p, 0, -1.0)
    assert prob.optimum == pytest.approx(weights @ values[:p], abs=tol(n, F64) * n)
    x = prob.solution.numpy()
    np.testing.assert_allclose(np.abs(x), np.abs(vectors[:, :p]), atol=1e-8)  # up to signs
    xs = _stiefel_samples(n, p)
    losses = np.einsum("sip,ij,sjp,p->s", xs, a, xs, weights)
    assert losses.min() >= prob.optimum - tol(n, F64)


def test_brockett_custom_weights_and_order_matter():
    a = np.diag([3.0, 1.0, 2.0])
    prob = Brockett(a, 2, weights=[5.0, 1.0])
    assert prob.optimum == pytest.approx(5 * 1.0 + 1 * 2.0)
    swapped = prob.solution.numpy()[:, ::-1].copy()
    assert float(prob.loss(torch.from_numpy(swapped))) == pytest.approx(5 * 2.0 + 1 * 1.0)


def test_brockett_on_so_has_determinant_one():
    prob = Brockett.random(5, 5, group="so", seed=3)
    assert np.linalg.det(prob.solution.numpy()) == pytest.approx(1.0)
    assert prob.component is None  # column signs are free: both components hold an optimum


# ------------------------------------------------------------ joint diagonalization


@pytest.mark.parametrize(("n", "p"), SHAPES, ids=[f"n{n}-p{p}" for n, p in SHAPES])
def test_joint_diagonalization_known_diagonalizer_attains_the_bound(n, p):
    q = ortho_group.rvs(n, random_state=n)
    d = np.random.default_rng(n).standard_normal((3, n))
    mats = np.einsum("ij,kj,lj->kil", q, d, q)
    prob = JointDiagonalization(mats, p, diagonalizer=q)
    s = np.sort((d**2).sum(axis=0))[::-1]
    total = (mats**2).sum()
    assert prob.optimum == pytest.approx(-s[:p].sum() / total, abs=tol(n, F64))
    xs = _stiefel_samples(n, p)
    diag = np.einsum("sip,kij,sjp->skp", xs, mats, xs)
    losses = -(diag**2).sum(axis=(1, 2)) / total
    assert losses.min() >= prob.optimum - tol(n, F64)
    assert prob.metrics(prob.solution)["off_diagonal"] <= tol(n, F64) * n


def test_joint_diagonalization_with_noise_gets_a_pymanopt_reference():
    pytest.importorskip("pymanopt")
    prob = JointDiagonalization.random(5, 5, noise=0.05, seed=1)
    assert prob.reference.startswith("reference: pymanopt trust regions")
    assert orthogonality_error(prob.solution) <= tol(5, F64)
    assert prob.metrics(prob.solution)["grad_norm"] <= 1e-9
    xs = ortho_group.rvs(5, size=SAMPLES, random_state=2)
    losses = [float(prob.loss(torch.from_numpy(x))) for x in xs]
    assert min(losses) >= prob.optimum


# ------------------------------------------------------------------------ suites


@pytest.mark.parametrize("name", list(SUITES))
def test_suites_name_known_problem_types_with_distinct_labels(name):
    suite = SUITES[name]
    labels = [instance.label for instance in suite.instances]
    assert len(set(labels)) == len(labels)
    assert all(instance.problem in PROBLEMS for instance in suite.instances)


def test_demo_suite_is_small_and_has_a_determinant_minus_one_optimum():
    problems = make_suite("demo")
    assert max(p.n for p in problems) <= 16
    assert any(p.group == "o" and p.component == -1 for p in problems)
    assert all(p.optimum is not None for p in problems)


def test_scipy_agrees_with_the_pca_closed_form_of_the_digits():
    pytest.importorskip("sklearn")
    prob = PROBLEMS["digits"].build(64, 3, group="stiefel", seed=0)
    values = scipy.linalg.eigvalsh(prob.cov.numpy())[::-1]
    assert prob.optimum == pytest.approx(-values[:3].sum() / values.sum(), rel=1e-12)
