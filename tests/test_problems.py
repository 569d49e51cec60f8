"""Toy problems against independent NumPy/SciPy references (closed forms, sampling)."""

import math
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
from _harness import one_thread  # noqa: F401
from _reference import haar, orthogonality_error, tol
from scipy.stats import ortho_group, special_ortho_group

from cwy_manifolds.problems import PCA, Procrustes
from cwy_manifolds.problems import procrustes as procrustes_module

F64 = torch.float64
SAMPLES = 300


def _rgrad(x, egrad):
    """Riemannian gradient on St(n, p) (and O(n), SO(n)): G - X sym(X^T G)."""
    xtg = x.T @ egrad
    return egrad - x @ (xtg + xtg.T) / 2


def _pca_egrad(prob, x):
    c = prob.cov.numpy()
    return -2 * c @ x / np.trace(c)


def _procrustes_egrad(prob, x):
    a, b = prob.a.numpy(), prob.b.numpy()
    return a.T @ (a @ x - b)


def _procrustes_losses(prob, xs):
    """0.5 ||A X - B||^2 for a stack of points, in NumPy."""
    a, b = prob.a.numpy(), prob.b.numpy()
    return 0.5 * ((a @ xs - b) ** 2).sum(axis=(-2, -1))


def _stiefel_samples(n, p, seed=1):
    return ortho_group.rvs(n, size=SAMPLES, random_state=seed)[:, :, :p]


def _grad_scale(prob):
    """Size of the Euclidean gradient: tolerances on it scale with this."""
    if isinstance(prob, PCA):
        return 2.0
    a, b = prob.a.numpy(), prob.b.numpy()
    return np.linalg.norm(a, 2) ** 2 + np.linalg.norm(a.T @ b)


# ----------------------------------------------------------------------------- PCA

PCA_SHAPES = [(1, 1), (5, 1), (6, 2), (8, 8), (20, 5)]


def _pca_ids(shapes):
    return [f"n{n}-p{p}" for n, p in shapes]


@pytest.mark.parametrize(("n", "p"), PCA_SHAPES, ids=_pca_ids(PCA_SHAPES))
def test_pca_closed_form_matches_numpy_eigh(n, p):
    prob = PCA.random(n, p, seed=3)
    c = prob.cov.numpy()
    values, vectors = np.linalg.eigh(c)
    top = vectors[:, ::-1][:, :p]
    assert prob.optimum == pytest.approx(-values[::-1][:p].sum() / np.trace(c), abs=tol(n, F64))
    x = prob.solution.numpy()
    np.testing.assert_allclose(x @ x.T, top @ top.T, atol=tol(n, F64))  # same subspace
    assert prob.reference.startswith("closed form: eigh")
    assert prob.solution.dtype == F64
    assert abs(prob.gap(prob.solution)) <= tol(n, F64)
    assert prob.feasibility(prob.solution) <= tol(n, F64)


@pytest.mark.parametrize(("n", "p"), PCA_SHAPES, ids=_pca_ids(PCA_SHAPES))
def test_pca_gradient_matches_hand_formula_and_vanishes_at_solution(n, p):
    prob = PCA.random(n, p, seed=4)
    x = torch.from_numpy(haar(n, p, seed=5).numpy()).requires_grad_()
    prob.loss(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), _pca_egrad(prob, x.detach().numpy()), atol=1e-12)
    sol = prob.solution.numpy()
    assert np.linalg.norm(_rgrad(sol, _pca_egrad(prob, sol))) <= 10 * tol(n, F64)


THIN_PCA = [(5, 1), (6, 2), (20, 5)]


@pytest.mark.parametrize(("n", "p"), THIN_PCA, ids=_pca_ids(THIN_PCA))
def test_pca_no_random_point_beats_optimum(n, p):
    prob = PCA.random(n, p, seed=6)
    xs = _stiefel_samples(n, p)
    c = prob.cov.numpy()
    losses = -np.einsum("sij,ik,skj->s", xs, c, xs) / np.trace(c)
    assert losses.min() > prob.optimum


def _largest_angle(x, y):
    """Largest principal angle from sin(theta) = ||(I - Q_y Q_y^T) Q_x||_2, own SVD."""
    qx, qy = np.linalg.qr(x)[0], np.linalg.qr(y)[0]
    return math.asin(min(1.0, np.linalg.norm(qx - qy @ (qy.T @ qx), 2)))


@pytest.mark.parametrize("where", ["solution", "rotated-solution", "random"])
def test_pca_principal_angle(where):
    n, p = 7, 3
    prob = PCA.random(n, p, seed=7)
    sol = prob.solution
    x = {
        "solution": sol,
        "rotated-solution": sol @ haar(p, seed=8),  # same subspace, other basis
        "random": haar(n, p, seed=9),
    }[where]
    angle = prob.metrics(x)["principal_angle"]
    expected = _largest_angle(x.numpy(), sol.numpy())
    assert angle == pytest.approx(expected, abs=1e-7)
    if where == "random":
        assert angle > 0.1
    else:
        assert angle <= 1e-7  # angles near 0 are accurate to about sqrt(eps)


@pytest.mark.parametrize(
    ("n", "p", "eigengap", "condition"),
    [(6, 2, 2.0, 10.0), (10, 3, 5.0, 1e4), (4, 4, 2.0, 100.0), (2, 1, 3.0, 3.0), (5, 2, 2.0, 2.0)],
    ids=["default", "ill-conditioned", "square", "n2", "flat-blocks"],
)
def test_pca_random_has_requested_spectrum(n, p, eigengap, condition):
    prob = PCA.random(n, p, seed=2, eigengap=eigengap, condition=condition)
    values = np.linalg.eigvalsh(prob.cov.numpy())[::-1]
    assert values[0] / values[-1] == pytest.approx(condition, rel=1e-9)
    if p < n:
        assert values[p - 1] / values[p] == pytest.approx(eigengap, rel=1e-9)
        assert prob.eigengap == pytest.approx(values[p - 1] - values[p], rel=1e-9)
    torch.testing.assert_close(prob.eigenvalues, torch.from_numpy(values.copy()))


def test_pca_from_data_matches_numpy_cov():
    data = np.random.default_rng(0).normal(size=(40, 6)) + 5.0  # offset: centering matters
    prob = PCA.from_data(torch.from_numpy(data), 2)
    np.testing.assert_allclose(prob.cov.numpy(), np.cov(data, rowvar=False), atol=1e-12)
    assert (prob.name, prob.n, prob.p, prob.group) == ("pca", 6, 2, "stiefel")


def test_pca_digits_matches_scikit_learn():
    datasets = pytest.importorskip("sklearn.datasets")
    decomposition = pytest.importorskip("sklearn.decomposition")
    prob = PCA.digits(5)
    ratio = decomposition.PCA(5).fit(datasets.load_digits().data).explained_variance_ratio_
    assert (prob.name, prob.n, prob.p) == ("pca-digits", 64, 5)
    assert prob.optimum == pytest.approx(-ratio.sum(), abs=1e-12)
    assert prob.eigengap > 0
    assert prob.metrics(prob.solution)["principal_angle"] <= 1e-7


def test_pca_digits_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        PCA.digits(3)


# ----------------------------------------------------------------------- Procrustes

SQUARE = [("o", 1), ("o", 4), ("o", 9), ("so", 2), ("so", 5), ("so", 9), ("stiefel", 5)]


def _group_samples(group, n):
    if n == 1:
        return np.array([[[1.0]]] if group == "so" else [[[1.0]], [[-1.0]]])
    sampler = special_ortho_group if group == "so" else ortho_group
    return sampler.rvs(n, size=SAMPLES, random_state=1)


@pytest.mark.parametrize(("group", "n"), SQUARE, ids=[f"{g}-n{n}" for g, n in SQUARE])
def test_square_procrustes_closed_form(group, n):
    prob = Procrustes.random(n, group=group, seed=n, m=n + 2, condition=5.0, noise=0.5)
    x = prob.solution.numpy()
    a, b = prob.a.numpy(), prob.b.numpy()
    assert prob.optimum == pytest.approx(0.5 * np.linalg.norm(a @ x - b) ** 2, rel=1e-12)
    assert orthogonality_error(prob.solution) <= tol(n, F64)
    if group == "so":
        assert np.linalg.det(x) == pytest.approx(1.0)
        assert prob.reference == "closed form: Kabsch (SVD with determinant fix)"
    else:
        expected, _ = scipy.linalg.orthogonal_procrustes(np.eye(n), a.T @ b)
        np.testing.assert_allclose(x, expected, atol=tol(n, F64) * np.linalg.cond(a.T @ b))
        assert prob.reference == "closed form: polar factor (SVD)"
    losses = _procrustes_losses(prob, _group_samples(group, n))
    assert losses.min() >= prob.optimum - tol(n, F64) * max(1.0, prob.optimum)
    grad = _rgrad(x, _procrustes_egrad(prob, x))
    assert np.linalg.norm(grad) <= tol(n, F64) * _grad_scale(prob)


@pytest.mark.parametrize(("group", "n"), SQUARE[1:], ids=[f"{g}-n{n}" for g, n in SQUARE[1:]])
def test_square_procrustes_local_moves_do_not_decrease(group, n):
    """X expm(t S) with S skew stays in SO(n)-coset; the optimum is a local minimum."""
    prob = Procrustes.random(n, group=group, seed=n, condition=3.0, noise=1.0)
    x = prob.solution.numpy()
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.standard_normal((n, n))
        moved = x @ scipy.linalg.expm(1e-3 * (s - s.T))
        assert _procrustes_losses(prob, moved) >= prob.optimum - tol(n, F64) * prob.optimum


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_determinant_trap(n):
    trap = Procrustes.determinant_trap(n, seed=n)
    free = trap.over("o")
    assert (trap.group, free.group, trap.name) == ("so", "o", "procrustes-determinant-trap")
    assert np.linalg.det(free.solution.numpy()) == pytest.approx(-1.0)
    assert np.linalg.det(trap.solution.numpy()) == pytest.approx(1.0)
    assert trap.optimum > free.optimum + 1e-3
    assert trap.metrics(trap.solution)["det"] == pytest.approx(1.0)
    assert free.gap(trap.solution) > 0  # the SO(n) optimum is not optimal over O(n)
    assert _procrustes_losses(trap, _group_samples("so", n)).min() >= trap.optimum - tol(n, F64)
    assert _procrustes_losses(free, _group_samples("o", n)).min() >= free.optimum - tol(n, F64)


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("n", [2, 4, 9])
def test_random_det_is_the_determinant_of_the_optimum(n, det):
    """Over O(n) the optimum keeps ``det`` (n = 4, seed 0 flipped it with the first draw)."""
    for seed in range(6):
        prob = Procrustes.random(n, group="o", det=det, seed=seed)
        polar = scipy.linalg.polar(prob.a.numpy().T @ prob.b.numpy())[0]  # SciPy's closed form
        assert np.linalg.det(polar) == pytest.approx(det)
        a, b = prob.a.numpy(), prob.b.numpy()
        assert prob.optimum == pytest.approx(0.5 * np.linalg.norm(a @ polar - b) ** 2)


def test_random_det_that_the_draws_cannot_keep_is_refused(monkeypatch):
    monkeypatch.setattr(procrustes_module, "_DRAWS", 1)  # the first draw of n = 4, seed 0 flips
    with pytest.raises(ValueError, match=r"det=-1 could not be kept by the optimum in 1 draws"):
        Procrustes.random(4, group="o", det=-1, seed=0)


def test_determinant_trap_keeps_its_trap_under_large_noise():
    """Noise 10 flipped the O(n) optimum of seed 1 with the first draw; it is drawn again."""
    trap = Procrustes.determinant_trap(3, seed=1, noise=10.0)
    assert np.linalg.det(trap.over("o").solution.numpy()) == pytest.approx(-1.0)
    assert trap.optimum > trap.over("o").optimum


THIN = [(5, 2), (8, 3), (12, 1)]


@pytest.mark.parametrize(("n", "p"), THIN, ids=[f"n{n}-p{p}" for n, p in THIN])
def test_thin_procrustes_pymanopt_reference(n, p):
    pytest.importorskip("pymanopt")
    prob = Procrustes.random(n, p, seed=n, condition=10.0, noise=0.5)
    assert prob.reference.startswith("reference: pymanopt trust regions")
    assert "not a certified optimum" in prob.reference
    x = prob.solution.numpy()
    assert orthogonality_error(prob.solution) <= tol(n, F64)
    grad = _rgrad(x, _procrustes_egrad(prob, x))
    assert np.linalg.norm(grad) <= 1e-9 * _grad_scale(prob)
    losses = _procrustes_losses(prob, _stiefel_samples(n, p))
    assert losses.min() >= prob.optimum


@pytest.mark.parametrize(("n", "p", "m"), [(5, 2, 5), (8, 3, 12)], ids=["m=n", "m>n"])
def test_thin_procrustes_isotropic_a_has_closed_form(n, p, m, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymanopt", None)  # the closed form must not need it
    prob = Procrustes.random(n, p, seed=0, m=m, condition=1.0, noise=0.5)
    a = prob.a.numpy()
    np.testing.assert_allclose(a.T @ a, np.eye(n), atol=tol(m, F64))
    assert prob.reference == "closed form: polar factor (SVD)"
    x = prob.solution.numpy()
    assert np.linalg.norm(_rgrad(x, _procrustes_egrad(prob, x))) <= tol(n, F64) * _grad_scale(prob)
    assert _procrustes_losses(prob, _stiefel_samples(n, p)).min() >= prob.optimum


def test_thin_procrustes_without_pymanopt(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymanopt", None)
    prob = Procrustes.random(6, 2, seed=0)
    assert prob.optimum is None
    assert prob.solution is None
    assert "pymanopt" in prob.reference
    x = haar(6, 2, seed=1)
    assert math.isnan(prob.gap(x))
    metrics = prob.metrics(x)
    assert math.isnan(metrics["gap"])
    assert metrics["loss"] == pytest.approx(_procrustes_losses(prob, x.numpy()))
