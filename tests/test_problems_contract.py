"""The contract every problem keeps (metrics, dtypes, repr), the registry and bad input."""

import math

import numpy as np
import pytest
import torch
from _harness import one_thread  # noqa: F401
from _reference import haar, tol

from cwy_manifolds.problems import (
    PCA,
    PROBLEMS,
    Brockett,
    DominantSubspace,
    JointDiagonalization,
    Problem,
    Procrustes,
    make_problem,
)

F64 = torch.float64


def _procrustes_losses(prob, xs):
    """0.5 ||A X - B||^2 for a stack of points, in NumPy."""
    a, b = prob.a.numpy(), prob.b.numpy()
    return 0.5 * ((a @ xs - b) ** 2).sum(axis=(-2, -1))


# ------------------------------------------------------------- common contract


def _user_problem():
    """A user's problem: a plain function and a shape (the numpy loss is _reference_loss)."""
    a = torch.from_numpy(np.diag(np.arange(1.0, 6.0)))
    return Problem.from_function(lambda x: (x - a[:, :2].to(x)).square().sum(), 5, 2)


INSTANCES = {
    "pca": lambda: PCA.random(6, 2, seed=0),
    "dominant-subspace": lambda: DominantSubspace.random(6, 2, seed=0),
    "brockett": lambda: Brockett.random(6, 3, seed=0),
    "joint-diagonalization": lambda: JointDiagonalization.random(5, 2, seed=0),
    "procrustes-o": lambda: Procrustes.random(5, group="o", m=7),
    "procrustes-so": lambda: Procrustes.random(5, group="so"),
    "procrustes-thin": lambda: Procrustes.random(6, 2, condition=1.0),
    "trap": lambda: Procrustes.determinant_trap(4),
    "user": _user_problem,
}
WITH_OPTIMUM = [name for name in INSTANCES if name != "user"]


def _reference_loss(prob, x):
    """The loss of each instance, written again in NumPy."""
    x = x.numpy()
    if isinstance(prob, DominantSubspace):
        a = prob.a.numpy()
        return -np.trace(x.T @ a @ x) / prob.scale
    if isinstance(prob, Brockett):
        return float(np.trace(x.T @ prob.a.numpy() @ x @ np.diag(prob.weights.numpy())))
    if isinstance(prob, JointDiagonalization):
        mats = prob.matrices.numpy()
        diag = np.einsum("ip,kij,jp->kp", x, mats, x)
        return -float((diag**2).sum() / (mats**2).sum())
    if isinstance(prob, Procrustes):
        return _procrustes_losses(prob, x)
    return float(((x - np.diag(np.arange(1.0, 6.0))[:, :2]) ** 2).sum())


def _reference_grad_norm(prob, x):
    """||G - X sym(X^T G)||_F with G from central finite differences (NumPy)."""
    h = 1e-6
    g = np.zeros(x.shape)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            e = torch.zeros_like(x)
            e[i, j] = h
            g[i, j] = (_reference_loss(prob, x + e) - _reference_loss(prob, x - e)) / (2 * h)
    xn = x.numpy()
    xtg = xn.T @ g
    return np.linalg.norm(g - xn @ (xtg + xtg.T) / 2)


@pytest.mark.parametrize("name", WITH_OPTIMUM)
def test_gap_feasibility_and_metrics(name):
    prob = INSTANCES[name]()
    n, p = prob.n, prob.p
    x = haar(n, p, seed=11) * 1.5  # infeasible on purpose
    value = float(prob.loss(x))
    metrics = prob.metrics(x)
    expected_gap = (value - prob.optimum) / max(1.0, abs(prob.optimum))
    assert metrics["loss"] == pytest.approx(value, rel=1e-14)
    assert metrics["gap"] == pytest.approx(expected_gap, rel=1e-12) == prob.gap(x)
    assert metrics["feasibility"] == pytest.approx(1.25 * math.sqrt(p), rel=1e-12)
    assert metrics["feasibility"] == prob.feasibility(x)
    expected_keys = {"loss", "gap", "feasibility", "grad_norm"}
    expected_keys |= {"principal_angle"} if isinstance(prob, DominantSubspace) else set()
    expected_keys |= {"det"} if isinstance(prob, Procrustes) and p == n else set()
    expected_keys |= {"off_diagonal"} if isinstance(prob, JointDiagonalization) else set()
    assert set(metrics) == expected_keys
    assert all(isinstance(v, float) for v in metrics.values())


@pytest.mark.parametrize("name", INSTANCES)
def test_loss_matches_numpy_and_is_differentiable(name):
    prob = INSTANCES[name]()
    x = haar(prob.n, prob.p, seed=12)
    if isinstance(prob, PCA):
        c = prob.cov.numpy()
        expected = -np.trace(x.numpy().T @ c @ x.numpy()) / np.trace(c)
        assert expected == pytest.approx(_reference_loss(prob, x), rel=1e-12)
    expected = _reference_loss(prob, x)
    assert float(prob.loss(x)) == pytest.approx(expected, rel=1e-12)
    assert torch.autograd.gradcheck(prob.loss, (x.clone().requires_grad_(),))


@pytest.mark.parametrize("name", INSTANCES)
def test_grad_norm_is_the_tangent_projection_of_the_matrix_gradient(name):
    """Note [Riemannian gradient of the matrix], against finite differences in NumPy."""
    prob = INSTANCES[name]()
    x = haar(prob.n, prob.p, seed=13)
    expected = _reference_grad_norm(prob, x)
    assert prob.metrics(x)["grad_norm"] == pytest.approx(expected, rel=1e-6, abs=1e-8)
    if name in WITH_OPTIMUM:  # a critical point: the gradient is normal to the manifold
        assert prob.metrics(prob.solution)["grad_norm"] <= 1e3 * tol(prob.n, F64) * max(
            1.0, abs(prob.optimum)
        )


@pytest.mark.parametrize("name", WITH_OPTIMUM)
def test_float32_input(name):
    prob = INSTANCES[name]()
    x = prob.solution.to(torch.float32).requires_grad_()
    value = prob.loss(x)
    value.backward()
    assert value.dtype == x.grad.dtype == torch.float32
    scale = max(1.0, abs(prob.optimum))
    assert abs(float(value.detach()) - prob.optimum) <= tol(prob.n, torch.float32) * scale
    assert abs(prob.gap(x)) <= tol(prob.n, torch.float32)
    assert prob.feasibility(x) <= tol(prob.n, torch.float32)
    assert float(prob.loss(x.detach().double())) == pytest.approx(float(value.detach()), rel=1e-5)


@pytest.mark.parametrize("name", WITH_OPTIMUM)
def test_repr_and_attributes(name):
    prob = INSTANCES[name]()
    assert repr(prob) == (
        f"{type(prob).__name__}(name={prob.name!r}, n={prob.n}, p={prob.p}, group={prob.group!r})"
    )
    assert prob.solution.shape == (prob.n, prob.p)
    assert isinstance(prob.optimum, float)
    prob.solution.zero_()  # a new tensor each time: callers may optimize it in place
    assert abs(prob.gap(prob.solution)) <= tol(prob.n, F64)


# -------------------------------------------------------------------- registry

MAKE = [
    ("pca", 6, 2, {}),
    ("pca", 5, 5, {"condition": 3.0}),
    ("dominant-subspace", 6, 2, {"eigengap": 0.3}),
    ("brockett", 6, 3, {}),
    ("brockett", 4, 4, {"group": "so"}),
    ("joint-diagonalization", 5, 2, {"k": 3}),
    ("procrustes", 6, 2, {"condition": 1.0}),
    ("procrustes", 4, 4, {"group": "o"}),
    ("procrustes", 4, 4, {"group": "so", "m": 6}),
    ("trap", 4, 4, {"group": "o"}),
]
CLASSES = {
    "pca": PCA,
    "dominant-subspace": DominantSubspace,
    "brockett": Brockett,
    "joint-diagonalization": JointDiagonalization,
    "procrustes": Procrustes,
    "trap": Procrustes,
}


@pytest.mark.parametrize(
    ("name", "n", "p", "kwargs"), MAKE, ids=[f"{m[0]}-n{m[1]}-p{m[2]}-{m[3]}" for m in MAKE]
)
def test_make_problem(name, n, p, kwargs):
    prob = make_problem(name, n, p, seed=3, **kwargs)
    assert isinstance(prob, CLASSES[name])
    assert (prob.n, prob.p, prob.group) == (n, p, kwargs.get("group", PROBLEMS[name].groups[0]))
    same = make_problem(name, n, p, seed=3, **kwargs)
    other = make_problem(name, n, p, seed=4, **kwargs)
    assert torch.equal(_data(prob), _data(same))
    assert not torch.equal(_data(prob), _data(other))


def _data(problem):
    """The data a problem instance is made of (PCA: the covariance; Procrustes: A and B)."""
    keys = ("a", "b", "matrices")
    return torch.cat([getattr(problem, k).flatten() for k in keys if hasattr(problem, k)])


def test_registry_names():
    assert set(PROBLEMS) == {
        "pca",
        "dominant-subspace",
        "brockett",
        "procrustes",
        "trap",
        "joint-diagonalization",
        "digits",
    }


def test_make_problem_refuses_sizes_beyond_memory_up_front():
    with pytest.raises(ValueError, match="n must be small enough to fit in memory: n=100000000"):
        make_problem("pca", 100_000_000, 2)


# ------------------------------------------------------------------ bad inputs

GOOD_COV = torch.eye(3, dtype=F64)
GOOD_A, GOOD_B = torch.randn(4, 3, dtype=F64), torch.randn(4, 2, dtype=F64)
NAN = torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=F64)

BAD = [
    pytest.param(
        lambda: make_problem("pcaa", 3, 2),
        ValueError,
        "name must be one of 'pca', 'dominant-subspace', .*; got 'pcaa'",
        id="unknown-name",
    ),
    pytest.param(
        lambda: make_problem(None, 3, 2),
        ValueError,
        "name must be one of 'pca', .*; got None",
        id="name-none",
    ),
    pytest.param(
        lambda: make_problem("pca", 3, 4), ValueError, "p must be at most n.*n=3, p=4", id="p>n"
    ),
    pytest.param(
        lambda: make_problem("pca", 0, 1), ValueError, "n must be positive; got 0", id="n=0"
    ),
    pytest.param(
        lambda: make_problem("procrustes", 3, 0), ValueError, "p must be positive; got 0", id="p=0"
    ),
    pytest.param(
        lambda: make_problem("pca", 3, 2.0),
        TypeError,
        "p must be an integer; got float",
        id="p-float",
    ),
    pytest.param(
        lambda: PCA.random(True, 1), TypeError, "n must be an integer; got bool", id="n-bool"
    ),
    pytest.param(
        lambda: make_problem("procrustes", 3, 3, group="u"),
        ValueError,
        "group must be one of 'stiefel', 'o', 'so' for procrustes; got 'u'",
        id="group",
    ),
    pytest.param(
        lambda: make_problem("procrustes", 3, 2, group="o"),
        ValueError,
        "p must equal n for group 'o'",
        id="o-thin",
    ),
    pytest.param(
        lambda: Procrustes(GOOD_A, GOOD_B, "so"),
        ValueError,
        "p must equal n for group 'so'.*n=3, p=2",
        id="so-thin",
    ),
    pytest.param(
        lambda: PCA([[1.0]], 1), TypeError, "cov must be a torch.Tensor; got list", id="cov-list"
    ),
    pytest.param(
        lambda: PCA(torch.eye(3, dtype=torch.int64), 1),
        TypeError,
        "cov must be a real floating-point tensor; got torch.int64",
        id="cov-int",
    ),
    pytest.param(
        lambda: PCA(np.eye(3, dtype=complex), 1),
        TypeError,
        "cov must be a real.*complex",
        id="cov-complex",
    ),
    pytest.param(
        lambda: PCA(np.array([["a"]]), 1),
        TypeError,
        "cov must have a real floating dtype; got <U1",
        id="cov-str",
    ),
    pytest.param(
        lambda: PCA(torch.eye(3, dtype=F64)[None], 1),
        ValueError,
        r"cov must be a matrix \(2 dimensions\); got shape \(1, 3, 3\)",
        id="cov-3d",
    ),
    pytest.param(
        lambda: PCA(torch.ones(3, 2, dtype=F64), 1),
        ValueError,
        r"cov must be square; got shape \(3, 2\)",
        id="cov-nonsquare",
    ),
    pytest.param(
        lambda: PCA(torch.tensor([[2.0, 1.0], [0.0, 2.0]]), 1),
        ValueError,
        "cov must be symmetric; got",
        id="cov-nonsymmetric",
    ),
    pytest.param(
        lambda: PCA(NAN, 1), ValueError, "cov must have finite entries; got 1 NaN/Inf", id="cov-nan"
    ),
    pytest.param(
        lambda: PCA(torch.diag(torch.tensor([1.0, -1.0])), 1),
        ValueError,
        "cov must be positive semidefinite.*use DominantSubspace",
        id="cov-indefinite",
    ),
    pytest.param(
        lambda: DominantSubspace(torch.zeros(2, 2), 1),
        ValueError,
        "a must be non-zero",
        id="dominant-zero",
    ),
    pytest.param(
        lambda: Brockett(torch.eye(3), 2, weights=[1.0, 2.0]),
        ValueError,
        "weights must be strictly decreasing",
        id="brockett-weights",
    ),
    pytest.param(
        lambda: JointDiagonalization(torch.eye(3), 2),
        ValueError,
        r"matrices must have shape \(K, n, n\)",
        id="jd-2d",
    ),
    pytest.param(
        lambda: JointDiagonalization(torch.zeros(0, 3, 3), 2),
        ValueError,
        r"matrices must have shape \(K, n, n\) with K >= 1; got \(0, 3, 3\)",
        id="jd-empty",
    ),
    pytest.param(
        lambda: JointDiagonalization(torch.eye(3)[None], 2, diagonalizer=torch.ones(3, 3)),
        ValueError,
        "diagonalizer must be orthogonal",
        id="jd-bad-diagonalizer",
    ),
    pytest.param(
        lambda: make_problem("digits", 10, 2),
        ValueError,
        "n must be 64 for digits",
        id="digits-n",
    ),
    pytest.param(
        lambda: PCA(torch.zeros(2, 2), 1),
        ValueError,
        "cov must be positive semidefinite and non-zero",
        id="cov-zero",
    ),
    pytest.param(lambda: PCA(GOOD_COV, 4), ValueError, "p must be at most n", id="pca-p>n"),
    pytest.param(
        lambda: PCA.from_data(torch.ones(1, 3), 1),
        ValueError,
        r"data must have at least 2 rows.*\(1, 3\)",
        id="data-1-row",
    ),
    pytest.param(
        lambda: PCA.from_data(torch.ones(3), 1), ValueError, "data must be a matrix", id="data-1d"
    ),
    pytest.param(
        lambda: PCA.random(4, 2, eigengap=1.0),
        ValueError,
        "eigengap must be a finite number > 1.0; got 1.0",
        id="eigengap<=1",
    ),
    pytest.param(
        lambda: PCA.random(4, 2, eigengap=5.0, condition=2.0),
        ValueError,
        "condition must be >= eigengap",
        id="condition<gap",
    ),
    pytest.param(
        lambda: PCA.random(2, 1, eigengap=2.0, condition=3.0),
        ValueError,
        "equal to it for n = 2",
        id="condition-n2",
    ),
    pytest.param(
        lambda: PCA.random(4, 4, condition=float("nan")),
        ValueError,
        "condition must be a finite number >= 1.0; got nan",
        id="condition-nan",
    ),
    pytest.param(
        lambda: Procrustes(GOOD_A.long(), GOOD_B),
        TypeError,
        "a must be a real floating-point tensor; got torch.int64",
        id="a-int",
    ),
    pytest.param(
        lambda: Procrustes(GOOD_A, GOOD_B.to(torch.complex128)),
        TypeError,
        "b must be a real.*complex",
        id="b-complex",
    ),
    pytest.param(
        lambda: Procrustes(GOOD_A, GOOD_B[:, 0]),
        ValueError,
        r"b must be a matrix.*\(4,\)",
        id="b-1d",
    ),
    pytest.param(
        lambda: Procrustes(GOOD_A, GOOD_B[:3]),
        ValueError,
        r"b must have as many rows as a \(m = 4\)",
        id="b-rows",
    ),
    pytest.param(
        lambda: Procrustes(GOOD_A, torch.randn(4, 5, dtype=F64)),
        ValueError,
        "p must be at most n.*n=3, p=5",
        id="b-wide",
    ),
    pytest.param(
        lambda: Procrustes(GOOD_A.clone().fill_(float("inf")), GOOD_B),
        ValueError,
        "a must have finite entries; got 12",
        id="a-inf",
    ),
    pytest.param(
        lambda: Procrustes.random(3, noise=-1.0),
        ValueError,
        "noise must be a finite number >= 0.0; got -1.0",
        id="noise<0",
    ),
    pytest.param(
        lambda: Procrustes.random(3, m=0), ValueError, "m must be positive; got 0", id="m=0"
    ),
    pytest.param(
        lambda: Procrustes.random(3, 2, det=-1),
        ValueError,
        "det must be None, or 1 or -1 for square",
        id="det-thin",
    ),
    pytest.param(
        lambda: Procrustes.random(3, group="so", det=-1),
        ValueError,
        "det must be 1.*group 'so'",
        id="det-so",
    ),
    pytest.param(
        lambda: PCA(GOOD_COV, 2).loss(torch.ones(3, 3)),
        ValueError,
        r"x must have shape \(n, p\) = \(3, 2\); got \(3, 3\)",
        id="x-shape",
    ),
    pytest.param(
        lambda: PCA(GOOD_COV, 2).loss(torch.ones(3, 2, dtype=torch.int32)),
        TypeError,
        "x must be a real floating-point tensor; got torch.int32",
        id="x-int",
    ),
    pytest.param(
        lambda: PCA(GOOD_COV, 2).loss([[1.0]]),
        TypeError,
        "x must be a torch.Tensor; got list",
        id="x-list",
    ),
]


@pytest.mark.parametrize(("build", "error", "match"), BAD)
def test_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()
