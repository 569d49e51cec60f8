"""One contract suite that every manifold of the package plugs into."""

import io
import re

import geoopt
import pytest
import torch
from _reference import haar, orthogonality_error, tol

import cwy_manifolds as cm

F64 = torch.float64

# name -> (factory, matrix shape); factories so that no test shares a manifold object
CASES = {
    "cwy": (cm.CWY, (6, 6)),
    "cwy-det-1": (lambda: cm.CWY(det=-1), (5, 5)),
    "cwy-L3": (lambda: cm.CWY(n_reflections=3), (6, 6)),
    "cwy-matrix-gradient-det-1": (lambda: cm.CWY(det=-1, gradient="matrix"), (5, 5)),
    "tcwy": (cm.TCWY, (7, 3)),
    "tcwy-square": (cm.TCWY, (4, 4)),
    "tcwy-square-det-1": (lambda: cm.TCWY(det=-1), (3, 3)),
    "tcwy-free": (lambda: cm.TCWY(gauge="free"), (7, 3)),
    "cayley": (cm.CayleyStiefel, (7, 3)),
    "cayley-square": (cm.CayleyStiefel, (5, 5)),
    "exp": (cm.ExpStiefel, (7, 3)),
    "qr": (cm.QRStiefel, (7, 3)),
    "qr-square-det+1": (lambda: cm.QRStiefel(det=1), (4, 4)),
}


def _matrix_gradient(manifold):
    return getattr(manifold, "gradient", "euclidean") == "matrix"


FLAT = {
    *("cwy", "cwy-det-1", "cwy-L3", "cwy-matrix-gradient-det-1"),
    *("tcwy", "tcwy-square", "tcwy-square-det-1", "tcwy-free"),
}


@pytest.fixture(params=list(CASES))
def case(request):
    factory, shape = CASES[request.param]
    return request.param, factory(), shape


def _point(manifold, shape, *batch, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return manifold.random(*batch, *shape, dtype=F64, generator=gen)


def _vector(x, seed=1, scale=1.0):
    return scale * torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _tangent(manifold, x, seed=1, scale=1.0):
    return manifold.proju(x, _vector(x, seed, scale))


def test_random_stands_for_an_orthonormal_matrix(case):
    _, manifold, shape = case
    x = _point(manifold, shape)
    assert isinstance(x, geoopt.ManifoldTensor)
    assert x.manifold is manifold
    assert manifold.check_point_on_manifold(x)
    w = manifold.matrix(x)
    assert w.shape == shape
    assert w.dtype == F64
    assert orthogonality_error(w) <= tol(shape[0], F64)


def test_projx_is_idempotent_and_keeps_points(case):
    name, manifold, shape = case
    x = _point(manifold, shape)
    torch.testing.assert_close(manifold.projx(x), x.as_subclass(torch.Tensor))
    near = x + 1e-3 * _vector(x)
    once = manifold.projx(near)
    torch.testing.assert_close(manifold.projx(once), once)
    assert manifold.check_point_on_manifold(once)
    if name in FLAT:  # Note: projx must not change the matrix a point stands for
        torch.testing.assert_close(once, near)


def test_proju_gives_tangent_vectors(case):
    """(egrad2rgrad is the identity on CWY/T-CWY, the tangent projection on Stiefel.)

    ``CWY(gradient="matrix")`` is tested against a dense Jacobian in test_matrix_gradient.
    """
    _, manifold, shape = case
    x = _point(manifold, shape)
    u = _tangent(manifold, x)
    assert manifold.check_vector_on_tangent(x, u, atol=tol(shape[0], F64))
    torch.testing.assert_close(manifold.proju(x, u), u)
    if not _matrix_gradient(manifold):
        torch.testing.assert_close(manifold.egrad2rgrad(x, u), u)


@pytest.mark.parametrize("method", ["projx", "proju", "retr", "transp", "matrix", "retr_transp"])
def test_batched_equals_per_item(case, method):
    _, manifold, shape = case
    x = _point(manifold, shape, 2, 3)
    u = _tangent(manifold, x, scale=0.3)
    y = manifold.retr(x, u)
    calls = {
        "projx": lambda i: manifold.projx(x[i] + 0.01 * u[i]),
        "proju": lambda i: manifold.proju(x[i], _vector(x)[i]),
        "retr": lambda i: manifold.retr(x[i], u[i]),
        "transp": lambda i: manifold.transp(x[i], y[i], u[i]),
        "matrix": lambda i: manifold.matrix(x[i]),
        "retr_transp": lambda i: torch.cat(manifold.retr_transp(x[i], u[i], 2 * u[i]), -1),
    }
    batched = calls[method]((...,))
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(batched[i, j], calls[method]((i, j)))


@pytest.mark.parametrize("scale", [1e-3, 1.0, 10.0])
@pytest.mark.parametrize("tangent", [True, False], ids=["tangent", "any-vector"])
def test_retr_stays_on_manifold(case, scale, tangent):
    """Also for non-tangent vectors: RiemannianSGD's first momentum step passes one."""
    _, manifold, shape = case
    x = _point(manifold, shape)
    u = _tangent(manifold, x, scale=scale) if tangent else _vector(x, scale=scale)
    y = manifold.retr(x, u)
    assert manifold.check_point_on_manifold(y)
    # the matrix exponential's rounding error grows with the step (ExpStiefel docstring)
    allowed = tol(shape[0], F64) * max(1.0, float(torch.linalg.matrix_norm(u)))
    assert orthogonality_error(manifold.matrix(y)) <= allowed


def _first_order_errors(manifold, x, u):
    return [
        float(torch.linalg.matrix_norm((manifold.retr(x, t * u) - x) / t - u)) for t in (1e-2, 1e-3)
    ]


def test_retr_is_first_order(case):
    """||(retr(x, t u) - x) / t - u|| = O(t) for tangent u.

    On the vectors, in the matrix: the steps of CWY/T-CWY stand for the matrix of
    ``x + u / c`` (Note [gauge]; ``c = 1`` in the free gauge, Note [step scale]), and
    ``x + t u / c`` is first-order in the scaled step by definition.
    """
    name, manifold, shape = case
    x = _point(manifold, shape)
    u = _tangent(manifold, x)
    if name in FLAT:
        c = 1.0 if manifold.gauge == "free" else manifold.step_scale(x)
        for t in (1e-2, 1e-3):
            torch.testing.assert_close(
                manifold.matrix(manifold.retr(x, t * u)), manifold.matrix(x + t * u / c)
            )
        return
    scale = float(torch.linalg.matrix_norm(u)) ** 2
    for t, err in zip((1e-2, 1e-3), _first_order_errors(manifold, x, u), strict=True):
        assert err <= 10 * t * scale


@pytest.mark.parametrize("shape", [(6, 6), (6, 3), (9, 3), (9, 1)])
def test_cayley_equals_the_dense_cayley_transform(shape):
    """Both forms (Woodbury for 2M < N, N x N otherwise) against scipy's dense solve."""
    import scipy.linalg as scipy_linalg

    st = cm.CayleyStiefel()
    x = st.random(*shape, dtype=F64)
    u = torch.randn(*shape, dtype=F64)  # any u, tangent or not: C is orthogonal anyway
    p = torch.eye(shape[0], dtype=F64) - x @ x.mT / 2
    a = (p @ u @ x.mT - x @ u.mT @ p).numpy()
    eye = torch.eye(shape[0], dtype=F64).numpy()
    expected = scipy_linalg.solve(eye - a / 2, (eye + a / 2) @ x.numpy())
    torch.testing.assert_close(st.retr(x, u), torch.from_numpy(expected))


@pytest.mark.parametrize("shape", [(5, 5), (7, 3)], ids=["square", "thin"])
def test_first_order_check_catches_geoopt_canonical_stiefel(shape):
    """geoopt's Cayley map moves by u + X X^T u: the check above has teeth."""
    manifold = geoopt.CanonicalStiefel()
    x = manifold.random(*shape, dtype=F64)
    u = manifold.proju(x, torch.randn(*shape, dtype=F64))
    errors = _first_order_errors(manifold, x, u)
    expected = float(torch.linalg.matrix_norm(x @ x.mT @ u))  # the excess derivative
    assert errors[1] > 0.5 * expected > 0
    assert errors[1] > 10 * 1e-3 * float(torch.linalg.matrix_norm(u)) ** 2


def test_transport_gives_tangent_vectors(case):
    _, manifold, shape = case
    x = _point(manifold, shape)
    u, v = _tangent(manifold, x, scale=0.5), _tangent(manifold, x, seed=2)
    y, w = manifold.retr_transp(x, u, v)
    assert manifold.check_vector_on_tangent(y, w, atol=tol(shape[0], F64))
    torch.testing.assert_close(manifold.transp_follow_retr(x, u, v), w)
    torch.testing.assert_close(y, manifold.retr(x, u))
    assert manifold.check_vector_on_tangent(y, manifold.transp(x, y, v), atol=tol(shape[0], F64))


def test_reversible_where_claimed(case):
    _, manifold, shape = case
    if not manifold.reversible:
        pytest.skip(f"{manifold.name} does not claim reversibility")
    x = _point(manifold, shape)
    u = _tangent(manifold, x, scale=0.5)
    y, u_at_y = manifold.retr_transp(x, u, u)
    torch.testing.assert_close(manifold.retr(y, -u_at_y), x.as_subclass(torch.Tensor))


def test_inner_norm_and_component_inner_agree(case):
    """The Frobenius product on every manifold (the unit gauge scales the step instead).

    Except ``CWY(gradient="matrix")``, whose ``inner`` is the metric of the matrix
    (test_matrix_gradient); its ``component_inner`` stays elementwise.
    """
    _, manifold, shape = case
    x = _point(manifold, shape)
    u, v = _tangent(manifold, x), _tangent(manifold, x, seed=2)
    torch.testing.assert_close(manifold.norm(x, u) ** 2, manifold.inner(x, u))
    torch.testing.assert_close(manifold.component_inner(x, u, v).sum(), (u * v).sum())
    if not _matrix_gradient(manifold):
        torch.testing.assert_close(manifold.inner(x, u, v), (u * v).sum())
        torch.testing.assert_close(manifold.egrad2rgrad(x, v), manifold.proju(x, v))


def test_works_wrapped_in_scaled(case):
    _, manifold, shape = case
    scaled = geoopt.Scaled(manifold, 2.0)
    x = _point(manifold, shape)
    u = _tangent(manifold, x)
    torch.testing.assert_close(scaled.retr(x, u), manifold.retr(x, u / 2))
    p = geoopt.ManifoldParameter(cm.from_matrix(scaled, manifold.matrix(x)))
    assert p.manifold is scaled
    torch.testing.assert_close(cm.matrix(p), manifold.matrix(p))
    opt = geoopt.optim.RiemannianSGD([p], lr=0.1, momentum=0.5)
    for _ in range(2):
        opt.zero_grad()
        (cm.matrix(p)[0, 0] ** 2).backward()
        opt.step()
    assert orthogonality_error(cm.matrix(p)) <= tol(shape[0], F64)


def test_from_matrix_round_trip(case):
    name, manifold, shape = case
    if name == "cwy-L3":  # a strict subset of SO(6): start from a point of it
        m = manifold.matrix(_point(manifold, shape))
    else:
        n, k = shape
        m = haar(n, k, det=manifold.det if n == k else None, seed=7)
    x = manifold.from_matrix(m)
    assert x.manifold is manifold
    torch.testing.assert_close(manifold.matrix(x), m, atol=tol(shape[0], F64), rtol=0)
    torch.testing.assert_close(cm.matrix(cm.from_matrix(manifold, m)), m, atol=tol(8, F64), rtol=0)


def test_origin(case):
    name, manifold, shape = case
    w = manifold.matrix(manifold.origin(*shape, dtype=F64))
    expected = torch.eye(*shape, dtype=F64)
    if name.endswith("det-1"):
        expected[-1, -1] = -1  # the identity has the other determinant
    torch.testing.assert_close(w, expected)


def test_to_dtype_keeps_the_manifold(case):
    _, manifold, shape = case
    module = torch.nn.Module()
    module.p = geoopt.ManifoldParameter(manifold.random(*shape))
    module.to(F64)
    assert isinstance(module.p, geoopt.ManifoldParameter)
    assert module.p.manifold is manifold
    assert cm.matrix(module.p).dtype == F64


# -- optimizers -------------------------------------------------------------------------


def _pca(n=7, p=3):
    q = haar(n, seed=11)
    evals = torch.tensor([5.0, 4.0, 3.0, 1.0, 0.8, 0.6, 0.4], dtype=F64)[:n]
    return q @ torch.diag(evals) @ q.T, -float(evals[:p].sum())


OPTIMIZERS = {
    "rsgd-momentum": lambda params: geoopt.optim.RiemannianSGD(params, lr=0.03, momentum=0.9),
    "radam": lambda params: geoopt.optim.RiemannianAdam(params, lr=0.03),
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("name", ["cwy", "tcwy", "cayley", "cayley-square", "exp", "qr"])
def test_optimizers_reach_the_pca_optimum(name, optimizer):
    factory, shape = CASES[name]
    manifold = factory()
    cov, optimum = _pca()
    p = geoopt.ManifoldParameter(_point(manifold, (7, 7) if shape[0] == shape[1] else (7, 3)))
    opt = OPTIMIZERS[optimizer]([p])
    for _ in range(300):
        opt.zero_grad()
        w = cm.matrix(p)[:, :3]
        loss = -(w.T @ cov @ w).trace()
        loss.backward()
        opt.step()
    assert float(loss.detach()) - optimum < 1e-8
    # CWY/TCWY recompute the matrix from V: no drift; retractions accumulate rounding
    # errors like a random walk over the 300 steps
    drift = 1 if name in FLAT else 300**0.5
    assert orthogonality_error(cm.matrix(p)) <= drift * tol(7, F64)


def test_optimizer_state_dict_round_trip(case):
    _, manifold, shape = case
    cov = _pca(shape[0])[0]

    def step(p, opt):
        opt.zero_grad()
        w = cm.matrix(p)
        (-(w.T @ cov[: shape[0], : shape[0]] @ w).trace()).backward()
        opt.step()

    p = geoopt.ManifoldParameter(_point(manifold, shape))
    opt = geoopt.optim.RiemannianAdam([p], lr=0.02)
    for _ in range(3):
        step(p, opt)
    buffer = io.BytesIO()
    torch.save({"p": p.detach(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    p2 = geoopt.ManifoldParameter(saved["p"], manifold=manifold)
    opt2 = geoopt.optim.RiemannianAdam([p2], lr=0.02)
    opt2.load_state_dict(saved["opt"])
    # torch.optim.Adam.__setstate__ (inherited by RiemannianAdam) turns the integer step
    # into a float32 tensor, and geoopt then computes its bias corrections in float32
    assert opt2.state[p2]["step"].dtype == torch.float32
    opt2.state[p2]["step"] = int(opt2.state[p2]["step"])
    for _ in range(3):
        step(p, opt)
        step(p2, opt2)
    torch.testing.assert_close(p2.as_subclass(torch.Tensor), p.as_subclass(torch.Tensor))


# -- distributions ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cwy", "cwy-det-1", "tcwy", "cayley", "qr"])
def test_random_is_haar(name):
    """First and second moments of Haar measure: E[W] = 0, E[W_ij^2] = 1/N, E[tr Q] = 0."""
    factory, shape = CASES[name]
    manifold = factory()
    samples = 4000
    w = manifold.matrix(_point(manifold, shape, samples))
    n = shape[0]
    bound = 5 / samples**0.5  # five standard errors (entries have variance <= 1/N)
    assert float(w.mean(0).abs().max()) < bound
    assert float((w**2).mean(0).sub(1 / n).abs().max()) < 5 * bound / n**0.5
    if shape[0] == shape[1]:
        trace = torch.diagonal(w, dim1=-2, dim2=-1).sum(-1)
        assert abs(float(trace.mean())) < bound  # Var(tr Q) = 1 under Haar measure


def test_haar_check_has_teeth():
    """CWY of Gaussian vectors is biased towards the identity; the test above sees it."""
    q = cm.cwy(torch.randn(4000, 6, 6, dtype=F64))
    assert float(torch.diagonal(q, dim1=-2, dim2=-1).sum(-1).mean()) > 5 / 4000**0.5


# -- CWY specifics ----------------------------------------------------------------------


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("n", [1, 2, 5, 6])
def test_determinant_option(det, n):
    manifold = cm.CWY(det=det)
    for x in (_point(manifold, (n, n)), manifold.origin(n, n, dtype=F64)):
        assert float(torch.linalg.det(manifold.matrix(x))) == pytest.approx(det)
    expected = (
        re.escape(f"m must have determinant {det:+d}") + ".*" + re.escape(f"CWY(det={-det:+d})")
    )
    with pytest.raises(ValueError, match=expected):
        manifold.from_matrix(haar(n, det=-det))


def test_fewer_reflections_fix_a_subspace():
    """With L < N (and det = (-1)^L) Q is the identity on the complement of span(V)."""
    manifold = cm.CWY(n_reflections=3, det=-1)
    x = _point(manifold, (8, 8))
    assert x.shape == (8, 3)
    basis, _ = torch.linalg.qr(torch.cat([x, torch.randn(8, 5, dtype=F64)], dim=-1))
    perp = basis[:, 3:]
    torch.testing.assert_close(manifold.matrix(x) @ perp, perp)
    with pytest.raises(ValueError, match="reachable with n_reflections = 3"):
        manifold.from_matrix(haar(8, det=-1))


def test_origin_is_singular_and_random_is_not():
    """Note [singular at the identity]: the Jacobian of V -> Q loses rank at the origin."""
    manifold, n = cm.CWY(), 6
    for x, expected in ((manifold.origin(n, n, dtype=F64), n - 1), (_point(manifold, (n, n)), 15)):
        x = x.as_subclass(torch.Tensor)
        q = manifold.matrix(x).detach()
        jac = torch.autograd.functional.jacobian(lambda v, q=q: manifold.matrix(v) @ q.T, x)
        assert int(torch.linalg.matrix_rank(jac.reshape(n * n, -1))) == expected


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: cm.CWY(det=2), ValueError, "det must be"),
        (lambda: cm.CWY(n_reflections=-1), ValueError, "n_reflections must"),
        (lambda: cm.CWY(n_reflections=7).random(5, 5), ValueError, "at most N = 5"),
        (lambda: cm.CWY().random(5, 3), ValueError, r"square shape.*\(5, 3\)"),
        (lambda: cm.TCWY().random(3, 5), ValueError, "M <= N"),
        (lambda: cm.CayleyStiefel().random(4), ValueError, "matrix shape"),
        (
            lambda: cm.get_manifold("cwz"),
            ValueError,
            "method must be one of cwy, tcwy, cayley, exp, qr, geoopt-canonical, geoopt-euclidean, "
            "geoopt-exact; got 'cwz'",
        ),
        (lambda: cm.matrix(torch.eye(3)), TypeError, "ManifoldParameter"),
        (
            lambda: cm.matrix(geoopt.ManifoldTensor(torch.eye(3), manifold=geoopt.Sphere())),
            TypeError,
            "got Sphere",
        ),
        (lambda: cm.TCWY().from_matrix(2 * torch.eye(4, 2)), ValueError, "orthonormal"),
        (lambda: cm.QRStiefel().from_matrix(torch.ones(3, 2)), ValueError, "orthonormal"),
        (lambda: cm.CWY().from_matrix(torch.eye(4, 3)), ValueError, "square"),
        (
            lambda: cm.TCWY(det=-1).from_matrix(torch.eye(3)),
            ValueError,
            r"determinant -1 for TCWY\(det=-1\)",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("name", ["cwy", "tcwy"])
def test_check_point_rejects_zero_and_non_finite_columns(name):
    manifold = CASES[name][0]()
    x = _point(manifold, CASES[name][1]).as_subclass(torch.Tensor)
    bad_zero, bad_nan = x.clone(), x.clone()
    bad_zero[:, 1] = 0
    bad_nan[0, 0] = float("nan")
    assert manifold.check_point_on_manifold(bad_zero, explain=True) == (
        False,
        "V has 1 zero column(s): a zero vector defines no reflection",
    )
    assert manifold.check_point_on_manifold(bad_nan, explain=True) == (
        False,
        "V has NaN/Inf entries",
    )


def test_check_point_rejects_non_orthonormal_stiefel():
    ok, reason = cm.QRStiefel().check_point_on_manifold(torch.ones(4, 2), explain=True)
    assert not ok
    assert "X^T X != I" in reason


@pytest.mark.parametrize("det", [1, -1])
def test_large_float32_random_has_the_right_determinant(det):
    """The sign comes from slogdet: a float32 det of a 512 x 512 matrix overflows."""
    manifold = cm.CWY(det=det)
    for seed in range(2):
        x = manifold.random(512, 512, generator=torch.Generator().manual_seed(seed))
        sign = torch.linalg.slogdet(manifold.matrix(x).double()).sign
        assert int(sign) == det
