"""Edges of the manifolds' interface: dtypes, empty and point shapes, geoopt's
ProductManifold, contiguity, broadcasting and messages, meta tensors and vmap."""

import geoopt
import pytest
import torch
from _harness import one_thread  # noqa: F401 (small problems: one torch thread)
from _reference import haar, orthogonality_error, tol

import cwy_manifolds as cm
from cwy_manifolds.registry import METHODS

F64 = torch.float64
# every manifold of the package, from the one registry
CLASSES = {name: m.factory for name, m in METHODS.items() if m.source == "cwy_manifolds"}
STIEFEL = {name: cls for name, cls in CLASSES.items() if not METHODS[name].flat}


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64, "float32"])
@pytest.mark.parametrize("method", ["random", "origin"])
@pytest.mark.parametrize("name", CLASSES)
def test_random_and_origin_refuse_non_real_dtypes(name, method, dtype):
    with pytest.raises(TypeError, match=r"dtype must be a real floating-point torch.dtype .*; got"):
        getattr(CLASSES[name](), method)(3, 3, dtype=dtype)


@pytest.mark.parametrize("size", [(0, 0), (2, 0, 0), (4, 0)], ids=["0x0", "batch-0x0", "4x0"])
@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("name", CLASSES)
def test_empty_shapes(name, det, size):
    if name == "cwy" and size[-1] != size[-2]:
        pytest.skip("CWY stands for square matrices")
    manifold = CLASSES[name](det=det)
    for x in (manifold.random(*size, dtype=F64), manifold.origin(*size, dtype=F64)):
        assert tuple(manifold.matrix(x).shape) == size
        assert tuple(manifold.from_matrix(manifold.matrix(x)).shape) == size


def _all_points():
    for name, cls in CLASSES.items():
        manifold = cls()
        shape = (5, 5) if name == "cwy" else (6, 3)
        m = manifold.matrix(manifold.random(*shape, dtype=F64))
        yield f"{name}-random", manifold.random(2, *shape)
        yield f"{name}-origin", manifold.origin(2, *shape)
        yield f"{name}-from-matrix", manifold.from_matrix(m)
        if shape[0] == shape[1]:  # a transposed (non-contiguous) input
            yield f"{name}-from-transposed", manifold.from_matrix(m.mT.contiguous().mT)
    yield "cwy-L2-random", cm.CWY(n_reflections=2).random(5, 5)
    yield "qr-square-random", cm.QRStiefel(det=-1).random(4, 4)


POINTS = dict(_all_points())


@pytest.mark.parametrize("name", POINTS)
def test_points_are_contiguous(name):
    x = POINTS[name]
    assert x.is_contiguous()
    params = [geoopt.ManifoldParameter(x), torch.nn.Parameter(torch.randn(3))]
    torch.nn.utils.parameters_to_vector(params)  # needs contiguous parameters


# -- geoopt's ProductManifold: point shapes (Note [sizes are matrix shapes]) ----------------


def test_product_manifold_with_few_reflections():
    cwy = cm.CWY(n_reflections=3)
    product = geoopt.ProductManifold((cwy, (10, 3)), (geoopt.Sphere(), 4))
    assert product.n_elements == 34
    for x in (product.random(product.n_elements, dtype=F64), product.origin(2, 34, dtype=F64)):
        assert product.check_point_on_manifold(x)
        v = product.take_submanifold_value(x, 0)
        assert v.shape[-2:] == (10, 3)
        q = cwy.matrix(v)
        assert orthogonality_error(q) <= tol(10, F64)
        assert float(torch.linalg.slogdet(q).sign.min()) == 1


@pytest.mark.parametrize(
    ("manifold", "size", "match"),
    [
        (cm.CWY(), (10, 3), r"size must be a square shape \(\*, N, N\) for CWY; got \(10, 3\)"),
        (cm.CWY(n_reflections=3), (10, 4), r"or the point shape \(\*, N, 3\)"),
        (cm.CWY(n_reflections=3), (2, 2), "n_reflections must be at most N = 2; got 3"),
    ],
    ids=["no-n-reflections", "other-count", "too-small"],
)
def test_point_shapes_are_unambiguous(manifold, size, match):
    with pytest.raises(ValueError, match=match):
        manifold.random(*size)


# -- messages: batched steps, NaN ------------------------------------------------------------


@pytest.mark.parametrize("name", STIEFEL)
def test_retr_broadcasts_a_batch_of_steps(name):
    manifold = STIEFEL[name]()
    x = manifold.random(5, 3, dtype=F64)
    u = manifold.proju(x, 0.3 * torch.randn(2, 5, 3, dtype=F64))
    y = manifold.retr(x, u)
    assert y.shape == (2, 5, 3)
    for i in range(2):
        torch.testing.assert_close(y[i], manifold.retr(x, u[i]))
    y2, w = manifold.retr_transp(x, u, u)
    torch.testing.assert_close(y2, y)
    assert w.shape == (2, 5, 3)
    torch.testing.assert_close(manifold.expmap(x, u)[1], manifold.expmap(x, u[1]))


@pytest.mark.parametrize("name", ["cayley", "exp"])
def test_retr_refuses_steps_that_do_not_broadcast(name):
    manifold = STIEFEL[name]()
    x = manifold.random(5, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"u must have a shape that broadcasts with x \(\(5, 3\)"):
        manifold.retr(x, torch.randn(4, 3, dtype=F64))


@pytest.mark.parametrize("name", STIEFEL)
def test_projx_refuses_nan(name):
    x = torch.randn(5, 3, dtype=F64)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"x must have finite entries .*; got 1 NaN/Inf"):
        STIEFEL[name]().projx(x)


# -- tensors without values and torch.func --------------------------------------------------


@pytest.mark.parametrize("name", CLASSES)
def test_from_matrix_on_meta_tensors_and_under_vmap(name):
    manifold = CLASSES[name](det=1)
    q = torch.stack([haar(4, det=1, seed=s) for s in range(3)])
    x = manifold.from_matrix(q.to("meta"))
    assert x.device.type == "meta"
    assert x.shape == q.shape
    v = torch.func.vmap(manifold.from_matrix)(q)
    torch.testing.assert_close(manifold.matrix(v), q)
    with pytest.raises(ValueError, match="must have determinant"):
        torch.func.vmap(CLASSES[name](det=-1).from_matrix)(q)
