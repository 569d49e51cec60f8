"""Components of O(N): the ``det`` option, the same way on every manifold of the package."""

import re

import geoopt
import pytest
import torch
from _reference import haar, orthogonality_error, tol

import cwy_manifolds as cm

F64 = torch.float64
CLASSES = {
    "cwy": cm.CWY,
    "tcwy": cm.TCWY,
    "cayley": cm.CayleyStiefel,
    "exp": cm.ExpStiefel,
    "qr": cm.QRStiefel,
}
STIEFEL = {"cayley", "exp", "qr"}


def _sign(m):
    return int(torch.linalg.slogdet(m.detach().to(F64)).sign)


def _d(n):
    d = torch.eye(n, dtype=F64)
    d[-1, -1] = -1
    return d


@pytest.mark.parametrize("n", [1, 3, 4])
@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("name", CLASSES)
def test_det_selects_the_component(name, det, n):
    """random, origin and from_matrix agree with ``det``, for odd and even N."""
    manifold = CLASSES[name](det=det)
    gen = torch.Generator().manual_seed(n)
    for x in manifold.random(8, n, n, dtype=F64, generator=gen):
        assert _sign(manifold.matrix(x)) == det
    origin = manifold.matrix(manifold.origin(n, n, dtype=F64))
    torch.testing.assert_close(origin, torch.eye(n, dtype=F64) if det == 1 else _d(n))
    m = haar(n, det=det, seed=n)
    x = manifold.from_matrix(m)
    torch.testing.assert_close(manifold.matrix(x), m, atol=tol(n, F64), rtol=0)


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("name", CLASSES)
def test_wrong_component_gives_the_same_error(name, det):
    cls = CLASSES[name]
    expected = (
        re.escape(f"m must have determinant {det:+d} for {cls.__name__}(det={det:+d})")
        + ".*"
        + re.escape(f"Use {cls.__name__}(det={-det:+d})")
    )
    with pytest.raises(ValueError, match=expected):
        cls(det=det).from_matrix(haar(5, det=-det, seed=1))
    batch = torch.stack([haar(4, det=det, seed=2), haar(4, det=-det, seed=3)])
    with pytest.raises(ValueError, match="1 of 2 matrices have determinant"):
        cls(det=det).from_matrix(batch)


@pytest.mark.parametrize("name", sorted(STIEFEL))
def test_stiefel_default_is_all_of_o_n(name):
    manifold = CLASSES[name]()
    assert manifold.det is None
    signs = {_sign(w) for w in manifold.random(64, 3, 3, dtype=F64)}
    assert signs == {1, -1}
    for det in (1, -1):
        m = haar(4, det=det, seed=4)
        torch.testing.assert_close(manifold.matrix(manifold.from_matrix(m)), m)
    torch.testing.assert_close(
        manifold.matrix(manifold.origin(3, 3, dtype=F64)), torch.eye(3, dtype=F64)
    )


@pytest.mark.parametrize("name", ["cwy", "tcwy"])
def test_reflections_need_a_component(name):
    """A fixed number of reflections reaches one component: det=None is impossible."""
    cls = CLASSES[name]
    assert cls().det == 1
    with pytest.raises(ValueError, match=r"det must be .* one component"):
        cls(det=None)


@pytest.mark.parametrize("det", [-1, 1])
@pytest.mark.parametrize("name", ["tcwy", "cayley", "qr"])
def test_det_does_not_restrict_thin_shapes(name, det):
    manifold = CLASSES[name](det=det)
    m = haar(6, 3, seed=5)
    torch.testing.assert_close(manifold.matrix(manifold.from_matrix(m)), m)
    w = manifold.matrix(manifold.random(6, 3, dtype=F64))
    assert orthogonality_error(w) <= tol(6, F64)
    torch.testing.assert_close(
        manifold.matrix(manifold.origin(6, 3, dtype=F64)), torch.eye(6, 3, dtype=F64)
    )


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("det", [1, -1])
def test_square_tcwy_is_cwy(det, n):
    """T-CWY at M = N uses the sign flip D like CWY (it was det (-1)^N, silently)."""
    v = torch.randn(n, n, dtype=F64)
    torch.testing.assert_close(cm.TCWY(det=det).matrix(v), cm.CWY(det=det).matrix(v))


@pytest.mark.parametrize("bad", [1.0, -1.0, True, "1", 2, 0, None])
@pytest.mark.parametrize("name", CLASSES)
def test_det_must_be_an_integer_sign(name, bad):
    if bad is None and name in STIEFEL:
        return  # None is all of O(N) there
    with pytest.raises(ValueError, match=r"det must be \+1 or -1"):
        CLASSES[name](det=bad)


@pytest.mark.parametrize("name", CLASSES)
def test_numpy_integers_are_accepted(name):
    np = pytest.importorskip("numpy")
    assert CLASSES[name](det=np.int64(-1)).det == -1
    assert type(CLASSES[name](det=np.int64(-1)).det) is int


@pytest.mark.parametrize("name", CLASSES)
def test_unknown_keywords_are_rejected(name):
    with pytest.raises(TypeError, match="foo"):
        CLASSES[name](det=-1, foo=1)
    with pytest.raises(TypeError):
        CLASSES[name](-1)  # keyword-only


@pytest.mark.parametrize("name", CLASSES)
def test_repr_shows_det(name):
    assert f"det={CLASSES[name](det=-1).det:+d}" in repr(CLASSES[name](det=-1))
    if name in STIEFEL:
        assert "det=None" in repr(CLASSES[name]())


README_OPTIMIZERS = {
    "sgd": lambda ps: geoopt.optim.RiemannianSGD(ps, lr=0.3, momentum=0.9),
    "adam": lambda ps: geoopt.optim.RiemannianAdam(ps, lr=0.15),
}


@pytest.mark.parametrize("optimizer", README_OPTIMIZERS)
@pytest.mark.parametrize("name", CLASSES)
def test_readme_rotation_example(name, optimizer):
    """The README's rotation example converges on every manifold from the same start.

    ``from_matrix`` of one rotation starts every manifold at the same matrix; with
    ``det=+1`` the Stiefel manifolds' ``random`` would land in SO(N) too. One learning
    rate per optimizer for every manifold: SGD's thanks to the step scale of CWY/T-CWY
    (Note [step scale]); for Adam, whose lr means a step per entry of the vectors but a
    Frobenius length on the Stiefel manifolds (one second moment per matrix), 0.15 is
    in the range that suits both (the README's 0.05 leaves the Stiefel ones far off).
    """
    torch.manual_seed(0)
    skew = torch.randn(32, 32)
    target = torch.linalg.matrix_exp(skew - skew.T)  # a rotation: determinant +1
    start = cm.CWY().matrix(cm.CWY().random(32, 32))  # one start, in SO(32)
    manifold = CLASSES[name](det=1)
    x = geoopt.ManifoldParameter(cm.from_matrix(manifold, start))
    opt = README_OPTIMIZERS[optimizer]([x])
    for _ in range(200):
        opt.zero_grad()
        loss = (cm.matrix(x) - target).square().sum()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 1e-3
    assert orthogonality_error(cm.matrix(x)) <= 200**0.5 * tol(32, torch.float32)
