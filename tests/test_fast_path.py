"""The hand-differentiated fast path of cwy/tcwy against a plain-autograd reference.

See Notes [hand-derived backward], [double backward], [triangular inverse on
accelerators] and [unnormalised vectors] in ``cwy_manifolds/core/wy.py``.
"""

import warnings

import pytest
import torch
from _reference import tol

import cwy_manifolds.core.wy as fast
from cwy_manifolds import cwy, set_value_checks, tcwy

F64 = torch.float64


def reference(v: torch.Tensor, k: int) -> torch.Tensor:
    """E - U S^{-1} U_K^T with unit columns, by plain differentiable torch operations."""
    u = v / torch.linalg.vector_norm(v, dim=-2, keepdim=True)
    n_refl = u.shape[-1]
    s = torch.triu(u.mT @ u, diagonal=1) + torch.eye(n_refl, dtype=u.dtype) / 2
    w = torch.linalg.solve_triangular(s, u[..., :k, :].mT, upper=True)
    return torch.eye(u.shape[-2], k, dtype=u.dtype) - u @ w


def _ref_cwy(v):
    return reference(v, v.shape[-2])


def _ref_tcwy(v):
    return reference(v, v.shape[-1])


MAPS = {"cwy": (cwy, _ref_cwy), "tcwy": (tcwy, _ref_tcwy)}
SHAPES = {  # (batch..., N, L)
    "N1-L1": (1, 1),
    "L<N": (7, 3),
    "L=N": (6, 6),
    "L>N": (4, 9),
    "batched": (2, 1, 5, 3),
    "batched-N1": (3, 1, 1),
}


CASES = [
    pytest.param(fn, shape, id=f"{fn}-{name}")
    for name, shape in SHAPES.items()
    for fn in MAPS
    if fn == "cwy" or shape[-1] <= shape[-2]
]


@pytest.fixture(params=[False, True], ids=["solve", "inverse"])
def solver(request, monkeypatch):
    """Run each test with triangular solves (CPU) and with the accelerator's inverse."""
    if request.param:
        monkeypatch.setattr(fast, "_use_inverse", lambda s: True)
    return request.param


@pytest.mark.usefixtures("solver")
@pytest.mark.parametrize(("fn", "shape"), CASES)
def test_forward_and_gradient_equal_reference(fn, shape):
    fn, ref = MAPS[fn]
    v = torch.randn(*shape, dtype=F64, requires_grad=True)
    out, expected = fn(v), ref(v)
    torch.testing.assert_close(out, expected, atol=tol(shape[-2], F64), rtol=0)
    cotangent = torch.randn_like(expected)
    (grad,) = torch.autograd.grad(out, v, cotangent)
    (grad_ref,) = torch.autograd.grad(expected, v, cotangent)
    torch.testing.assert_close(grad, grad_ref, atol=10 * tol(shape[-2], F64), rtol=0)


@pytest.mark.usefixtures("solver")
@pytest.mark.parametrize(("fn", "shape"), CASES)
def test_gradcheck_forward_and_reverse(fn, shape):
    v = torch.randn(*shape, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(MAPS[fn][0], (v,), check_forward_ad=True, fast_mode=True)


@pytest.mark.parametrize(("fn", "shape"), [("cwy", (4, 3)), ("tcwy", (2, 4, 2))])
def test_double_backward_equals_reference(fn, shape):
    """Note [double backward]: Hessian-vector products through the hand-written rule."""
    fn, ref = MAPS[fn]
    v = torch.randn(*shape, dtype=F64, requires_grad=True)
    weight, direction = torch.randn_like(ref(v)), torch.randn(*shape, dtype=F64)

    def hvp(f):
        (g,) = torch.autograd.grad((f(v) * weight).sum() ** 2, v, create_graph=True)
        return torch.autograd.grad((g * direction).sum(), v)[0]

    torch.testing.assert_close(hvp(fn), hvp(ref))
    assert torch.autograd.gradgradcheck(fn, (v,), fast_mode=True)


@pytest.mark.parametrize("fn", ["cwy", "tcwy"])
def test_blocked_products(fn, monkeypatch):
    """Column-panel products and the transposed layout (for L > 2 _BLOCK) on small blocks."""
    monkeypatch.setattr(fast, "_BLOCK", 2)
    fn, ref = MAPS[fn]
    v = torch.randn(2, 13, 11, dtype=F64, requires_grad=True)
    out, expected = fn(v), ref(v)
    torch.testing.assert_close(out, expected, atol=tol(13, F64), rtol=0)
    cotangent = torch.randn_like(out)
    grads = [torch.autograd.grad(q, v, cotangent)[0] for q in (out, expected)]
    torch.testing.assert_close(*grads, atol=10 * tol(13, F64), rtol=0)


@pytest.mark.parametrize("shape", [(13, 13), (2, 9, 9), (12, 7)], ids=str)
def test_forward_without_autograd_on_blocked_path(shape, monkeypatch):
    """No autograd, many vectors: W overwrites the copy of Y^T (Note [memory layout])."""
    monkeypatch.setattr(fast, "_BLOCK", 2)
    v = torch.randn(*shape, dtype=F64)
    ref = _ref_cwy(v)
    torch.testing.assert_close(cwy(v), ref, atol=tol(shape[-2], F64), rtol=0)
    torch.testing.assert_close(
        cwy(v.float()), ref.float(), atol=tol(shape[-2], torch.float32), rtol=0
    )
    v[..., 1, 2] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        cwy(v)
    v[..., :, 2] = 0
    with pytest.raises(ValueError, match="column 2"):
        cwy(v)


@pytest.mark.parametrize("n", [7, 9, 10])
def test_triu_product_blocks_match_dense(n, monkeypatch):
    """Both paths: into one buffer (plain tensors) and padded panels (differentiable)."""
    monkeypatch.setattr(fast, "_BLOCK", 3)
    a, b = torch.randn(2, n, 7, dtype=F64), torch.randn(1, 7, n, dtype=F64)
    torch.testing.assert_close(fast.triu_product(a, b), torch.triu(a @ b))
    a.requires_grad_()
    out = fast.triu_product(a, b, differentiable=True)
    assert out.grad_fn is not None
    torch.testing.assert_close(out, torch.triu(a @ b))
    assert torch.autograd.gradcheck(
        lambda a, b: fast.triu_product(a, b, differentiable=True), (a, b), fast_mode=True
    )


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 33])
def test_upper_inverse_matches_triangular_solve(n):
    """Note [triangular inverse on accelerators], checked on the CPU."""
    s = torch.randn(2, 3, n, n, dtype=F64).triu() + 4 * torch.eye(n, dtype=F64)
    expected = torch.linalg.solve_triangular(s, torch.eye(n, dtype=F64), upper=True)
    torch.testing.assert_close(fast.upper_inverse(s), expected)


def test_upper_inverse_accurate_for_nearly_parallel_vectors():
    """Where the Neumann product of the issue breaks down (errors ~1e20 in float32)."""
    v = torch.randn(128, 1, dtype=F64) + 0.05 * torch.randn(128, 64, dtype=F64)
    y = v / v.abs().amax(dim=-2, keepdim=True)
    s = torch.triu(y.mT @ y) - torch.diag_embed((y * y).sum(-2)) / 2
    exact = torch.linalg.solve_triangular(s, torch.eye(64, dtype=F64), upper=True)
    solve32 = torch.linalg.solve_triangular(s.float(), torch.eye(64), upper=True)

    def err(t):
        return float(torch.linalg.matrix_norm(t.to(F64) - exact) / torch.linalg.matrix_norm(exact))

    assert err(fast.upper_inverse(s.float())) <= 10 * max(err(solve32), 1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("fn", ["cwy", "tcwy"])
def test_half_precision_gradient(fn, dtype):
    """Note [precision]: float32 internals; forward and gradient in the input dtype."""
    fn, ref = MAPS[fn]
    v = torch.randn(64, 8).to(dtype).requires_grad_()
    out = fn(v)
    cotangent = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, v, cotangent)
    v64 = v.detach().to(F64).requires_grad_()
    (grad_ref,) = torch.autograd.grad(ref(v64), v64, cotangent.to(F64))
    assert grad.dtype == dtype
    scale = float(grad_ref.abs().max())
    assert float((grad.to(F64) - grad_ref).abs().max()) <= 16 * torch.finfo(dtype).eps * scale


@pytest.mark.parametrize("shape", [(4, 0), (0, 0), (2, 0, 0), (0, 3, 2)])
@pytest.mark.parametrize("fn", [cwy, tcwy], ids=lambda f: f.__name__)
def test_empty_shapes_backward(fn, shape):
    v = torch.randn(*shape, dtype=F64, requires_grad=True)
    out = fn(v)
    out.sum().backward()
    assert v.grad.shape == v.shape


@pytest.mark.parametrize("block", [128, 1], ids=["whole", "panels"])
def test_functorch_grad_and_vmap(block, monkeypatch):
    """Also on the blocked path, whose buffer writes are not possible under torch.func."""
    monkeypatch.setattr(fast, "_BLOCK", block)
    v = torch.randn(3, 6, 4, dtype=F64)
    grad = torch.func.grad(lambda x: (cwy(x) ** 3).sum())(v[0])
    grad_ref = torch.func.grad(lambda x: (_ref_cwy(x) ** 3).sum())(v[0])
    torch.testing.assert_close(grad, grad_ref)
    torch.testing.assert_close(torch.vmap(tcwy)(v), tcwy(v))  # value checks on
    torch.testing.assert_close(torch.vmap(cwy)(v), cwy(v))


def test_large_sizes_use_blocked_path():
    """L > 256 takes the column panels and the transposed layout (float32)."""
    v = torch.randn(520, 520, requires_grad=True)
    out = cwy(v)
    cotangent = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, v, cotangent)
    v64 = v.detach().to(F64).requires_grad_()
    expected = _ref_cwy(v64)
    (grad_ref,) = torch.autograd.grad(expected, v64, cotangent.to(F64))
    torch.testing.assert_close(out.to(F64), expected, atol=tol(520, torch.float32), rtol=0)
    rel = (grad.to(F64) - grad_ref).abs().max() / grad_ref.abs().max()
    assert float(rel) <= tol(520, torch.float32)


@pytest.mark.parametrize("fn", ["cwy", "tcwy"])
def test_forward_mode_on_blocked_path(fn, monkeypatch):
    """Forward-mode AD (plain operations) also where the forward pass splits products."""
    monkeypatch.setattr(fast, "_BLOCK", 2)
    fn, ref = MAPS[fn]
    v, dv = torch.randn(13, 11, dtype=F64), torch.randn(13, 11, dtype=F64)
    out, tangent = torch.func.jvp(fn, (v,), (dv,))
    out_ref, tangent_ref = torch.func.jvp(ref, (v,), (dv,))
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(tangent, tangent_ref)


@pytest.mark.parametrize("block", [128, 1], ids=["whole", "panels"])
def test_traces_as_one_graph_under_compile(block, monkeypatch):
    """With value checks off, torch.compile traces cwy/tcwy and their backward whole."""
    monkeypatch.setattr(fast, "_BLOCK", block)
    v = torch.randn(9, 6, dtype=F64, requires_grad=True)
    with set_value_checks(False):
        for fn in (cwy, tcwy):
            compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
            out = compiled(v)
            (grad,) = torch.autograd.grad(out.sum(), v)
            (grad_eager,) = torch.autograd.grad(fn(v).sum(), v)
            torch.testing.assert_close(out, fn(v))
            torch.testing.assert_close(grad, grad_eager)


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((64, 48), torch.float32),
        ((2, 20, 12), torch.float32),
        ((150, 140), F64),
        ((40, 30), torch.float16),
    ],
    ids=["f32", "f32-batched", "f64-large", "f16"],
)
@pytest.mark.parametrize("layout", ["row-major", "column-major"])
def test_gradient_has_the_layout_of_the_vectors(shape, dtype, layout):
    """Note [memory layout]: at these sizes the solves use G^T Y column-major; the gradient
    still has the strides of v (AccumulateGrad warns otherwise)."""
    base = torch.randn(shape, dtype=dtype)
    v = base if layout == "row-major" else base.mT.contiguous().mT
    v.requires_grad_()
    for fn in (cwy, tcwy):
        (grad,) = torch.autograd.grad(fn(v).float().square().sum(), v)
        assert (grad.stride(), grad.dtype) == (v.stride(), dtype)
        with warnings.catch_warnings():  # accumulating into .grad: no layout warning
            warnings.simplefilter("error")
            for _ in range(2):
                fn(v).float().square().sum().backward()
        v.grad = None


def test_value_checks_are_assertions_in_one_graph_under_compile():
    """On the CPU, with value checks on, the compiled maps are one graph and still check.

    Note [value checks]: the check becomes ``torch._assert_async`` in the graph, so bad
    input raises RuntimeError with the eager message's text (fullgraph=True would fail on
    a graph break).
    """
    from cwy_manifolds import cwy_apply

    v = torch.randn(7, 4, dtype=F64, requires_grad=True)
    x = torch.randn(7, 3, dtype=F64)
    torch._dynamo.reset()
    try:
        for fn in (cwy, tcwy):
            compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
            torch.testing.assert_close(compiled(v), fn(v))
            (grad,) = torch.autograd.grad(compiled(v).sum(), v)
            torch.testing.assert_close(grad, torch.autograd.grad(fn(v).sum(), v)[0])
            for bad in (
                v.detach().clone().index_fill_(1, torch.tensor([2]), 0),
                v.detach().clone().index_fill_(0, torch.tensor([1]), float("nan")),
            ):
                with pytest.raises(RuntimeError, match=r"^v must have finite entries and no zero"):
                    compiled(bad)
        apply = torch.compile(cwy_apply, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(apply(v, x), cwy_apply(v, x))
        with pytest.raises(RuntimeError, match=", and x finite entries"):
            apply(v, x.index_fill(0, torch.tensor([0]), float("inf")))
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_on_cpu_computes_in_float32(dtype):
    """Note [precision]: on the CPU every product runs in float32; only the result is rounded.

    The reference is the float32 computation on the same (half-precision) values, rounded
    once: products in the half dtype would round every intermediate and differ.
    """
    from cwy_manifolds import cwy_apply, tcwy_apply

    v = torch.randn(96, 96).to(dtype)
    x = torch.randn(96, 5).to(dtype)
    v32, x32 = v.float(), x.float()
    assert torch.equal(cwy(v), cwy(v32).to(dtype))
    assert torch.equal(tcwy(v[:, :12]), tcwy(v32[:, :12]).to(dtype))
    assert torch.equal(cwy_apply(v, x), cwy_apply(v32, x32).to(dtype))
    assert torch.equal(tcwy_apply(v[:, :12], x, transpose=True),
                       tcwy_apply(v32[:, :12], x32, transpose=True).to(dtype))  # fmt: skip


def sequential(v: torch.Tensor) -> torch.Tensor:
    """H(v_1) ... H(v_L) one reflection at a time, by plain differentiable torch operations."""
    u = v / torch.linalg.vector_norm(v, dim=-2, keepdim=True)
    n = v.shape[-2]
    q = torch.eye(n, dtype=v.dtype).expand(*v.shape[:-2], n, n)
    for i in range(v.shape[-1]):
        q = q - 2 * (q @ u[..., i : i + 1]) @ u[..., i : i + 1].mT
    return q


BRANCHES = {  # id -> (map, shape): each takes other branches of Note [fast path]
    "unbatched-small": ("cwy", (5, 5)),
    "unbatched-thin": ("tcwy", (9, 4)),
    "unbatched-over-64x64": ("cwy", (90, 70)),
    "unbatched-thin-over-64x64": ("tcwy", (130, 40)),
    "unbatched-over-128": ("cwy", (140, 130)),
    "batched": ("cwy", (6, 8, 8)),
    "batched-thin": ("tcwy", (3, 9, 5)),
    "batched-over-64x64": ("cwy", (2, 70, 66)),
    "two-batch-dims": ("cwy", (2, 3, 6, 6)),
}


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=str)
@pytest.mark.parametrize(("fn", "shape"), BRANCHES.values(), ids=BRANCHES.keys())
def test_branches_match_sequential_product(fn, shape, dtype):
    """Forward against the dense product of reflections, gradient against plain autograd.

    Both in float64; the float32 results (other memory layouts, Note [memory layout])
    against them with float32 tolerances.
    """
    v64 = torch.randn(*shape, dtype=F64, requires_grad=True)
    v = v64.detach().to(dtype).requires_grad_()
    out = MAPS[fn][0](v)
    full = sequential(v64)
    expected = full if fn == "cwy" else full[..., : shape[-1]]
    n = shape[-2]
    torch.testing.assert_close(out.to(F64), expected, atol=tol(n, dtype), rtol=0)
    cotangent = torch.randn_like(expected)
    kept = cotangent.clone()
    (grad,) = torch.autograd.grad(out, v, cotangent.to(dtype), retain_graph=True)
    (again,) = torch.autograd.grad(out, v, cotangent.to(dtype))  # saved factors unchanged
    (grad_ref,) = torch.autograd.grad(expected, v64, cotangent)
    error = float((grad.to(F64) - grad_ref).abs().max() / grad_ref.abs().max())
    assert error <= tol(n, dtype)
    assert torch.equal(again, grad)
    assert torch.equal(cotangent, kept)  # the backward pass writes into its own buffers


@pytest.mark.parametrize("shape", [(7, 7), (2, 6, 4)], ids=str)
def test_one_buffer_holds_s_and_its_transpose(shape):
    """Note [memory layout]: S on and above the diagonal, S^T below, for both solves."""
    v = torch.randn(*shape, dtype=F64)
    scale = v.abs().amax(dim=-2, keepdim=True)
    y, s, inverse, wt = fast._factors(v, scale, shape[-2], differentiable=False)
    gram = y.mT @ y
    phi = torch.triu(gram, 1) + torch.diag_embed(gram.diagonal(dim1=-2, dim2=-1)) / 2
    assert inverse is None
    torch.testing.assert_close(torch.triu(s), phi)
    torch.testing.assert_close(torch.tril(s), phi.mT)
    torch.testing.assert_close(wt @ phi.mT, y)  # W^T S^T = Y
